"""Data helpers for rewards tests: staff, merchants with stores, merchant staff.

Each function adds rows and flushes in the current session (db_session or committed), and returns
ids. Mint tokens for them with tests.conftest.bearer_as:
    staff_id = make_staff("operator");  bearer_as(f"staff:{staff_id}", "operator")
    merchant_id, store_ids = make_merchant()
    staff_id, citizen_id = make_merchant_staff(merchant_id, store_ids[:1])
    bearer_as(f"merchant_staff:{staff_id}", "merchant_staff")
Under db_session, call db_session.commit() after creating them and before requests that may fail:
an error response rolls the session back to the last commit (a savepoint), taking flushed rows along.
"""
from __future__ import annotations

import itertools
import secrets
from collections.abc import Sequence

from argon2 import PasswordHasher
from sqlalchemy import select

from app.extensions import db
from tests.conftest import make_citizen

# Cheap parameters keep tests fast; verification reads the parameters from the hash itself.
_FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
_counter = itertools.count(1)
TEST_PASSWORD = "correct horse battery"


def make_staff(
    role: str = "operator",
    *,
    login: str | None = None,
    password: str = TEST_PASSWORD,
    status: str = "active",
    display_name: str | None = None,
) -> int:
    """A staff account (operator | reviewer | admin); returns its id (token subject "staff:<id>")."""
    from app.staff.models import StaffUser

    login = login or f"{role}-{next(_counter)}-{secrets.token_hex(3)}"
    staff = StaffUser(
        login=login.lower(),
        display_name=display_name or f"Test {role}",
        password_hash=_FAST_HASHER.hash(password),
        role=role,
        status=status,
    )
    db.session.add(staff)
    db.session.flush()
    return staff.id


def make_merchant(
    *,
    name_zh: str = "绿色咖啡",
    name_en: str = "Green Café",
    districts: Sequence[str] = ("huangpu", "xuhui"),
    status: str = "active",
) -> tuple[int, list[int]]:
    """A merchant with one store per district; returns (merchant_id, [store_ids])."""
    from rewards.merchants.models import Merchant, Store

    merchant = Merchant(name_zh=name_zh, name_en=name_en, status=status)
    db.session.add(merchant)
    db.session.flush()
    stores = [
        Store(merchant_id=merchant.id, name=f"{name_en} {district}", district=district,
              address=f"{n} Test Road, {district}", status="active")
        for n, district in enumerate(districts, start=1)
    ]
    db.session.add_all(stores)
    db.session.flush()
    return merchant.id, [store.id for store in stores]


def make_merchant_staff(
    merchant_id: int,
    store_ids: Sequence[int] | None = None,
    role: str = "merchant_staff",
    *,
    citizen_id: int | None = None,
) -> tuple[int, int]:
    """A citizen bound as active staff of the merchant at `store_ids` (default: all its stores).

    Returns (staff_id, citizen_id); the token subject is "merchant_staff:<staff_id>" with `role`.
    """
    from rewards.merchants.models import MerchantStaff, MerchantStaffStore, Store

    if store_ids is None:
        store_ids = list(db.session.scalars(select(Store.id).where(Store.merchant_id == merchant_id)))
    citizen_id = citizen_id if citizen_id is not None else make_citizen()
    staff = MerchantStaff(merchant_id=merchant_id, citizen_id=citizen_id, role=role, status="active")
    db.session.add(staff)
    db.session.flush()
    db.session.add_all(MerchantStaffStore(staff_id=staff.id, store_id=store_id) for store_id in store_ids)
    db.session.flush()
    return staff.id, citizen_id
