"""Layer 3: the mini-app's H5 build in Debian's Chromium against the real Flask API and database.

A citizen signs in through the local Suishenban double (OAuth redirect to /m/?code=&state=),
accepts the privacy terms, sees the balance, claims an offer and shows its QR code; a cashier
(another citizen bound as merchant staff) signs in, switches to merchant mode and redeems the
coupon by its short code; the citizen then sees the coupon marked used. A screenshot of each page
is saved under tests/artifacts/miniapp/ (gitignored). Never `playwright install`: Debian's
chromium and fonts-noto-cjk are used (make test installs them).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from app.accounts import service as accounts
from app.accounts.terms import TERMS_VERSION
from app.auth.providers import ProviderIdentity
from app.auth.service import citizen_for_identity
from app.miniapp_h5 import DEFAULT_H5_DIR
from app.partners.service import create_partner
from doubles.suishenban import SuishenbanDouble, sub_for
from scenarios.service import load_directory
from tests.browser import ARTIFACTS as ALL_ARTIFACTS
from tests.browser import chromium, loopback_server, serving
from tests.rewards.factories import make_merchant, make_merchant_staff
from tests.rewards.test_coupons_support import give_points, make_offer

ARTIFACTS = ALL_ARTIFACTS / "miniapp"
SSB_CLIENT_ID = "carbon-h5-test"
SSB_SECRET = "carbon-h5-test-secret"


@pytest.fixture
def live(app: Flask, committed: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app on a loopback port, its Suishenban client pointed at a double that redirects to /m/."""
    assert (DEFAULT_H5_DIR / "index.html").is_file(), "build the H5 bundle first: make miniapp-h5"
    server = loopback_server(app)
    base = f"http://127.0.0.1:{server.server_port}"
    double = SuishenbanDouble(SSB_CLIENT_ID, SSB_SECRET, f"{base}/m/")
    double.start()
    settings = {"SUISHENBAN_BASE_URL": double.url, "SUISHENBAN_CLIENT_ID": SSB_CLIENT_ID,
                "SUISHENBAN_CLIENT_SECRET": SSB_SECRET, "SUISHENBAN_REDIRECT_URI": f"{base}/m/"}
    for name, value in settings.items():
        monkeypatch.setitem(app.config, name, value)
    monkeypatch.setitem(app.extensions, "identity_providers", {})  # clients are built from config once
    try:
        with serving(server):
            yield base
    finally:
        double.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(ARTIFACTS) as launched:
        yield launched


def _phone(browser: Browser) -> Page:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  locale="zh-CN", device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(15000)
    page.on("console", lambda message: message.type == "error" and _CONSOLE_ERRORS.append(message.text))
    page.on("pageerror", lambda error: _CONSOLE_ERRORS.append(str(error)))
    return page


_CONSOLE_ERRORS: list[str] = []


def _shot(page: Page, name: str) -> None:
    page.wait_for_timeout(200)  # let the last transition settle
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _sign_in(page: Page, base: str, user: str) -> None:
    page.goto(f"{base}/m/")
    page.locator("[data-test=login-suishenban]").click()
    page.wait_for_url(re.compile(r"/oauth2/authorize"))
    page.fill("input[name=user]", user)
    page.click("button[value=approve]")
    page.wait_for_url(re.compile(r"/m/"))


def _citizen(user: str) -> int:
    return citizen_for_identity(ProviderIdentity("suishenban", sub_for(SSB_CLIENT_ID, user))).id


def test_claim_show_qr_and_redeem_through_the_h5_build(live: str, browser: Browser, committed) -> None:
    load_directory()
    create_partner("shmetro", "metro", "上海地铁", "Shanghai Metro")
    _CONSOLE_ERRORS.clear()
    citizen_id = _citizen("h5-citizen")
    give_points(citizen_id, 1000)
    merchant_id, stores = make_merchant(name_zh="绿色咖啡", name_en="Green Café")
    make_offer(merchant_id, points_price=100, title_zh="拿铁立减5元", rural_revitalisation=False)
    rural_offer = make_offer(merchant_id, points_price=200, title_zh="崇明大米一袋", title_en="A bag of Chongming rice",
                             rural_revitalisation=True)
    cashier_id = _citizen("h5-cashier")
    accounts.grant_privacy_consent(cashier_id, TERMS_VERSION)
    make_merchant_staff(merchant_id, stores[:1], citizen_id=cashier_id)
    committed.commit()

    citizen = _phone(browser)
    _sign_in(citizen, live, "h5-citizen")
    expect(citizen.locator("[data-test=terms-title]")).to_be_visible()
    _shot(citizen, "01-consent")
    citizen.locator("[data-test=accept]").click()

    expect(citizen.locator("[data-test=balance]")).to_have_text("1,000 积分")
    _shot(citizen, "02-home")

    citizen.locator("[data-test=go-log]").click()
    citizen.locator("[data-test=doc-number] input").fill("1234")
    citizen.locator("[data-test=declare]").click()
    expect(citizen.locator("[data-test=log-error]")).to_have_text("票据号码格式不正确（电子发票为20位数字）。")
    citizen.locator("[data-test=doc-number] input").fill("2631 2000 0000 1234 5678")
    citizen.locator("[data-test=declare]").click()
    expect(citizen.locator("text=****************5678")).to_be_visible()  # the API masks the number
    expect(citizen.locator("text=处理中")).to_be_visible()
    _shot(citizen, "02b-paperless")
    citizen.go_back()

    citizen.locator("[data-test=nav-history]").click()
    expect(citizen.locator("[data-test^=entry-]").first).to_be_visible()
    citizen.locator("[data-test^=entry-]").first.click()
    expect(citizen.locator("[data-test=explanation]")).to_be_visible()
    _shot(citizen, "03-history")

    citizen.locator("[data-test=nav-me]").click()
    citizen.locator("[data-test=go-scenarios]").click()
    expect(citizen.locator("[data-test=scenario-metro_trip]")).to_contain_text("上海地铁")
    _shot(citizen, "03b-scenarios")
    citizen.go_back()
    citizen.locator("[data-test=go-bindings]").click()
    citizen.locator("[data-test=bind-shmetro]").click()
    expect(citizen.locator("[data-test=binding-code]")).to_contain_text("上海地铁 绑定码")
    _shot(citizen, "03c-bindings")
    citizen.go_back()

    citizen.locator("[data-test=nav-rewards]").click()
    offers = citizen.locator("[data-test^=offer-]")
    expect(offers.first).to_have_attribute("data-test", f"offer-{rural_offer}")  # rural revitalisation first
    _shot(citizen, "04-offers")
    citizen.locator(f"[data-test=claim-{rural_offer}]").click()
    citizen.locator(".uni-modal__btn_primary").click()

    expect(citizen.locator("[data-test=coupon-status]")).to_have_text("待使用")
    expect(citizen.locator("[data-test=qr] img, [data-test=qr] div").first).to_be_attached()
    short_code = re.sub(r"\s", "", citizen.locator("[data-test=short-code]").inner_text())
    assert re.fullmatch(r"[0-9]{8}", short_code), short_code
    _shot(citizen, "05-coupon-qr")

    cashier = _phone(browser)
    _sign_in(cashier, live, "h5-cashier")
    expect(cashier.locator("[data-test=balance]")).to_be_visible()
    cashier.locator("[data-test=nav-me]").click()
    cashier.locator("[data-test=go-merchant]").click()
    expect(cashier.locator("[data-test=merchant-name]")).to_have_text("绿色咖啡")
    _shot(cashier, "06-merchant")
    cashier.locator("[data-test=short-code-input] input").fill(short_code)
    cashier.locator("[data-test=next]").click()
    expect(cashier.locator("[data-test=confirm-code]")).to_have_text(short_code)
    _shot(cashier, "07-merchant-confirm")
    cashier.locator("[data-test=confirm]").click()
    expect(cashier.locator("[data-test=result-text]")).to_have_text("核销成功")
    expect(cashier.locator("text=崇明大米一袋").last).to_be_visible()
    _shot(cashier, "08-merchant-result")

    citizen.reload()
    expect(citizen.locator("[data-test=coupon-status]")).to_have_text("已使用")
    expect(citizen.locator("[data-test=qr]")).to_have_count(0)
    _shot(citizen, "09-coupon-used")

    citizen.goto(f"{live}/m/#/pages/me/index")
    citizen.locator("[data-test=lang-en]").click()
    citizen.locator("[data-test=large-text] .uni-switch-input").click()
    expect(citizen).to_have_title("Me")
    citizen.locator("[data-test=nav-home]").click()
    expect(citizen.locator("[data-test=balance]")).to_have_text("800 pts")
    _shot(citizen, "10-home-en-large")

    # 360-430 px phones, large text and English (the longest strings): nothing wider than the screen.
    for width in (360, 430):
        citizen.set_viewport_size({"width": width, "height": 800})
        for name in ("home", "history", "rewards", "honours", "me"):
            citizen.locator(f"[data-test=nav-{name}]").click()
            expect(citizen.locator("[data-test=loading]")).to_have_count(0)
            overflow = citizen.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} at {width} px is {overflow} px too wide"
        _shot(citizen, f"11-me-{width}px")

    # Me: report missing points, export my data, then delete the account.
    citizen.set_viewport_size({"width": 390, "height": 844})
    citizen.locator("[data-test=go-appeals]").click()
    citizen.locator("[data-test=appeal-scenario]").click()
    citizen.locator(".uni-picker-action-confirm").locator("visible=true").click()
    citizen.locator("[data-test=appeal-description] textarea").fill("Line 1, Xujiahui to People's Square, no points")
    citizen.locator("[data-test=appeal-submit]").click()
    expect(citizen.locator("[data-test^=appeal-] .tag")).to_have_text("Being checked")
    _shot(citizen, "12-appeals")
    citizen.go_back()

    citizen.locator("[data-test=go-mydata]").click()
    with citizen.expect_download() as download:
        citizen.locator("[data-test=export]").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["citizen_id"] == citizen_id and exported["format"].startswith("carbon-account-export/")
    citizen.locator("[data-test=delete-start]").click()
    expect(citizen.locator("[data-test=delete-consequences]")).to_contain_text("800 pts")
    _shot(citizen, "13-delete-account")
    citizen.locator("[data-test=delete-confirm]").click()
    citizen.locator(".uni-modal__btn_primary").click()
    expect(citizen.locator("[data-test=deleted]")).to_be_visible()
    _shot(citizen, "14-deleted")
    # No script error and nothing blocked by the Content-Security-Policy /m/ is served with.
    assert [e for e in _CONSOLE_ERRORS if "Failed to load resource" not in e] == []
