"""Invitations under concurrency: one code binds one citizen; one citizen binds to one merchant.

Each thread uses its own test client, so its own app context, session and database connection."""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from flask import Flask
from sqlalchemy import func, select, update

from app.auth.guard import Actor
from app.extensions import db
from rewards.merchants import service
from rewards.merchants.models import MerchantStaff
from tests.conftest import bearer_for, make_citizen
from tests.rewards.factories import make_merchant

ACCEPT = "/api/v1/merchant/staff-invitations:accept"
OPERATOR = Actor(kind="staff", id=1, role="operator")


def post_together(app: Flask, calls: list[tuple[dict[str, str], dict[str, Any]]]) -> list[tuple[int, str | None]]:
    barrier = threading.Barrier(len(calls))
    results: list[tuple[int, str | None]] = [(0, None)] * len(calls)

    def run(i: int) -> None:
        headers, body = calls[i]
        client = app.test_client()
        barrier.wait(timeout=30)
        response = client.post(ACCEPT, headers=headers, json=body)
        payload = response.get_json()
        results[i] = (response.status_code, payload["error"]["code"] if response.status_code >= 400 else None)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_twenty_citizens_racing_for_one_code_bind_exactly_one(app: Flask, committed) -> None:
    merchant_id, store_ids = make_merchant()
    code, _ = service.issue_invitation(OPERATOR, merchant_id, "merchant_staff", store_ids)
    headers = [bearer_for(make_citizen()) for _ in range(20)]
    db.session.commit()

    results = post_together(app, [(h, {"code": code}) for h in headers])

    assert Counter(results) == Counter({(201, None): 1, (409, "invitation_used"): 19})
    assert db.session.scalar(select(func.count()).select_from(MerchantStaff)) == 1


def test_one_citizen_racing_two_merchants_codes_binds_once(app: Flask, committed) -> None:
    merchants = [make_merchant(name_en=name) for name in ("A", "B")]
    citizen = make_citizen()
    headers = bearer_for(citizen)
    db.session.commit()

    for _ in range(5):
        codes = [service.issue_invitation(OPERATOR, merchant_id, "merchant_staff", store_ids)[0]
                 for merchant_id, store_ids in merchants]
        db.session.commit()

        results = post_together(app, [(headers, {"code": code}) for code in codes])

        assert sorted(results, key=str) == [(201, None), (409, "already_merchant_staff")]
        active = db.session.scalar(select(func.count()).select_from(MerchantStaff)
                                   .where(MerchantStaff.citizen_id == citizen, MerchantStaff.status == "active"))
        assert active == 1
        db.session.execute(update(MerchantStaff).values(status="removed"))  # free the citizen for the next round
        db.session.commit()
