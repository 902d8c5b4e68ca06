"""The console in Debian's Chromium against the real app and database: draft → review → file (备案).

An operator signs in and drafts a methodology through the form (an invalid formula first: refused
with the engine's message), submits it; a reviewer signs in, tries sample activities in the trial
calculator (试算) and approves it; an admin files it and the filing number SHCI-M-<year>-001
appears with the whole decision history; the operator then sets up a scenario on it, tries it and
publishes it, and the public catalogue lists it. One browser for the module, one context (cookie jar) per
person; a screenshot per page under tests/artifacts/console/ (gitignored). Never `playwright install`:
Debian's chromium and fonts-noto-cjk are used.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from app.staff.models import StaffUser
from tests.browser import ARTIFACTS as ALL_ARTIFACTS
from tests.browser import chromium, loopback_server, serving
from tests.rewards.factories import TEST_PASSWORD, make_staff

ARTIFACTS = ALL_ARTIFACTS / "console"


@pytest.fixture
def live(app: Flask, committed: object) -> Iterator[str]:
    """The app on a loopback port (its own thread), against the test database's committed data."""
    server = loopback_server(app)
    with serving(server):
        yield f"http://127.0.0.1:{server.server_port}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(ARTIFACTS) as launched:
        yield launched


_problems: list[str] = []


def _person(browser: Browser) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(15000)
    page.on("console", lambda message: message.type == "error" and _problems.append(message.text))
    page.on("pageerror", lambda error: _problems.append(str(error)))
    return page


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _sign_in(page: Page, base: str, login: str, shot: str | None = None) -> None:
    page.goto(f"{base}/console/")
    page.wait_for_url(re.compile(r"/console/sign-in"))
    expect(page.get_by_role("heading", name=re.compile("员工登录"))).to_be_visible()
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", TEST_PASSWORD)
    if shot:
        _shot(page, shot)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(re.compile(r"/console/methodologies"))


def _cjk_font_in_use(page: Page) -> bool:
    """Chromium's own answer: the body's first font family resolves to an installed font."""
    return bool(page.evaluate("document.fonts.check('16px \"Noto Sans CJK SC\"', '碳普惠方法学')"))


def test_draft_review_and_file_a_methodology_in_the_browser(app: Flask, live: str, browser: Browser,
                                                            committed) -> None:
    with app.app_context():
        logins = {}
        for role in ("operator", "reviewer", "admin"):
            staff_id = make_staff(role, display_name={"operator": "李运营", "reviewer": "王审核",
                                                      "admin": "张管理"}[role])
            logins[role] = committed.get(StaffUser, staff_id).login
        committed.commit()

    operator = _person(browser)
    _sign_in(operator, live, logins["operator"], "01-sign-in")
    expect(operator.get_by_test_id("who")).to_contain_text("李运营（运营人员）")
    assert _cjk_font_in_use(operator)
    _shot(operator, "02-methodologies-empty")
    operator.get_by_role("link", name="起草新方法学").click()
    operator.fill("input[name=code]", "SHCI-P-EBIKE")
    operator.fill("input[name=title_zh]", "共享电单车出行")
    operator.fill("input[name=title_en]", "Shared e-bike trip")
    operator.fill("textarea[name=fields]", "- {name: distance_km, type: decimal, unit: km, min: 0.1, max: 50}")
    operator.fill("textarea[name=parameters]",
                  "- {name: net_g_per_km, unit: gCO2e/km, value: 61.5, source: 运营方调查 2026 表3}")
    operator.fill("input[name=formula]", "distance_km * net_g_per_km * missing")
    operator.fill("textarea[name=data_requirements_zh]", "运营方上报每次骑行的计费里程。")
    operator.fill("textarea[name=data_requirements_en]", "The operator reports each ride's billed distance.")
    operator.fill("input[name=nox_value]", "0.021")
    operator.fill("input[name=nox_unit]", "g/km")
    operator.fill("input[name=nox_source]", "生态环境部机动车排放指南 2024")
    operator.fill("textarea[name=documents]", "方法学文本 | https://example.gov.cn/ebike.pdf")
    operator.get_by_role("button", name="保存草稿").click()
    expect(operator.get_by_role("alert")).to_contain_text("missing")  # the engine's own message
    _shot(operator, "03-draft-refused")
    operator.fill("input[name=formula]", "distance_km * net_g_per_km")
    operator.get_by_role("button", name="保存草稿").click()
    expect(operator.get_by_test_id("status")).to_have_text("草稿")
    _shot(operator, "04-draft")
    operator.get_by_role("button", name="提交审核").click()
    expect(operator.get_by_test_id("status")).to_have_text("待审核")
    detail_url = operator.url

    reviewer = _person(browser)
    _sign_in(reviewer, live, logins["reviewer"])
    reviewer.get_by_role("banner").get_by_role("link", name="待审核").click()
    _shot(reviewer, "05-review-queue")
    reviewer.get_by_role("link", name="SHCI-P-EBIKE").click()
    assert reviewer.url == detail_url
    reviewer.fill("textarea[name=activities]", "- {distance_km: 10}\n- {distance_km: 2.5}")
    reviewer.get_by_role("button", name="试算").click()  # 10 km × 61.5 + 2.5 km × 61.5 = 615 + 153 (floored)
    expect(reviewer.get_by_test_id("trial-total-grams")).to_have_text("768")
    _shot(reviewer, "06-trial")
    reviewer.fill("textarea[name=comment]", "参数来源清楚，同意。")
    _shot(reviewer, "07-review")
    reviewer.get_by_role("button", name="审核通过").click()
    expect(reviewer.get_by_test_id("status")).to_have_text("已通过审核")

    admin = _person(browser)
    _sign_in(admin, live, logins["admin"])
    admin.get_by_role("banner").get_by_role("link", name="待备案").click()
    admin.get_by_role("link", name="SHCI-P-EBIKE").click()
    admin.get_by_role("button", name="备案").click()
    expect(admin.get_by_test_id("status")).to_have_text("已备案")
    year = datetime.now(ZoneInfo("Asia/Shanghai")).year
    expect(admin.get_by_test_id("filing-number")).to_have_text(f"SHCI-M-{year}-001")
    history = admin.get_by_test_id("history")
    for step in ("起草", "提交审核", "审核通过", "备案"):
        expect(history).to_contain_text(step)
    expect(history).to_contain_text("参数来源清楚，同意。")
    _shot(admin, "08-filed")

    operator.goto(detail_url)
    operator.get_by_role("link", name="以此方法学新建场景").click()
    operator.fill("input[name=code]", "ebike_trip")
    operator.select_option("select[name=category]", "行")
    operator.fill("input[name=name_zh]", "共享电单车出行")
    operator.fill("input[name=name_en]", "Shared e-bike trip")
    operator.fill("textarea[name=description_zh]", "骑共享电单车代替开车，每公里减排约61.5克。")
    operator.fill("textarea[name=description_en]", "Riding a shared e-bike instead of driving avoids about 61.5 g/km.")
    operator.fill("input[name=cap_per_day]", "4")
    operator.check("input[name=data_sources][value=bikeshare]")
    _shot(operator, "09-scenario-form")
    operator.get_by_role("button", name="保存为草稿").click()
    expect(operator.get_by_test_id("scenario-status")).to_have_text("草稿（未发布）")
    operator.fill("textarea[name=activities]", "- {distance_km: 10}")
    operator.get_by_role("button", name="试算").click()
    expect(operator.get_by_test_id("trial-total-grams")).to_have_text("615")
    _shot(operator, "10-scenario-trial")
    assert operator.request.get(f"{live}/api/v1/scenarios/ebike_trip").status == 404  # not before publishing
    operator.get_by_role("button", name="发布场景").click()
    expect(operator.get_by_test_id("scenario-status")).to_have_text("已发布")
    _shot(operator, "11-scenario-live")
    listed = operator.request.get(f"{live}/api/v1/scenarios/ebike_trip")
    assert listed.status == 200 and listed.json()["methodology"]["filing_number"] == f"SHCI-M-{year}-001"

    admin.get_by_role("button", name="退出登录").click()
    admin.wait_for_url(re.compile(r"/console/sign-in"))
    admin.goto(detail_url)
    admin.wait_for_url(re.compile(r"/console/sign-in"))
    refused_form = "Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"
    assert _problems == [refused_form], _problems  # only the refused draft; no script errors, no CSP violations
