"""`flask demo load` builds a usable demo through the real services, once."""
from __future__ import annotations

import json

from sqlalchemy import func, select

from app.behaviours.models import InboundEvent
from app.extensions import db
from app.ledger.models import LedgerTransfer
from app.ledger.service import check_invariants


def test_demo_load_creates_a_citizen_with_credited_history_once(app, committed, tmp_path) -> None:
    from scenarios.service import load_directory

    load_directory()
    committed.commit()
    app.config["DEMO_SECRETS_PATH"] = str(tmp_path / "demo-partners.json")
    try:
        runner = app.test_cli_runner()
        first = runner.invoke(args=["demo", "load"])
        assert first.exit_code == 0, first.output
        assert "credited" in first.output
        secrets = json.loads((tmp_path / "demo-partners.json").read_text())
        assert set(secrets) == {"shmetro", "shbus", "hellobike", "shrecycle", "sheinvoice"}
        assert (tmp_path / "demo-partners.json").stat().st_mode & 0o077 == 0

        credited = db.session.scalar(select(func.count()).where(InboundEvent.status == "credited"))
        transfers = db.session.scalar(select(func.count()).select_from(LedgerTransfer))
        assert credited >= 50
        assert transfers == credited
        assert check_invariants() == []

        from rewards.coupons.service import list_offers

        titles = [offer["title_en"] for offer in list_offers(None, 10)["items"]]
        assert len(titles) == 4 and "Chongming" in titles[0]  # live, rural revitalisation first
        assert [o["badge_code"] for o in list_offers(None, 10)["items"] if o["kind"] == "honour"] == [
            "green_pioneer"]  # the platform's honour offer (荣誉兑换)

        from app.auth.providers import ProviderIdentity
        from app.auth.service import find_identity
        from doubles.suishenban import sub_for
        from doubles.wechat import openid_for
        from rewards.merchants.models import MerchantStaff

        for user in ("demo-merchant", "demo-cashier"):  # merchant mode works from the H5 build too
            wechat = find_identity(ProviderIdentity("wechat", openid_for(app.config["WECHAT_APPID"], user)))
            h5 = find_identity(ProviderIdentity("suishenban", sub_for(app.config["SUISHENBAN_CLIENT_ID"], user)))
            assert wechat is not None and h5 is not None and wechat.citizen_id == h5.citizen_id
            assert db.session.scalar(select(func.count()).where(MerchantStaff.citizen_id == h5.citizen_id)) == 1

        second = runner.invoke(args=["demo", "load"])
        assert second.exit_code == 0
        assert "already loaded" in second.output
        assert db.session.scalar(select(func.count()).select_from(LedgerTransfer)) == transfers
    finally:
        app.config.pop("DEMO_SECRETS_PATH", None)
