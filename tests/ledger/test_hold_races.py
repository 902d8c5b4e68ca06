"""The one-statement hold under races on real PostgreSQL (one connection per thread): the same key
from many connections holds once, and holds never lock the credit side (a merchant's account)."""
from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import text

from app.extensions import db
from app.ledger.service import account_balances, check_invariants, hold, pending_credits, post_earnings
from tests.conftest import make_citizen
from tests.ledger.conftest import earning, run_in_threads

LATER = datetime(2099, 1, 1, tzinfo=UTC)


def test_twenty_holds_with_one_key_hold_once_and_all_answer_the_same_transfer(app, committed):
    alice = make_citizen()
    post_earnings([earning("earn:event:1", alice, 100)])
    db.session.commit()

    results = run_in_threads(app, 20, lambda _: hold("claim:same", alice, "merchant:1", 30, timeout_at=LATER).id)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert len(set(results)) == 1
    db.session.rollback()
    assert (account_balances(alice).available, account_balances(alice).held) == (70, 30)
    assert pending_credits("merchant:1") == 30
    assert check_invariants() == []


def test_a_hold_does_not_wait_for_a_lock_on_the_merchant_account(app, committed):
    alice = make_citizen()
    post_earnings([earning("earn:event:1", alice, 100)])
    hold("claim:0", alice, "merchant:1", 10, timeout_at=LATER)  # the merchant's account exists
    db.session.commit()
    locked, release = threading.Event(), threading.Event()

    def lock_the_merchant_row() -> None:
        with app.app_context():
            db.session.execute(text("SELECT id FROM ledger_accounts WHERE code = 'merchant:1' FOR UPDATE"))
            locked.set()
            release.wait(timeout=30)
            db.session.rollback()
            db.session.remove()

    holder = threading.Thread(target=lock_the_merchant_row)
    holder.start()
    try:
        assert locked.wait(timeout=30)
        db.session.execute(text("SET LOCAL lock_timeout = '2s'"))  # a wait would fail the hold
        held = hold("claim:1", alice, "merchant:1", 20, timeout_at=LATER)
        db.session.commit()
    finally:
        release.set()
        holder.join(timeout=30)
    assert held.pending and account_balances(alice).held == 30
    assert check_invariants() == []
