"""The citizen's copy of all their personal data (PIPL Art. 45: access and portability).

Driven by the inventory: every inventoried table's rows about the citizen, every column except the
withheld ones (hashes, blind indexes, ciphertexts), with the sealed values the owner may see
unsealed (the phone, what they wrote in appeals) or masked (a partner's reference). Binary columns
are never exported as such. Nothing here logs the content.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import LargeBinary, select

from app import crypto
from app.accounts import service as accounts
from app.appeals.models import Appeal
from app.appeals.service import details_of
from app.audit import service as audit
from app.errors import not_found
from app.extensions import db
from app.ledger.service import account_balances
from app.models_base import utcnow
from app.partners.models import Partner, PartnerBinding
from app.partners.service import _ref_aad, mask_ref
from app.privacy_rights.inventory import INVENTORY, PersonalTable

FORMAT = "carbon-account-export/1"


def export_account(citizen_id: int) -> dict[str, Any]:
    """Everything we hold about the citizen, as one JSON-ready document; the export is audited."""
    citizen = accounts.active_citizen(citizen_id)
    if citizen is None:
        raise not_found("account", "账户")
    document: dict[str, Any] = {
        "format": FORMAT,
        "generated_at": utcnow().isoformat(),
        "citizen_id": citizen_id,
        "explanation": {
            "en": "All personal data the Shanghai carbon account holds about you. Hashes and keyed indexes "
                  "are left out (they are lookup keys, not information); see `withheld`.",
            "zh": "上海碳普惠账户保存的关于你的全部个人信息。哈希值和密钥索引仅用于查找、不含信息，"
                  "未导出，见 withheld。",
        },
        "withheld": {entry.table: entry.withheld for entry in INVENTORY if entry.withheld},
        "balances": asdict(account_balances(citizen_id)),
    }
    for entry in INVENTORY:
        rows = _rows(entry, citizen_id)
        document[entry.section] = rows[0] if entry.section == "profile" else rows
    document["profile"]["phone"] = accounts.owner_phone(citizen)
    _reveal_bindings(document["bindings"], citizen_id)
    _reveal_appeals(document["appeals"], citizen_id)
    # Keys are strings, values plain JSON: what the download holds is exactly this.
    document = json.loads(json.dumps(document, default=_plain, ensure_ascii=False))
    rows = sum(len(document[entry.section]) for entry in INVENTORY if entry.section != "profile")
    audit.record("privacy.exported", actor_type="citizen", actor_id=citizen_id, object_type="citizen",
                 object_id=citizen_id, details={"format": FORMAT, "rows": rows})
    return document


def exported_columns(entry: PersonalTable) -> list[str]:
    """The columns of a table the export shows as stored: all but the withheld and the binary ones."""
    table = db.metadata.tables[entry.table]
    return [c.name for c in table.columns if c.name not in entry.withheld and not isinstance(c.type, LargeBinary)]


def _rows(entry: PersonalTable, citizen_id: int) -> list[dict[str, Any]]:
    table = db.metadata.tables[entry.table]
    columns = [table.c[name] for name in exported_columns(entry)]
    order = [table.c.created_at] if "created_at" in table.c else []  # oldest first where rows say when
    query = (select(*columns).where(table.c[entry.owner] == citizen_id)
             .order_by(*order, *table.primary_key.columns))
    return [dict(row._mapping) for row in db.session.execute(query)]


def _reveal_bindings(rows: list[dict[str, Any]], citizen_id: int) -> None:
    query = (select(PartnerBinding, Partner).join(Partner, Partner.id == PartnerBinding.partner_id)
             .where(PartnerBinding.citizen_id == citizen_id))
    bindings = {binding.id: (binding, partner) for binding, partner in db.session.execute(query).tuples()}
    for row in rows:
        binding, partner = bindings[row["id"]]
        row.update(partner_code=partner.code, partner_name_zh=partner.name_zh, partner_name_en=partner.name_en)
        reference = crypto.decrypt(binding.account_ref_enc, _ref_aad(binding.partner_id, citizen_id))
        row["account_ref_masked"] = mask_ref(reference)


def _reveal_appeals(rows: list[dict[str, Any]], citizen_id: int) -> None:
    appeals = {a.id: a for a in db.session.scalars(select(Appeal).where(Appeal.citizen_id == citizen_id))}
    for row in rows:
        row.update(details_of(appeals[row["id"]]))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    raise TypeError(f"cannot export a {type(value).__name__}")

