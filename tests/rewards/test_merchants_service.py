"""The hooks other packages rely on: may-act checks, a staff member's stores, the merchant's ledger account."""
from __future__ import annotations

from app.accounts.models import Citizen
from app.extensions import db
from app.staff.service import staff_may_act
from rewards.merchants import service
from rewards.merchants.models import Merchant, MerchantStaff, Store
from tests.rewards.factories import make_merchant, make_merchant_staff, make_staff


def test_factories_and_hooks(db_session) -> None:
    operator = make_staff("operator")
    suspended = make_staff("reviewer", status="suspended")
    merchant_id, store_ids = make_merchant(districts=("huangpu", "xuhui", "pudong"))
    staff_id, citizen_id = make_merchant_staff(merchant_id, store_ids[:2])
    admin_id, _ = make_merchant_staff(merchant_id, role="merchant_admin")

    assert staff_may_act(operator) is True
    assert staff_may_act(suspended) is False
    assert staff_may_act(999_999) is False
    assert service.merchant_staff_may_act(staff_id) is True
    assert service.merchant_staff_may_act(999_999) is False
    assert service.staff_store_ids(staff_id) == set(store_ids[:2])
    assert service.staff_store_ids(admin_id) == set(store_ids)
    assert service.merchant_of_staff(staff_id) == merchant_id
    assert service.merchant_account_code(merchant_id) == f"merchant:{merchant_id}"
    assert db.session.get(MerchantStaff, staff_id).citizen_id == citizen_id


def test_a_closed_store_drops_out_and_suspension_or_removal_stop_acting(db_session) -> None:
    merchant_id, store_ids = make_merchant()
    staff_id, citizen_id = make_merchant_staff(merchant_id, store_ids)
    db.session.get(Store, store_ids[0]).status = "closed"
    db.session.flush()
    assert service.staff_store_ids(staff_id) == {store_ids[1]}

    db.session.get(Merchant, merchant_id).status = "suspended"
    db.session.flush()
    assert service.merchant_staff_may_act(staff_id) is False
    db.session.get(Merchant, merchant_id).status = "active"
    db.session.get(Citizen, citizen_id).status = "closed"
    db.session.flush()
    assert service.merchant_staff_may_act(staff_id) is False
    db.session.get(Citizen, citizen_id).status = "active"
    db.session.get(MerchantStaff, staff_id).status = "removed"
    db.session.flush()
    assert service.merchant_staff_may_act(staff_id) is False
    assert service.staff_store_ids(staff_id) == set()


def test_the_merchant_ledger_account_is_accepted_by_the_ledger(db_session) -> None:
    from app.ledger.service import _account_ids

    merchant_id, _ = make_merchant()
    ids = _account_ids([service.merchant_account_code(merchant_id)])
    assert len(ids) == 1
