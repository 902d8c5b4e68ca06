"""post_earnings writes new transfers with COPY: text that COPY's format escapes comes back exactly,
ids are uuid5 of the key, and a batch holding keys that already have transfers inserts only the rest."""
from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.ledger.models import LedgerTransfer
from app.ledger.service import (
    Earning,
    TransferIds,
    _transfer_id_text,
    account_balances,
    check_invariants,
    post_earnings,
    transfer_id_for,
)
from tests.conftest import make_citizen
from tests.ledger.conftest import earning

AWKWARD = 'back\\slash \\N tab\there new\nline cr\rend "quoted" 中文 \u2028'


def test_transfer_id_text_is_the_uuid5_of_the_key():
    for key in ("earn:event:1", "earn:event:999999", "debt:repay:7:0", AWKWARD, ""):
        assert _transfer_id_text(key) == str(transfer_id_for(key))


def test_awkward_keys_and_details_come_back_exactly(db_session):
    alice = make_citizen()
    details = {"note": AWKWARD, "nested": {"list": [AWKWARD, 1, None, True]}, AWKWARD: "key"}
    key = f"earn:{AWKWARD}"

    ids = post_earnings([Earning(key, alice, "metro_trip", 7, 12, details), earning("earn:plain", alice, 3)])

    assert isinstance(ids, TransferIds)
    assert ids == {key: transfer_id_for(key), "earn:plain": transfer_id_for("earn:plain")}
    assert ids.text(key) == str(transfer_id_for(key))
    row = db.session.get(LedgerTransfer, transfer_id_for(key))
    assert (row.idempotency_key, row.details, row.amount, row.event_id, row.kind) == (key, details, 7, 12, "earn")
    assert row.explanation_id is None and row.pending is False
    assert account_balances(alice).available == 10
    assert check_invariants() == []


def test_a_batch_with_some_keys_already_posted_inserts_only_the_new_ones(db_session):
    alice, bob = make_citizen(), make_citizen()
    post_earnings([earning("earn:1", alice, 10), earning("earn:2", bob, 20)])

    ids = post_earnings([earning("earn:2", bob, 20), earning("earn:3", alice, 5), earning("earn:1", alice, 10)])

    assert set(ids) == {"earn:1", "earn:2", "earn:3"}
    assert db.session.scalar(select(func.count()).select_from(LedgerTransfer)) == 3
    assert (account_balances(alice).available, account_balances(bob).available) == (15, 20)
    assert check_invariants() == []
