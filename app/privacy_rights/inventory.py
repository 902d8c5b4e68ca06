"""The machine-readable inventory of personal data (SECURITY §Personal information).

Every table that holds rows about one citizen is listed with the column naming the citizen, the
export section its rows go to, the columns withheld from the export (and why), and what account
deletion does to it:

- "delete": the rows go (nothing else depends on them);
- "erase": the listed columns are overwritten (NULL, or an empty document where NULL is not allowed);
  the rows stay because the ledger, anti-fraud or the audit trail rely on them;
- "keep": the rows stay as they are: they hold ids, amounts, dates and codes only, and once the
  citizen row has no phone and no sign-in identity left, its id points to nobody (pseudonymised).

Export and deletion are driven by this table, and tests/privacy_rights check it against the models:
a new table with a citizen_id column fails until it is classified here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BLIND_INDEX = "keyed blind index: a lookup key, not information about you"
KEY_MATERIAL = "a hash of a secret (token or code); worthless outside our database"


@dataclass(frozen=True)
class PersonalTable:
    table: str
    owner: str  # the column naming the citizen
    section: str  # the export's key for these rows
    on_delete: str  # "delete" | "erase" | "keep"
    why: str  # why the rows are deleted, erased or kept
    withheld: dict[str, str] = field(default_factory=dict)  # column -> why it is not exported as stored
    erase: dict[str, Any] = field(default_factory=dict)  # column -> value written on deletion


INVENTORY: tuple[PersonalTable, ...] = (
    PersonalTable(
        "citizens", "id", "profile", "erase",
        "the row anchors the ledger's account; phone and district go, status becomes closed",
        withheld={"phone_idx": BLIND_INDEX, "phone_enc": "exported decrypted, as phone",
                  "key_version": "which key sealed the phone"},
        erase={"phone_idx": None, "phone_enc": None, "home_district": None},
    ),
    PersonalTable(
        "identities", "citizen_id", "identities", "delete",
        "signing in with the same provider afterwards creates a new, unrelated account",
        withheld={"subject_idx": BLIND_INDEX, "subject_enc": "the provider's id for you, sealed; shown as the provider",
                  "unionid_idx": BLIND_INDEX},
    ),
    PersonalTable(
        "refresh_tokens", "citizen_id", "sessions", "delete", "every session ends",
        withheld={"token_hash": KEY_MATERIAL, "family_id": "an internal grouping of one device's tokens"},
    ),
    PersonalTable("consents", "citizen_id", "consents", "keep",
                  "proof of what was consented to and when (withdrawn at deletion); versions and dates only"),
    PersonalTable("binding_codes", "citizen_id", "binding_codes", "delete", "unused codes must not bind anything",
                  withheld={"code_hash": KEY_MATERIAL}),
    PersonalTable(
        "partner_bindings", "citizen_id", "bindings", "delete",
        "the partner's reference for you is forgotten; its later events bind to nobody and are refused",
        withheld={"account_ref_idx": BLIND_INDEX, "account_ref_enc": "exported masked, as account_ref_masked"},
    ),
    PersonalTable(
        "inbound_events", "citizen_id", "events", "erase",
        "the ledger's earnings name these events: what happened (stations, times of day, evidence) is erased, "
        "grams and points stay so the totals still add up",
        withheld={"account_ref_idx": BLIND_INDEX},
        erase={"activity": {}, "evidence": None, "district": None, "account_ref_idx": None},
    ),
    PersonalTable("daily_usage", "citizen_id", "usage_daily", "keep", "cap counters: numbers per scenario and day"),
    PersonalTable("monthly_usage", "citizen_id", "usage_monthly", "keep",
                  "cap counters: numbers per scenario and month"),
    PersonalTable("ledger_accounts", "citizen_id", "ledger_accounts", "keep",
                  "the ledger is append-only: balances must keep reconciling"),
    PersonalTable("ledger_transfers", "citizen_id", "ledger_entries", "keep",
                  "the ledger is append-only: entries stay, naming an id that points to nobody",
                  withheld={"request_hash": "a hash that detects a reused idempotency key"}),
    PersonalTable("ledger_lots", "citizen_id", "point_lots", "keep", "the ledger's lots reconcile with the balance"),
    PersonalTable("ledger_reversals", "citizen_id", "reversals", "keep", "fraud reversals are part of the ledger"),
    PersonalTable("notifications", "citizen_id", "notifications", "delete", "nobody is left to read them"),
    PersonalTable("citizen_honours", "citizen_id", "badges", "delete", "badges belong to the person"),
    PersonalTable("honour_profiles", "citizen_id", "honour_profile", "delete",
                  "the nickname and the leaderboard choice go"),
    PersonalTable("offer_claim_counts", "citizen_id", "offer_claims", "keep",
                  "per-offer claim counters: numbers only"),
    PersonalTable("coupons", "citizen_id", "coupons", "keep",
                  "merchants' redemptions and the ledger's holds name them; unused ones are cancelled"),
    PersonalTable("honour_exchanges", "citizen_id", "honour_exchanges", "keep",
                  "the ledger's spend names them"),
    PersonalTable("merchant_staff", "citizen_id", "merchant_roles", "erase",
                  "the merchant's redemption history names the staff member; the role ends",
                  erase={"label": None}),
    PersonalTable(
        "appeals", "citizen_id", "appeals", "erase",
        "decisions stay with the ledger credit they made; what you wrote is erased",
        withheld={"details_enc": "exported unsealed, as partner_reference, description and einvoice_number"},
        erase={"details_enc": None},
    ),
    PersonalTable("account_deletions", "citizen_id", "deletion_requests", "keep",
                  "the receipt that the account was deleted",
                  withheld={"token_hash": KEY_MATERIAL}),
)

BY_TABLE: dict[str, PersonalTable] = {entry.table: entry for entry in INVENTORY}
