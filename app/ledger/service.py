"""The points ledger: earnings in bulk, single transfers, two-phase holds, balances and invariants.

Rules every function here keeps (DESIGN §The ledger, SECURITY §Ledger integrity):
- A transfer's id is uuid5 of its idempotency key, stored with a hash of the request in the same
  transaction: a replay returns the first transfer, a replay with other input is refused (422).
- Balances change in the same transaction as the transfer. Account rows are locked in one global
  order — citizen accounts by id, then system accounts (pools, merchants, ...) by id — so two
  transactions never wait on each other in a cycle; a citizen's debit is also a conditional update,
  and the database CHECK `citizen_available_non_negative` is the last line of defence.
- Every point a citizen holds sits in a lot (app.ledger.lots): credits add to the lot of their
  expiry day, debits and holds take from the lots first-to-expire first, in the same transaction
  and under the same account lock; check_invariants() holds lots and balances to one equation.
- Earnings pay a citizen's debt from reversed fraud first (app.ledger.reversal).
- Services flush, never commit: the request or job boundary commits.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from app.errors import AppError
from app.extensions import db
from app.ledger import lots
from app.ledger.models import ACCOUNT_KINDS, LedgerTransfer
from app.models_base import utcnow
from app.pagination import decode_cursor, page

LEDGER_NAMESPACE = uuid.UUID("6f1c2a54-3b0e-5d7a-9c1e-2f4b8a6d0e31")

# Kinds written only by the two-phase functions (hold, post_pending, void_pending).
TWO_PHASE_KINDS = ("hold", "post", "void")

# A citizen may only be debited while this holds (kept in one place so a test can prove the CHECK
# behind it still answers 409 if this guard were ever wrong).
_AVAILABLE_GUARD = "(kind <> 'citizen' OR credits_posted - debits_posted - debits_pending >= :amount)"


def transfer_id_for(idempotency_key: str) -> uuid.UUID:
    """The transfer id is derived from the key, so a rerun produces the same id (and no new row)."""
    return uuid.uuid5(LEDGER_NAMESPACE, idempotency_key)


_NAMESPACE_BYTES = LEDGER_NAMESPACE.bytes


def _transfer_id(idempotency_key: str) -> uuid.UUID:
    """transfer_id_for() for the bulk path: uuid.uuid5's hash and bits, half its Python (5,000 a batch)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + idempotency_key.encode(), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    return uuid.UUID(bytes=bytes(digest))


def citizen_account_code(citizen_id: int) -> str:
    return f"citizen:{citizen_id}"


def issuance_account_code(scenario_code: str) -> str:
    return f"issuance:{scenario_code}"


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def insufficient_points() -> AppError:
    return AppError("insufficient_points", "Not enough points.", "积分不足。", 409)


def idempotency_key_reused() -> AppError:
    return AppError(
        "idempotency_key_reused",
        "This idempotency key was already used for a different request.",
        "该幂等键已用于另一个不同的请求。",
        422,
    )


def hold_not_found() -> AppError:
    return AppError("hold_not_found", "The held points were not found.", "未找到该笔冻结积分。", 404)


def hold_already_resolved() -> AppError:
    return AppError(
        "hold_already_resolved",
        "These held points were already settled or released.",
        "该笔冻结积分已结算或已释放。",
        409,
    )


def hold_expired() -> AppError:
    return AppError(
        "hold_expired",
        "The hold has expired; the points can only be released.",
        "该笔冻结已过期，积分只能退回。",
        409,
    )


# ---------------------------------------------------------------------------------------------
# Earnings: the crediting hot path
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~1 µs more per earning (5,000 a batch)
class Earning:
    idempotency_key: str  # e.g. "earn:event:123"
    citizen_id: int
    scenario_code: str  # the pool "issuance:<scenario_code>" is debited
    amount: int  # points, > 0
    event_id: int | None
    # The explanation shown to the citizen. An earning for an event (event_id of an inbound_events
    # row) also shows the event's activity, grams, occurred_at and district, read from the event
    # (EVENT_FIELDS): not stored again per transfer; a key in `details` wins over the event's.
    details: dict[str, Any] = field(default_factory=dict)
    # The part of the explanation many earnings share (scenario, methodology, formula, ...): stored
    # once, in ledger_explanations. The citizen sees {**shared_details, **details}. Pass the SAME
    # dict object to every earning that shares it: it is serialised once per object.
    shared_details: dict[str, Any] | None = None


_INSERT_ACCOUNTS = text(
    """
    INSERT INTO ledger_accounts (code, kind, citizen_id, debits_posted, credits_posted, debits_pending, credits_pending)
    SELECT code, kind, citizen_id, 0, 0, 0, 0
    FROM unnest(CAST(:codes AS text[]), CAST(:kinds AS text[]), CAST(:citizen_ids AS bigint[]))
         AS v(code, kind, citizen_id)
    ORDER BY code
    ON CONFLICT DO NOTHING
    """
)

_INSERT_EXPLANATIONS = text(
    """
    INSERT INTO ledger_explanations (id, details)
    SELECT v.id, v.details FROM jsonb_to_recordset(CAST(:explanations AS jsonb)) AS v(id uuid, details jsonb)
    ORDER BY v.id
    ON CONFLICT DO NOTHING
    """
)

_CITIZEN_ACCOUNTS = text(
    "SELECT citizen_id, id FROM ledger_accounts WHERE citizen_id = ANY(CAST(:citizen_ids AS bigint[]))"
)

# Insert the batch's transfers (in key order, so concurrent batches sharing keys cannot deadlock on
# the unique index) and return, per account, what the NEWLY inserted ones add: replays add nothing.
# ON CONFLICT without a target: the id (uuid5 of the key) is what is unique, and a replayed key
# must do nothing whatever constraint it meets first (seen in the concurrency test). The account
# ids come resolved (post_earnings read them in this transaction), so the insert joins nothing.
# Each transfer travels as a JSON array [id, key, debit, credit, citizen, amount, event, details,
# explanation] (EARNING_FIELDS): a third less to write and parse than objects with named fields.
_INSERT_EARNINGS = text(
    """
    WITH inserted AS (
        INSERT INTO ledger_transfers
            (id, idempotency_key, kind, debit_account_id, credit_account_id, amount, pending,
             citizen_id, event_id, details, explanation_id)
        SELECT (v->>0)::uuid, v->>1, 'earn', (v->>2)::bigint, (v->>3)::bigint, (v->>5)::bigint, false,
               (v->>4)::bigint, (v->>6)::bigint, coalesce(nullif(v->7, 'null'), '{}'), (v->>8)::uuid
        FROM jsonb_array_elements(CAST(:batch AS jsonb)) AS v
        ORDER BY (v->>1) COLLATE "C"
        ON CONFLICT DO NOTHING
        RETURNING debit_account_id, credit_account_id, amount
    )
    SELECT account_id, sum(credit)::bigint AS credit, sum(debit)::bigint AS debit
    FROM (
        SELECT credit_account_id AS account_id, amount AS credit, 0 AS debit FROM inserted
        UNION ALL
        SELECT debit_account_id, 0, amount FROM inserted
    ) AS moves
    GROUP BY account_id
    """
)

# FOR NO KEY UPDATE, the lock an UPDATE of the balance columns takes anyway: it serialises every
# balance change and leaves alone whoever only needs the row to exist (a FOR KEY SHARE lock, e.g.
# a foreign key pointing at the account; with FOR UPDATE, the concurrency test once deadlocked on
# exactly that, when transfers still had foreign keys to their accounts).
_LOCK_ACCOUNTS = text(
    """
    SELECT count(*) FROM (
        SELECT id FROM ledger_accounts
        WHERE id = ANY(CAST(:ids AS bigint[]))
        ORDER BY (kind <> 'citizen'), id
        FOR NO KEY UPDATE
    ) AS locked
    """
)

# `a.id = ANY(:ids)` keeps the accounts reached through the primary key, whatever the table's size.
_ADD_POSTED = text(
    """
    UPDATE ledger_accounts AS a
    SET credits_posted = a.credits_posted + v.credit, debits_posted = a.debits_posted + v.debit
    FROM unnest(CAST(:ids AS bigint[]), CAST(:credits AS bigint[]), CAST(:debits AS bigint[]))
         AS v(id, credit, debit)
    WHERE a.id = ANY(CAST(:ids AS bigint[])) AND a.id = v.id
    """
)


def force_custom_plans() -> None:
    """Plan every statement of the current transaction with its actual parameters.

    psycopg prepares a statement run five times on a connection, and PostgreSQL then may switch to
    a generic plan, which knows nothing of the arrays passed: it takes a 5,000-element unnest() for
    10 rows and may rescan it inside a nested loop, once per row of the other side. Measured on the
    crediting job: a 60 ms UPDATE became 25-60 s from the ~10th batch of a worker on. Planning a
    set-based statement costs well under a millisecond; SET LOCAL ends with the transaction.
    """
    db.session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


_VARIANT_DIGIT = {digit: format(int(digit, 16) & 0x3 | 0x8, "x") for digit in "0123456789abcdef"}


def _transfer_id_text(idempotency_key: str) -> str:
    """str(transfer_id_for(key)) without making a UUID: the bulk path needs the text (COPY, arrays),
    and building then printing a UUID cost ~7% of crediting's Python (5,000 a batch)."""
    h = hashlib.sha1(_NAMESPACE_BYTES + idempotency_key.encode(), usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT_DIGIT[h[16]]}{h[17:20]}-{h[20:32]}"


class TransferIds(Mapping[str, uuid.UUID]):
    """Key -> transfer id, as post_earnings returns it: UUIDs made on access, `text(key)` for bulk callers."""

    __slots__ = ("_texts",)

    def __init__(self, texts: dict[str, str]) -> None:
        self._texts = texts

    def __getitem__(self, key: str) -> uuid.UUID:
        return uuid.UUID(self._texts[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._texts)

    def text(self, key: str) -> str:
        return self._texts[key]


def post_earnings(earnings: Sequence[Earning]) -> TransferIds:
    """Credit a batch of earnings (issuance pool -> citizen), set-based, idempotent per key.

    A fixed number of statements whatever the batch size: read the accounts' ids (creating missing
    accounts); insert the transfers (COPY; when a key already has its transfer, a rerun, INSERT …
    ON CONFLICT DO NOTHING instead, so nothing is inserted twice); lock the touched accounts in the
    global order; add the new amounts with one UPDATE, which touches each issuance pool once with
    the batch's total. Returns key -> transfer id for every given key.

    Bulk parameters are short statement texts with array or JSON parameters, never a multi-row
    VALUES list (DESIGN: 2.6x slower through psycopg 3), or COPY.
    """
    unique = _unique_by_key(earnings)
    if not unique:
        return TransferIds({})
    db.session.flush()
    force_custom_plans()

    citizens = _citizen_account_ids({e.citizen_id for e in unique})
    pools = _account_ids(sorted({issuance_account_code(e.scenario_code) for e in unique}))
    explanations = _store_explanations(unique)

    ids = {e.idempotency_key: _transfer_id_text(e.idempotency_key) for e in unique}
    pool_of = {code: pools[issuance_account_code(code)] for code in {e.scenario_code for e in unique}}
    unique.sort(key=_earning_key)  # concurrent writers sharing keys insert them in one order: no deadlock
    moves = _copy_earnings(unique, ids, pool_of, citizens, explanations)
    if moves is None:  # some key has its transfer already (a rerun): insert only what is new
        moves = _insert_earnings(unique, ids, pool_of, citizens, explanations)
    if not moves:
        return TransferIds(ids)  # a rerun: nothing new
    _lock_posted(moves)
    account_citizen = {account_id: citizen_id for citizen_id, account_id in citizens.items()}
    credited = {account_citizen[a]: credit for a, (credit, _) in moves.items() if a in account_citizen and credit}
    repaid = _repay_debts(credited, citizens, moves)
    _update_posted(moves)
    lots.credit_lots(
        {c: amount - repaid.get(c, 0) for c, amount in credited.items()}, lots.expiry_for(lots.shanghai_day())
    )
    return TransferIds(ids)


def _earning_key(earning: Earning) -> str:
    return earning.idempotency_key


_DETAILS_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
_COPY_EARNINGS = (
    "COPY ledger_transfers (id, idempotency_key, kind, debit_account_id, credit_account_id, amount, pending, "
    "citizen_id, event_id, details, explanation_id) FROM STDIN"
)
_NULL = "\\N"  # COPY's text format for NULL


def _copy_text(value: str) -> str:
    """A text field of COPY's text format: backslash, tab, newline and carriage return escaped."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _copy_earnings(
    earnings: list[Earning], ids: dict[str, str], pool_of: dict[str, int], citizens: dict[int, int],
    explanations: dict[int, str],
) -> dict[int, tuple[int, int]] | None:
    """COPY the transfers, all new; account id -> (credit, debit) they add. None, and nothing
    written, when a key already has its transfer (the unique id refuses the COPY).

    COPY, where the INSERT … SELECT from one JSON document cost ~15 µs an earning in PostgreSQL
    (parsing the document, a speculative insertion and its confirmation record per row for
    ON CONFLICT): the first run of a batch, by far the common case, inserts every transfer. The
    savepoint keeps a refused COPY from failing the caller's transaction.
    """
    lines = []
    credits: dict[int, int] = {}
    debits: dict[int, int] = {}
    for e in earnings:
        account = citizens[e.citizen_id]
        pool = pool_of[e.scenario_code]
        amount = e.amount
        credits[account] = credits.get(account, 0) + amount
        debits[pool] = debits.get(pool, 0) + amount
        explanation = _NULL if e.shared_details is None else explanations[id(e.shared_details)]
        details = "{}" if e.details is None else _DETAILS_JSON(e.details)
        if "\\" in details:  # JSON never holds a raw tab or newline: only backslashes need escaping
            details = details.replace("\\", "\\\\")
        event = _NULL if e.event_id is None else e.event_id
        lines.append(
            f"{ids[e.idempotency_key]}\t{_copy_text(e.idempotency_key)}\tearn\t{pool}\t{account}\t{amount}\tf\t"
            f"{e.citizen_id}\t{event}\t{details}\t{explanation}\n"
        )
    cursor = db.session.connection().connection.driver_connection.cursor()
    cursor.execute("SAVEPOINT post_earnings_copy")
    try:
        with cursor.copy(_COPY_EARNINGS) as copy:
            copy.write("".join(lines))
    except psycopg.errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT post_earnings_copy")
        return None
    cursor.execute("RELEASE SAVEPOINT post_earnings_copy")
    moves = {account: (credit, 0) for account, credit in credits.items()}
    for account, debit in debits.items():
        moves[account] = (moves.get(account, (0, 0))[0], debit)
    return moves


def _insert_earnings(
    earnings: list[Earning], ids: dict[str, str], pool_of: dict[str, int], citizens: dict[int, int],
    explanations: dict[int, str],
) -> dict[int, tuple[int, int]]:
    """Insert the transfers whose key has none yet; account id -> (credit, debit) the new ones add."""
    rows = [
        [
            ids[e.idempotency_key],
            e.idempotency_key,
            pool_of[e.scenario_code],
            citizens[e.citizen_id],
            e.citizen_id,
            e.amount,
            e.event_id,
            e.details,
            None if e.shared_details is None else explanations[id(e.shared_details)],
        ]
        for e in earnings
    ]
    batch = json.dumps(rows, ensure_ascii=False, separators=(",", ":"), default=str)
    deltas = db.session.execute(_INSERT_EARNINGS, {"batch": batch}).tuples().all()
    return {account_id: (credit, debit) for account_id, credit, debit in deltas}


def _unique_by_key(earnings: Sequence[Earning]) -> list[Earning]:
    """One earning per key (the first); a key repeated with other content is a caller bug."""
    for earning in earnings:
        if earning.amount <= 0:
            raise ValueError(f"earning {earning.idempotency_key!r}: amount must be positive")
    seen = {earning.idempotency_key: earning for earning in earnings}
    if len(seen) == len(earnings):
        return list(earnings)  # the common case: keys unique, nothing to compare
    seen = {}
    for earning in earnings:
        first = seen.setdefault(earning.idempotency_key, earning)
        if first is not earning and first != earning:
            raise ValueError(f"earning key {earning.idempotency_key!r} appears twice with different content")
    return list(seen.values())


def _store_explanations(earnings: list[Earning]) -> dict[int, str]:
    """Store each distinct shared part once; returns id(dict object) -> its explanation id."""
    shared = {id(e.shared_details): e.shared_details for e in earnings if e.shared_details is not None}
    if not shared:
        return {}
    ids: dict[int, str] = {}
    rows: dict[str, str] = {}
    for key, details in shared.items():
        canonical = json.dumps(details, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)
        ids[key] = explanation_id = str(uuid.uuid5(LEDGER_NAMESPACE, "explanation:" + canonical))
        rows[explanation_id] = canonical
    payload = "[" + ",".join(f'{{"id":"{i}","details":{body}}}' for i, body in rows.items()) + "]"
    db.session.execute(_INSERT_EXPLANATIONS, {"explanations": payload})
    return ids


def _citizen_account_ids(citizen_ids: set[int]) -> dict[int, int]:
    """citizen id -> ledger account id, creating the accounts citizens do not have yet."""
    found = _citizen_accounts(citizen_ids)
    missing = citizen_ids - found.keys()
    if missing:
        _ensure_accounts([(citizen_account_code(c), "citizen", c) for c in missing])
        found.update(_citizen_accounts(missing))
    return found


def _citizen_accounts(citizen_ids: set[int]) -> dict[int, int]:
    return dict(db.session.execute(_CITIZEN_ACCOUNTS, {"citizen_ids": _ints(citizen_ids)}).tuples().all())


def _ints(values: Iterable[int]) -> str:
    """A bigint[] literal: ~3x cheaper than psycopg adapting a list of 5,000 ints element by element."""
    return "{" + ",".join(map(str, values)) + "}"


def _ensure_accounts(accounts: list[tuple[str, str, int | None]]) -> None:
    """Create missing accounts; rows sorted by code so concurrent creators queue instead of deadlocking."""
    accounts = sorted(accounts)
    db.session.execute(
        _INSERT_ACCOUNTS,
        {
            "codes": [code for code, _, _ in accounts],
            "kinds": [kind for _, kind, _ in accounts],
            "citizen_ids": [citizen_id for _, _, citizen_id in accounts],
        },
    )


def _lock_posted(deltas: dict[int, tuple[int, int]]) -> None:
    """Lock the accounts in the global order (citizens by id, then system accounts by id)."""
    db.session.execute(_LOCK_ACCOUNTS, {"ids": _ints(sorted(deltas))})


def _update_posted(deltas: dict[int, tuple[int, int]]) -> None:
    """Add (credit, debit) to each (already locked) account with one UPDATE."""
    ids = sorted(deltas)
    db.session.execute(
        _ADD_POSTED,
        {"ids": _ints(ids), "credits": _ints(deltas[i][0] for i in ids), "debits": _ints(deltas[i][1] for i in ids)},
    )


# Citizens of this batch who owe points: their clawback account ("clawback:<citizen id>") has more
# debits (debts from reversals) than credits (repayments). Reached through the small partial index
# of clawback accounts, so a batch without debtors pays one index scan of a few rows.
_DEBTORS = text(
    """
    SELECT id, CAST(substr(code, 10) AS bigint) AS citizen_id, debits_posted - credits_posted AS owed, credits_posted
    FROM ledger_accounts
    WHERE kind = 'clawback' AND debits_posted > credits_posted
      AND substr(code, 10) = ANY(CAST(:citizen_ids AS text[]))
    ORDER BY id
    FOR NO KEY UPDATE
    """
)

# Posted transfers written in bulk (repayments, expiries): each row a JSON array
# [id, key, kind, debit account, credit account, citizen, amount, details].
_INSERT_POSTED = text(
    """
    INSERT INTO ledger_transfers
        (id, idempotency_key, kind, debit_account_id, credit_account_id, amount, pending, citizen_id, details)
    SELECT (v->>0)::uuid, v->>1, v->>2, (v->>3)::bigint, (v->>4)::bigint, (v->>6)::bigint, false,
           (v->>5)::bigint, v->7
    FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS v
    ORDER BY v->>1
    """
)


def clawback_account_code(citizen_id: int) -> str:
    """The account holding what a citizen owes (debits: debts from reversals; credits: repayments)."""
    return f"clawback:{citizen_id}"


def _repay_debts(
    credited: dict[int, int], citizens: dict[int, int], moves: dict[int, tuple[int, int]]
) -> dict[int, int]:
    """Earnings pay debts first: citizen -> clawback, up to what the batch credited each debtor.

    Runs with the citizens' accounts locked (every change to a debt does), so the debt read is the
    debt paid. The repayment key is derived from the clawback account's credits so far: unique, and
    the same if this transaction is retried. Adds the repayments to `moves`; returns citizen -> repaid.
    """
    if not credited:
        return {}
    debtors = db.session.execute(_DEBTORS, {"citizen_ids": _ints(sorted(credited))}).all()
    if not debtors:
        return {}
    repaid: dict[int, int] = {}
    rows = []
    for clawback_id, citizen_id, owed, credits_before in debtors:
        amount = min(owed, credited[citizen_id])
        key = f"debt:repay:{citizen_id}:{credits_before}"
        rows.append([str(_transfer_id(key)), key, "repay", citizens[citizen_id], clawback_id, citizen_id, amount,
                     {"debt_repaid": amount, "debt_left": owed - amount}])
        repaid[citizen_id] = amount
        credit, debit = moves.get(citizens[citizen_id], (0, 0))
        moves[citizens[citizen_id]] = (credit, debit + amount)
        moves[clawback_id] = (moves.get(clawback_id, (0, 0))[0] + amount, moves.get(clawback_id, (0, 0))[1])
    db.session.execute(_INSERT_POSTED, {"rows": json.dumps(rows, ensure_ascii=False, default=str)})
    return repaid


# ---------------------------------------------------------------------------------------------
# Single transfers and two-phase holds
# ---------------------------------------------------------------------------------------------


def transfer(
    idempotency_key: str,
    debit_code: str,
    credit_code: str,
    amount: int,
    kind: str,
    *,
    citizen_id: int | None = None,
    details: dict[str, Any] | None = None,
    request_hash: bytes | None = None,
) -> LedgerTransfer:
    """Post `amount` points from one account to another at once.

    A citizen's available balance never goes below zero (409 insufficient_points); a citizen's
    debit takes from their lots first-to-expire first, a citizen's credit adds to the lot of today's
    expiry day. The same key
    again returns the first transfer; with a different request (hash) it is refused (422). When no
    request_hash is given, one is computed from kind, accounts and amount.
    """
    if kind in TWO_PHASE_KINDS:
        raise ValueError(f"kind {kind!r} is reserved for hold/post_pending/void_pending")
    request_hash = request_hash or _request_hash(kind, debit_code, credit_code, amount)
    return _write_transfer(
        idempotency_key,
        debit_code,
        credit_code,
        amount,
        kind,
        pending=False,
        citizen_id=citizen_id if citizen_id is not None else _citizen_of(debit_code, credit_code),
        details=details,
        request_hash=request_hash,
        timeout_at=None,
    )


def hold(
    idempotency_key: str,
    citizen_id: int,
    credit_code: str,
    amount: int,
    *,
    timeout_at: datetime,
    details: dict[str, Any] | None = None,
    request_hash: bytes | None = None,
) -> LedgerTransfer:
    """Reserve a citizen's points for `credit_code` (pending); exactly one post or void resolves it.

    Only the citizen's row changes: debits_pending grows (only while available >= amount, else 409).
    The other side's pending credits are not stored but derived from its open holds
    (pending_credits): a merchant's account row would otherwise be a lock every claim of every coupon
    of that merchant waits on until its transaction commits. The points are allocated from the
    citizen's lots, first to expire first (ledger_hold_allocations): a void returns exactly those, a
    post consumes them, and expiry leaves them alone while the hold is open.
    Two statements when the credit account exists: the guarded debit with the insert, then the lots.
    The transfer returned is built from what was written (not read back, not in the session).
    """
    if amount <= 0:
        raise ValueError("amount must be positive")
    debit_code = citizen_account_code(citizen_id)
    if debit_code == credit_code:
        raise ValueError("a transfer needs two different accounts")
    request_hash = request_hash or _request_hash("hold", debit_code, credit_code, amount)
    transfer_id = transfer_id_for(idempotency_key)
    db.session.flush()
    values = {
        "id": transfer_id, "key": idempotency_key, "request_hash": request_hash, "amount": amount,
        "debit_code": debit_code, "credit_code": credit_code, "timeout_at": timeout_at, "citizen_id": citizen_id,
        "details": json.dumps(details or {}, ensure_ascii=False, default=str),
    }
    row = db.session.execute(_HOLD, values).one()
    if row.credit_id is None:  # the first hold for this account: create it, then hold
        _account_ids([credit_code])
        row = db.session.execute(_HOLD, values).one()
    if row.inserted is None:
        if row.debit_id is not None:  # a concurrent hold with this key committed between our check and insert
            db.session.execute(_UNDO_DEBIT_PENDING, {"id": row.debit_id, "amount": amount})
        existing = _existing(idempotency_key)
        if existing is None:
            raise insufficient_points()
        return _replayed(existing, request_hash)
    lots.hold_lots(citizen_id, amount, transfer_id)
    return LedgerTransfer(
        id=transfer_id, idempotency_key=idempotency_key, request_hash=request_hash, kind="hold",
        debit_account_id=row.debit_id, credit_account_id=row.credit_id, amount=amount, pending=True,
        pending_id=None, timeout_at=timeout_at, citizen_id=citizen_id, event_id=None, details=details or {},
        explanation_id=None, created_at=row.created_at,
    )


# A hold in one statement: the credit account's id (read, not locked), the citizen's guarded
# debit (its row lock is the only one a hold takes) unless the key was used, and the transfer.
_HOLD = text(
    f"""
    WITH credit AS (
        SELECT id FROM ledger_accounts WHERE code = :credit_code
    ), debited AS (
        UPDATE ledger_accounts SET debits_pending = debits_pending + :amount
        WHERE code = :debit_code AND kind = 'citizen' AND {_AVAILABLE_GUARD}
          AND EXISTS (SELECT 1 FROM credit)
          AND NOT EXISTS (SELECT 1 FROM ledger_transfers WHERE id = :id)
        RETURNING id
    ), inserted AS (
        INSERT INTO ledger_transfers
            (id, idempotency_key, request_hash, kind, debit_account_id, credit_account_id, amount, pending,
             timeout_at, citizen_id, details)
        SELECT :id, :key, :request_hash, 'hold', debited.id, credit.id, :amount, true, :timeout_at, :citizen_id,
               CAST(:details AS jsonb)
        FROM debited, credit
        ON CONFLICT DO NOTHING
        RETURNING id, created_at
    )
    SELECT (SELECT id FROM credit) AS credit_id, (SELECT id FROM debited) AS debit_id,
           (SELECT id FROM inserted) AS inserted, (SELECT created_at FROM inserted) AS created_at
    """
)
_UNDO_DEBIT_PENDING = text("UPDATE ledger_accounts SET debits_pending = debits_pending - :amount WHERE id = :id")


def post_pending(pending_id: uuid.UUID, idempotency_key: str) -> LedgerTransfer:
    """Settle a hold: its amount moves from pending to posted on both accounts. Once only.

    A hold past its timeout can no longer be posted (409 hold_expired); it can only be voided.
    """
    return _resolve(pending_id, idempotency_key, "post")


def void_pending(pending_id: uuid.UUID, idempotency_key: str) -> LedgerTransfer:
    """Release a hold: the pending amounts are removed and the citizen has the points back. Once only."""
    return _resolve(pending_id, idempotency_key, "void")


_INSERT_TRANSFER = text(
    """
    INSERT INTO ledger_transfers
        (id, idempotency_key, request_hash, kind, debit_account_id, credit_account_id, amount, pending,
         pending_id, timeout_at, citizen_id, event_id, details)
    VALUES (:id, :key, :request_hash, :kind, :debit_id, :credit_id, :amount, :pending,
            :pending_id, :timeout_at, :citizen_id, NULL, CAST(:details AS jsonb))
    ON CONFLICT DO NOTHING
    RETURNING id
    """
)

_ACCOUNT_IDS = text("SELECT code, id FROM ledger_accounts WHERE code = ANY(CAST(:codes AS text[]))")

_DEBIT_POSTED = text(
    f"UPDATE ledger_accounts SET debits_posted = debits_posted + :amount WHERE id = :id AND {_AVAILABLE_GUARD}"
)
_DEBIT_PENDING = text(
    f"UPDATE ledger_accounts SET debits_pending = debits_pending + :amount WHERE id = :id AND {_AVAILABLE_GUARD}"
)
_CREDIT_POSTED = text("UPDATE ledger_accounts SET credits_posted = credits_posted + :amount WHERE id = :id")


def _write_transfer(
    idempotency_key: str,
    debit_code: str,
    credit_code: str,
    amount: int,
    kind: str,
    *,
    pending: bool,
    citizen_id: int | None,
    details: dict[str, Any] | None,
    request_hash: bytes,
    timeout_at: datetime | None,
    prefer_lot: date | None = None,
) -> LedgerTransfer:
    if amount <= 0:
        raise ValueError("amount must be positive")
    if debit_code == credit_code:
        raise ValueError("a transfer needs two different accounts")
    db.session.flush()
    existing = _existing(idempotency_key)
    if existing is not None:
        return _replayed(existing, request_hash)

    try:
        with db.session.begin_nested():  # a refused transfer leaves nothing behind, even if caught
            ids = _account_ids([debit_code, credit_code])
            _lock_accounts(ids.values())
            inserted = db.session.execute(
                _INSERT_TRANSFER,
                {
                    "id": transfer_id_for(idempotency_key),
                    "key": idempotency_key,
                    "request_hash": request_hash,
                    "kind": kind,
                    "debit_id": ids[debit_code],
                    "credit_id": ids[credit_code],
                    "amount": amount,
                    "pending": pending,
                    "pending_id": None,
                    "timeout_at": timeout_at,
                    "citizen_id": citizen_id,
                    "details": json.dumps(details or {}, ensure_ascii=False, default=str),
                },
            ).first()
            if inserted is not None:
                debit = _DEBIT_PENDING if pending else _DEBIT_POSTED
                if db.session.execute(debit, {"id": ids[debit_code], "amount": amount}).rowcount != 1:
                    raise insufficient_points()
                if not pending:  # a pending credit is derived from the open holds, never stored (see hold)
                    db.session.execute(_CREDIT_POSTED, {"id": ids[credit_code], "amount": amount})
                _move_lots(debit_code, credit_code, amount, pending, transfer_id_for(idempotency_key), prefer_lot)
    except IntegrityError as exc:
        if "citizen_available_non_negative" in str(exc.orig):
            raise insufficient_points() from exc
        raise
    if inserted is None:  # a concurrent request with the same key committed first
        return _replayed(_required(idempotency_key), request_hash)
    return _loaded(transfer_id_for(idempotency_key))


def _move_lots(
    debit_code: str, credit_code: str, amount: int, pending: bool, transfer_id: uuid.UUID, prefer: date | None
) -> None:
    """Keep the lots in step with a transfer: a citizen's debit takes from their lots (a hold records
    which), a citizen's posted credit adds to the lot of today's expiry day."""
    debtor = _citizen_of(debit_code)
    if debtor is not None:
        if pending:
            lots.hold_lots(debtor, amount, transfer_id)
        else:
            lots.spend_lots(debtor, amount, prefer=prefer)
    creditor = _citizen_of(credit_code)
    if creditor is not None and not pending:
        lots.credit_lots({creditor: amount}, lots.expiry_for(lots.shanghai_day()))


def _resolve(pending_id: uuid.UUID, idempotency_key: str, kind: str) -> LedgerTransfer:
    """Post or void a hold: five statements (both transfers read at once, the accounts locked, the
    resolution inserted, both balances changed by one UPDATE, the lots released). The resolution
    returned is built from what was written (not read back, not in the session)."""
    db.session.flush()
    resolution_id = transfer_id_for(idempotency_key)
    found = {t.id: t for t in db.session.scalars(
        select(LedgerTransfer).where(LedgerTransfer.id.in_([resolution_id, pending_id])))}
    existing = found.get(resolution_id)
    if existing is not None and existing.idempotency_key == idempotency_key:
        if existing.kind == kind and existing.pending_id == pending_id:
            return existing
        raise idempotency_key_reused()

    held = found.get(pending_id)
    if held is None or not held.pending:
        raise hold_not_found()
    if kind == "post" and held.timeout_at is not None and utcnow() >= held.timeout_at:
        raise hold_expired()

    # A void changes the citizen's row only: the credit side is neither locked nor written.
    ids = [held.debit_account_id] if kind == "void" else [held.debit_account_id, held.credit_account_id]
    citizens = dict(db.session.execute(_LOCK_RESOLVING, {"ids": sorted(ids)}).tuples().all())
    # The partial unique index on pending_id lets exactly one resolution in; a concurrent one
    # waits here for the first to commit and then inserts nothing.
    inserted = db.session.execute(
        _INSERT_RESOLUTION,
        {
            "id": resolution_id,
            "key": idempotency_key,
            "request_hash": _request_hash(kind, str(pending_id), "", held.amount),
            "kind": kind,
            "debit_id": held.debit_account_id,
            "credit_id": held.credit_account_id,
            "amount": held.amount,
            "pending_id": pending_id,
            "citizen_id": held.citizen_id,
            "details": json.dumps(held.details, ensure_ascii=False, default=str),
        },
    ).first()
    if inserted is None:
        winner = _existing(idempotency_key)
        if winner is not None:  # the same key won a race: a replay
            return winner if winner.kind == kind and winner.pending_id == pending_id else _raise_reused()
        raise hold_already_resolved()
    db.session.execute(_RESOLVE_BALANCES, {"ids": ids, "debit_id": held.debit_account_id,
                                           "credit_id": held.credit_account_id, "amount": held.amount,
                                           "post": kind == "post"})
    lots.resolve_hold_lots(pending_id, kind)
    creditor = citizens.get(held.credit_account_id)
    if kind == "post" and creditor is not None:
        lots.credit_lots({creditor: held.amount}, lots.expiry_for(lots.shanghai_day()))
    return LedgerTransfer(
        id=resolution_id, idempotency_key=idempotency_key, request_hash=_request_hash(kind, str(pending_id), "",
                                                                                      held.amount),
        kind=kind, debit_account_id=held.debit_account_id, credit_account_id=held.credit_account_id,
        amount=held.amount, pending=False, pending_id=pending_id, timeout_at=None, citizen_id=held.citizen_id,
        event_id=None, details=held.details, explanation_id=None, created_at=inserted.created_at,
    )


# The accounts a resolution changes, locked in the global order; returns (id, citizen_id).
_LOCK_RESOLVING = text(
    """
    SELECT id, citizen_id FROM ledger_accounts
    WHERE id = ANY(CAST(:ids AS bigint[]))
    ORDER BY (kind <> 'citizen'), id
    FOR NO KEY UPDATE
    """
)
_INSERT_RESOLUTION = text(
    """
    INSERT INTO ledger_transfers
        (id, idempotency_key, request_hash, kind, debit_account_id, credit_account_id, amount, pending,
         pending_id, citizen_id, details)
    VALUES (:id, :key, :request_hash, :kind, :debit_id, :credit_id, :amount, false,
            :pending_id, :citizen_id, CAST(:details AS jsonb))
    ON CONFLICT DO NOTHING
    RETURNING id, created_at
    """
)
# Both sides of a resolution in one UPDATE. Posting keeps the citizen's available balance as it is
# (pending becomes posted) and adds the posted credit; voiding gives the points back. The credit
# side stored no pending credit (see hold), so a void leaves it alone (it is not even in :ids).
_RESOLVE_BALANCES = text(
    """
    UPDATE ledger_accounts SET
        debits_pending = debits_pending - CASE WHEN id = :debit_id THEN :amount ELSE 0 END,
        debits_posted = debits_posted + CASE WHEN id = :debit_id AND :post THEN :amount ELSE 0 END,
        credits_posted = credits_posted + CASE WHEN id = :credit_id AND :post THEN :amount ELSE 0 END
    WHERE id = ANY(CAST(:ids AS bigint[]))
    """
)


def _raise_reused() -> LedgerTransfer:
    raise idempotency_key_reused()


def _account_ids(codes: list[str]) -> dict[str, int]:
    """Ids of the given accounts, creating the missing ones (kind = the code's prefix)."""
    rows = dict(db.session.execute(_ACCOUNT_IDS, {"codes": codes}).tuples().all())
    missing = [code for code in codes if code not in rows]
    if missing:
        _ensure_accounts([_new_account(code) for code in missing])
        rows = dict(db.session.execute(_ACCOUNT_IDS, {"codes": codes}).tuples().all())
    return rows


def _new_account(code: str) -> tuple[str, str, int | None]:
    kind, _, ident = code.partition(":")
    if kind not in ACCOUNT_KINDS or not ident:
        raise ValueError(f"unknown ledger account code {code!r}")
    if kind == "citizen":
        if not ident.isdigit():
            raise ValueError(f"bad citizen account code {code!r}")
        return code, kind, int(ident)
    return code, kind, None


def _lock_accounts(ids: Any) -> None:
    db.session.execute(_LOCK_ACCOUNTS, {"ids": sorted(set(ids))}).all()


def _citizen_of(*codes: str) -> int | None:
    """Whose ledger page shows a transfer by default: the citizen on either side, if any."""
    for code in codes:
        kind, _, ident = code.partition(":")
        if kind == "citizen" and ident.isdigit():
            return int(ident)
    return None


def _request_hash(kind: str, debit_code: str, credit_code: str, amount: int) -> bytes:
    return hashlib.sha256(f"{kind}\n{debit_code}\n{credit_code}\n{amount}".encode()).digest()


def _existing(idempotency_key: str) -> LedgerTransfer | None:
    """The transfer made with this key, found by its id (uuid5 of the key): a primary-key lookup,
    where the key column has no index and a search on it read the whole table."""
    found = db.session.get(LedgerTransfer, transfer_id_for(idempotency_key))
    return found if found is not None and found.idempotency_key == idempotency_key else None


def _required(idempotency_key: str) -> LedgerTransfer:
    found = _existing(idempotency_key)
    if found is None:
        raise RuntimeError(f"transfer {idempotency_key!r} vanished")
    return found


def _loaded(transfer_id: uuid.UUID) -> LedgerTransfer:
    found = db.session.get(LedgerTransfer, transfer_id)
    if found is None:
        raise RuntimeError(f"transfer {transfer_id} not found")
    return found


def _replayed(existing: LedgerTransfer, request_hash: bytes) -> LedgerTransfer:
    if existing.request_hash != request_hash:
        raise idempotency_key_reused()
    return existing


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Balances:
    available: int  # may be spent now
    held: int  # reserved by unresolved holds (claimed coupons not yet redeemed)
    earned_total: int  # every point ever credited and posted to the citizen
    spent_total: int  # every point ever debited and posted (redeemed, expired, reversed)


def account_balances(citizen_id: int) -> Balances:
    row = db.session.execute(
        text(
            "SELECT credits_posted, debits_posted, debits_pending FROM ledger_accounts WHERE citizen_id = :citizen_id"
        ),
        {"citizen_id": citizen_id},
    ).first()
    if row is None:
        return Balances(available=0, held=0, earned_total=0, spent_total=0)
    credits_posted, debits_posted, debits_pending = row
    return Balances(
        available=credits_posted - debits_posted - debits_pending,
        held=debits_pending,
        earned_total=credits_posted,
        spent_total=debits_posted,
    )


_PENDING_CREDITS = text(
    """
    SELECT coalesce(sum(h.amount), 0) FROM ledger_transfers h JOIN ledger_accounts a ON a.id = h.credit_account_id
    WHERE a.code = :code AND h.pending
      AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = h.id)
    """
)


def pending_credits(account_code: str) -> int:
    """Points held for an account by open holds (e.g. a merchant's unredeemed coupons).

    Derived, not stored (see hold): a scan of the holds, for reconciliation and tests, not a hot path.
    """
    return int(db.session.scalar(_PENDING_CREDITS, {"code": account_code}) or 0)


# What an earn transfer's explanation takes from its event rather than storing it a second time
# (about 100 bytes of JSONB less to write per transfer on the crediting path). The event's row
# keeps these values: crediting writes grams once, with the transfer, and nothing changes them.
EVENT_FIELDS = ("activity", "grams", "occurred_at", "district")
_EVENT_COLUMNS = "ev.id AS ev_id, ev.activity AS ev_activity, ev.grams AS ev_grams, " \
    "ev.occurred_at AS ev_occurred_at, ev.district AS ev_district"
_EVENT_JOIN = "LEFT JOIN inbound_events ev ON ev.id = t.event_id AND t.kind = 'earn'"

_ENTRIES = f"""
    SELECT t.id, t.kind, t.amount, t.created_at, t.details, t.pending, t.timeout_at,
           t.credit_account_id = me.id AS incoming, r.kind AS resolution, x.details AS shared_details,
           {_EVENT_COLUMNS}
    FROM ledger_transfers t
    LEFT JOIN ledger_accounts me ON me.citizen_id = :citizen_id
    LEFT JOIN ledger_transfers r ON r.pending_id = t.id
    LEFT JOIN ledger_explanations x ON x.id = t.explanation_id
    {_EVENT_JOIN}
    WHERE t.citizen_id = :citizen_id AND t.pending_id IS NULL {{after}}
    ORDER BY t.created_at DESC, t.id DESC
    LIMIT :fetch
"""
# Two statements rather than one with "(:after IS NULL OR ...)", so each keeps an index range scan
# on ix_ledger_transfers_citizen_created even as a prepared, generic plan.
_FIRST_ENTRIES = text(_ENTRIES.format(after=""))
_NEXT_ENTRIES = text(
    _ENTRIES.format(
        after="AND (t.created_at, t.id) < (CAST(:after_created AS timestamptz), CAST(:after_id AS uuid))"
    )
)

_STATUS_OF_RESOLUTION = {None: "pending", "post": "posted", "void": "voided"}


def ledger_entries(citizen_id: int, *, cursor: str | None, limit: int) -> dict[str, Any]:
    """A citizen's ledger page, newest first, each entry with the explanation stored with it.

    A hold and its resolution show as one entry (the hold) whose status says how it ended:
    pending, posted or voided; the resolving transfer itself is not listed again.
    """
    after_created, after_id = _entries_cursor(cursor)
    params: dict[str, Any] = {"citizen_id": citizen_id, "fetch": limit + 1}
    if after_created is None:
        rows = db.session.execute(_FIRST_ENTRIES, params).all()
    else:
        rows = db.session.execute(_NEXT_ENTRIES, {**params, "after_created": after_created, "after_id": after_id}).all()
    entries = [
        {
            "id": row.id,
            "kind": row.kind,
            "amount": row.amount if row.incoming else -row.amount,
            "direction": "in" if row.incoming else "out",
            "created_at": row.created_at,
            "status": _STATUS_OF_RESOLUTION[row.resolution] if row.pending else "posted",
            "timeout_at": row.timeout_at,
            "explanation": _explanation(row.shared_details, row.details, row),
        }
        for row in rows
    ]
    return page(entries, limit, key=lambda entry: [entry["created_at"].isoformat(), str(entry["id"])])


def transfer_explanation(transfer_id: uuid.UUID) -> dict[str, Any] | None:
    """What a transfer's ledger entry shows as its explanation (None if there is no such transfer)."""
    row = db.session.execute(
        text(
            f"SELECT t.details, x.details AS shared_details, {_EVENT_COLUMNS} FROM ledger_transfers t "
            f"LEFT JOIN ledger_explanations x ON x.id = t.explanation_id {_EVENT_JOIN} WHERE t.id = :id"
        ),
        {"id": transfer_id},
    ).first()
    return None if row is None else _explanation(row.shared_details, row.details, row)


def _explanation(shared: dict[str, Any] | None, own: dict[str, Any], row: Any) -> dict[str, Any]:
    """{**shared, **the event's EVENT_FIELDS, **own}: `row` carries the ev_* columns (ev_id NULL: no event)."""
    if row.ev_id is None:
        return own if shared is None else {**shared, **own}
    return {
        **(shared or {}),
        "activity": row.ev_activity,
        "grams": row.ev_grams,
        "occurred_at": row.ev_occurred_at.isoformat(),
        "district": row.ev_district,
        **own,
    }


def _entries_cursor(cursor: str | None) -> tuple[datetime | None, uuid.UUID | None]:
    values = decode_cursor(cursor, 2)
    if values is None:
        return None, None
    try:
        created = datetime.fromisoformat(values[0])
        ident = uuid.UUID(values[1])
    except (TypeError, ValueError, AttributeError):
        created = None
        ident = None
    if created is None or ident is None or created.tzinfo is None:
        raise AppError("invalid_cursor", "The cursor is invalid.", "分页游标无效。", 400)
    return created, ident


# ---------------------------------------------------------------------------------------------
# Invariants
# ---------------------------------------------------------------------------------------------

_INVARIANT_CHECKS: tuple[tuple[str, str], ...] = (
    (
        "account balance differs from its transfers",
        """
        WITH hold_state AS (
            SELECT h.id, (r.id IS NULL) AS open
            FROM ledger_transfers h LEFT JOIN ledger_transfers r ON r.pending_id = h.id
            WHERE h.pending
        ),
        moves AS (
            SELECT t.debit_account_id AS account_id,
                   CASE WHEN NOT t.pending AND t.kind <> 'void' THEN t.amount ELSE 0 END AS debit_posted,
                   0 AS credit_posted,
                   CASE WHEN t.pending AND hs.open THEN t.amount ELSE 0 END AS debit_pending,
                   0 AS credit_pending
            FROM ledger_transfers t LEFT JOIN hold_state hs ON hs.id = t.id
            UNION ALL
            -- A hold's credit side is derived (pending_credits), never stored: its row keeps 0.
            SELECT t.credit_account_id, 0,
                   CASE WHEN NOT t.pending AND t.kind <> 'void' THEN t.amount ELSE 0 END,
                   0,
                   0
            FROM ledger_transfers t
        ),
        sums AS (
            SELECT account_id, sum(debit_posted) AS dp, sum(credit_posted) AS cp,
                   sum(debit_pending) AS dq, sum(credit_pending) AS cq
            FROM moves GROUP BY account_id
        )
        SELECT format('account %s (%s): posted %s/%s pending %s/%s, transfers say %s/%s and %s/%s',
                      a.id, a.code, a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending,
                      coalesce(s.dp, 0), coalesce(s.cp, 0), coalesce(s.dq, 0), coalesce(s.cq, 0))
        FROM ledger_accounts a LEFT JOIN sums s ON s.account_id = a.id
        WHERE (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)
              IS DISTINCT FROM (coalesce(s.dp, 0), coalesce(s.cp, 0), coalesce(s.dq, 0), coalesce(s.cq, 0))
        """,
    ),
    (
        "citizen available balance below zero",
        """
        SELECT format('account %s (%s): available %s', id, code, credits_posted - debits_posted - debits_pending)
        FROM ledger_accounts
        WHERE kind = 'citizen' AND credits_posted - debits_posted - debits_pending < 0
        """,
    ),
    (
        "pending transfer resolved more than once",
        """
        SELECT format('hold %s resolved %s times', pending_id, count(*))
        FROM ledger_transfers WHERE pending_id IS NOT NULL
        GROUP BY pending_id HAVING count(*) > 1
        """,
    ),
    (
        "resolution does not match its hold",
        """
        SELECT format('resolution %s of %s', r.id, r.pending_id)
        FROM ledger_transfers r LEFT JOIN ledger_transfers h ON h.id = r.pending_id
        WHERE r.pending_id IS NOT NULL
          AND (h.id IS NULL OR NOT h.pending OR r.pending OR r.kind NOT IN ('post', 'void')
               OR (r.debit_account_id, r.credit_account_id, r.amount)
                  IS DISTINCT FROM (h.debit_account_id, h.credit_account_id, h.amount))
        """,
    ),
    (
        "void without a hold",
        "SELECT format('transfer %s is a void without pending_id', id) FROM ledger_transfers "
        "WHERE kind = 'void' AND pending_id IS NULL",
    ),
    (
        "debits and credits do not balance",
        """
        WITH open_holds AS (
            SELECT coalesce(sum(h.amount), 0) AS amount FROM ledger_transfers h
            WHERE h.pending AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = h.id)
        )
        SELECT format('debits %s/%s vs credits %s/%s (posted/pending: the open holds)',
                      sum(debits_posted), sum(debits_pending), sum(credits_posted), max(o.amount))
        FROM ledger_accounts CROSS JOIN open_holds o
        HAVING sum(debits_posted) <> sum(credits_posted) OR sum(debits_pending) <> max(o.amount)
               OR sum(credits_pending) <> 0
        """,
    ),
    (
        "transfer names an account that does not exist",
        """
        SELECT format('transfer %s: %s account %s', t.id, side.name, side.account_id)
        FROM ledger_transfers t
        CROSS JOIN LATERAL (VALUES ('debit', t.debit_account_id), ('credit', t.credit_account_id))
             AS side(name, account_id)
        WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = side.account_id)
        """,
    ),
    (
        "transfer refers to an explanation that does not exist",
        """
        SELECT format('transfer %s: explanation %s', t.id, t.explanation_id)
        FROM ledger_transfers t
        WHERE t.explanation_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM ledger_explanations x WHERE x.id = t.explanation_id)
        """,
    ),
    (
        "idempotency key maps to more than one transfer",
        """
        SELECT format('key %s: %s transfers', idempotency_key, count(*))
        FROM ledger_transfers GROUP BY idempotency_key HAVING count(*) > 1
        """,
    ),
    (
        # The lots' equation (app.ledger.lots): free lot points are the available balance, held
        # lot points the held balance.
        "lots do not match the citizen's balance",
        """
        WITH lot_sums AS (
            SELECT citizen_id, sum(remaining) AS remaining, sum(held) AS held FROM ledger_lots GROUP BY citizen_id
        )
        SELECT format('citizen %s: lots remaining %s held %s, account available %s held %s',
                      coalesce(a.citizen_id, l.citizen_id), coalesce(l.remaining, 0), coalesce(l.held, 0),
                      coalesce(a.credits_posted - a.debits_posted - a.debits_pending, 0), coalesce(a.debits_pending, 0))
        FROM (SELECT * FROM ledger_accounts WHERE kind = 'citizen') AS a
        FULL JOIN lot_sums l ON l.citizen_id = a.citizen_id
        WHERE (coalesce(l.remaining, 0), coalesce(l.held, 0))
              IS DISTINCT FROM (coalesce(a.credits_posted - a.debits_posted - a.debits_pending, 0),
                                coalesce(a.debits_pending, 0))
        """,
    ),
    (
        "lot held differs from its open holds' allocations",
        """
        WITH open_allocations AS (
            SELECT a.lot_id, sum(a.amount) AS amount
            FROM ledger_hold_allocations a
            WHERE NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = a.hold_id)
            GROUP BY a.lot_id
        )
        SELECT format('lot %s: held %s, open allocations %s', coalesce(l.id, o.lot_id), coalesce(l.held, 0),
                      coalesce(o.amount, 0))
        FROM ledger_lots l FULL JOIN open_allocations o ON o.lot_id = l.id
        WHERE coalesce(l.held, 0) <> coalesce(o.amount, 0)
        """,
    ),
    (
        "hold allocations do not add up to the hold",
        """
        SELECT format('hold %s: amount %s, allocated %s', h.id, h.amount, coalesce(sum(a.amount), 0))
        FROM ledger_transfers h
        JOIN ledger_accounts d ON d.id = h.debit_account_id AND d.kind = 'citizen'
        LEFT JOIN ledger_hold_allocations a ON a.hold_id = h.id
        WHERE h.pending
        GROUP BY h.id, h.amount
        HAVING h.amount <> coalesce(sum(a.amount), 0)
        """,
    ),
    (
        "lot gave out more than came in",
        """
        SELECT format('lot %s: credited %s < remaining %s + held %s + expired %s', id, credited, remaining, held,
                      expired)
        FROM ledger_lots WHERE remaining + held + expired > credited
        """,
    ),
    (
        "debt below zero",
        """
        SELECT format('account %s: repaid %s of a debt of %s', code, credits_posted, debits_posted)
        FROM ledger_accounts WHERE kind = 'clawback' AND credits_posted > debits_posted
        """,
    ),
    (
        "reversal does not match its transfers",
        """
        SELECT format('reversal of %s: recovered %s debt %s', r.transfer_id, r.recovered, r.debt)
        FROM ledger_reversals r
        JOIN ledger_transfers c ON c.id = r.transfer_id
        WHERE c.amount <> r.amount
           OR r.recovered <> coalesce((SELECT sum(t.amount) FROM ledger_transfers t
                                       WHERE t.idempotency_key = 'reverse:' || r.transfer_id), 0)
           OR r.debt <> coalesce((SELECT sum(t.amount) FROM ledger_transfers t
                                  WHERE t.idempotency_key = 'reverse:' || r.transfer_id || ':' || 'debt'), 0)
        """,
    ),
)


def check_invariants() -> list[str]:
    """Every ledger invariant checked in SQL; returns the violations, empty when all hold.

    Full scans: for tests, the state machine and an operator's reconciliation, not a hot path.
    Also checks that every transfer id is uuid5 of its key (in Python, over the ids only).
    """
    db.session.flush()
    problems: list[str] = []
    for title, sql in _INVARIANT_CHECKS:
        problems.extend(f"{title}: {line}" for line in db.session.scalars(text(sql)))
    for transfer_id, key in db.session.execute(text("SELECT id, idempotency_key FROM ledger_transfers")):
        if transfer_id != transfer_id_for(key):
            problems.append(f"transfer id not derived from its key: {key} -> {transfer_id}")
    return problems
