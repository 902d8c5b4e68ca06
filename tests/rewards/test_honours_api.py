"""/me/honours, the yearly report and certificate, the district leaderboards, and the rq job that
awards honours after a credited batch (a real worker, real PostgreSQL and Redis)."""
from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import insert, select, text

from app import jobs
from app.audit.models import AuditEntry
from app.behaviours.models import DailyUsage
from app.extensions import db, queue
from app.ledger.account import shanghai_today
from app.ledger.service import hold, post_earnings, post_pending, void_pending
from app.worker import run_worker
from rewards.honours.certificate import FONT_FILES, SIZE
from rewards.honours.models import CitizenHonour
from rewards.honours.service import load_definitions
from tests.behaviours.conftest import Ev, bind, loaded_scenarios, make_batch, make_partner  # noqa: F401
from tests.conftest import bearer_for, make_citizen
from tests.ledger.conftest import earning
from tests.rewards.test_honours import credited

THIS_YEAR = shanghai_today().year


@pytest.fixture
def badges(db_session) -> None:
    load_definitions()


def set_district(citizen_id: int, district: str | None) -> None:
    db.session.execute(text("UPDATE citizens SET home_district = :d WHERE id = :id"), {"d": district, "id": citizen_id})


def usage(citizen_id: int, day: datetime | str, grams: int) -> None:
    """Credited grams on one Shanghai day, as crediting writes DailyUsage (what leaderboards sum)."""
    value = day if isinstance(day, datetime) else datetime.fromisoformat(day)
    db.session.execute(
        insert(DailyUsage),
        [{"citizen_id": citizen_id, "scenario_id": 1, "day": value.date(), "grams": grams, "events": 1, "points": 1}],
    )


# ---- /me/honours ---------------------------------------------------------------------------------


def test_my_honours_needs_a_citizen_token(client, db_session) -> None:
    response = client.get("/api/v1/me/honours")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_my_honours_lists_earned_badges_progress_and_levels(client, badges) -> None:
    from rewards.honours.service import evaluate_citizens

    citizen = make_citizen()
    for day in (1, 2, 3):
        credited(citizen, f"{THIS_YEAR}-03-{day:02d}T02:00:00", grams=150)
    credited(citizen, f"{THIS_YEAR}-03-05T02:00:00", scenario="bus_trip", grams=50)
    evaluate_citizens([citizen], reason={})

    body = client.get("/api/v1/me/honours", headers=bearer_for(citizen)).get_json()

    assert (body["co2e_grams"], body["events"]) == (500, 4)
    assert {badge["code"] for badge in body["earned"]} == {"first_step", "first_metro", "streak_3"}
    first = next(badge for badge in body["earned"] if badge["code"] == "first_step")
    assert first["name"] == {"zh": "低碳第一步", "en": "First step"} and first["source"] == "rule"
    assert datetime.fromisoformat(first["awarded_at"]) <= datetime.now(UTC)
    upcoming = {badge["code"]: (badge["current"], badge["target"], badge["unit"]) for badge in body["next"]}
    assert upcoming["metro_10"] == (3, 10, "events")
    assert upcoming["bus_10"] == (1, 10, "events")
    assert upcoming["co2e_1kg"] == (500, 1000, "grams")
    assert upcoming["streak_7"][1:] == (7, "days")
    assert "low_carbon_day_2027" not in upcoming  # granted only: no progress to show
    assert body["next"][0]["code"] == "co2e_1kg"  # the closest first (50 %)
    assert body["level"]["code"] == "sprout" and body["level"]["name"]["zh"] == "绿芽"
    assert body["next_level"] == {
        "code": "leaf", "name": {"zh": "绿叶", "en": "Leaf"}, "icon": "level-leaf", "threshold_grams": 10_000,
        "current": 500, "target": 10_000,
    }
    assert body["profile"] == {"nickname": None, "display_name": "低碳市民", "leaderboard_opt_in": False}


def test_a_new_citizen_has_the_first_level_and_everything_ahead(client, badges) -> None:
    citizen = make_citizen()
    body = client.get("/api/v1/me/honours", headers=bearer_for(citizen)).get_json()
    assert body["earned"] == [] and body["co2e_grams"] == 0
    assert body["level"]["code"] == "sprout" and body["next_level"]["code"] == "leaf"
    assert all(badge["current"] == 0 for badge in body["next"])


# ---- the yearly report ---------------------------------------------------------------------------


def test_the_yearly_report_adds_up_by_scenario_month_points_and_badges(client, badges) -> None:
    citizen, other = make_citizen(), make_citizen()
    # 31 Jan 15:59 UTC is still January in Shanghai; 16:00 UTC is 1 February there.
    credited(citizen, f"{THIS_YEAR}-01-31T15:59:00", grams=100, points=1)
    credited(citizen, f"{THIS_YEAR}-01-31T16:00:00", grams=200, points=2)
    credited(citizen, f"{THIS_YEAR}-02-10T02:00:00", scenario="recycling_dropoff", grams=1_000, points=10)
    credited(citizen, f"{THIS_YEAR}-02-11T02:00:00", status="capped", grams=5_000)  # not credited
    credited(citizen, f"{THIS_YEAR - 1}-12-31T16:30:00", grams=400)  # 1 Jan in Shanghai: this year
    credited(citizen, f"{THIS_YEAR - 1}-12-31T15:30:00", grams=800)  # 31 Dec in Shanghai: last year
    credited(other, f"{THIS_YEAR}-02-10T02:00:00", grams=9_999)
    post_earnings([earning("honours-report-1", citizen, 30), earning("honours-report-2", other, 99)])
    redeemed = hold("honours-hold-1", citizen, "merchant:1", 8, timeout_at=datetime.now(UTC) + timedelta(hours=1))
    post_pending(redeemed.id, "honours-post-1")
    cancelled = hold("honours-hold-2", citizen, "merchant:1", 5, timeout_at=datetime.now(UTC) + timedelta(hours=1))
    void_pending(cancelled.id, "honours-void-1")
    db.session.add(CitizenHonour(citizen_id=citizen, badge_code="first_step", source="rule"))
    db.session.add(CitizenHonour(citizen_id=citizen, badge_code="first_metro", source="rule",
                                 awarded_at=datetime(THIS_YEAR - 1, 6, 1, tzinfo=UTC)))
    db.session.flush()

    response = client.get(f"/api/v1/me/reports/{THIS_YEAR}", headers=bearer_for(citizen))

    assert response.status_code == 200
    body = response.get_json()
    assert body["year"] == THIS_YEAR
    assert (body["co2e_grams"], body["events"], body["active_days"]) == (1_700, 4, 4)
    assert body["by_month"][0] == {"month": 1, "grams": 500, "events": 2}
    assert body["by_month"][1] == {"month": 2, "grams": 1_200, "events": 2}
    assert sum(month["grams"] for month in body["by_month"][2:]) == 0 and len(body["by_month"]) == 12
    metro, recycling = body["by_scenario"][1], body["by_scenario"][0]
    assert (recycling["scenario_code"], recycling["grams"], recycling["events"]) == ("recycling_dropoff", 1_000, 1)
    assert (metro["scenario_code"], metro["grams"], metro["events"]) == ("metro_trip", 700, 3)
    assert metro["months"][:2] == [500, 200] and sum(metro["months"]) == 700
    assert body["points"] == {"earned": 30, "spent": 8}  # the voided hold moved nothing
    assert body["equivalents"]["trees"] == "0.0" and body["equivalents"]["car_km"] == "10.6"  # 1700/160
    assert [badge["code"] for badge in body["badges"]] == ["first_step"]  # last year's badge is not this year's
    assert body["year_level"]["code"] == "sprout"

    last_year = client.get(f"/api/v1/me/reports/{THIS_YEAR - 1}", headers=bearer_for(citizen)).get_json()
    assert (last_year["co2e_grams"], last_year["events"]) == (800, 1)
    assert [badge["code"] for badge in last_year["badges"]] == ["first_metro"]


@pytest.mark.parametrize("year", [2019, THIS_YEAR + 1, 99999999999999999999])
def test_a_report_outside_the_reported_years_is_a_404(client, db_session, year: int) -> None:
    citizen = make_citizen()
    headers = bearer_for(citizen)
    db.session.commit()  # a refused request rolls back to here, not past the citizen
    for path in (f"/api/v1/me/reports/{year}", f"/api/v1/me/reports/{year}/certificate.png"):
        response = client.get(path, headers=headers)
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "report_not_found"


def test_reports_need_a_citizen_token(client, db_session) -> None:
    assert client.get(f"/api/v1/me/reports/{THIS_YEAR}").status_code == 401
    assert client.get(f"/api/v1/me/reports/{THIS_YEAR}/certificate.png").status_code == 401


# ---- the certificate -----------------------------------------------------------------------------


def test_the_cjk_fonts_the_certificate_needs_are_installed() -> None:
    missing = [str(path) for path in FONT_FILES.values() if not path.is_file()]
    assert missing == [], (
        f"fonts-noto-cjk is not installed (missing {missing}): the yearly certificate cannot be drawn. "
        "Install it with `apt-get install fonts-noto-cjk` (`make test` does this when run as root)."
    )


def test_the_certificate_is_a_png_of_the_right_size_with_the_nickname(client, badges) -> None:
    citizen = make_citizen()
    set_district(citizen, "xuhui")
    credited(citizen, f"{THIS_YEAR}-03-01T02:00:00", grams=123_456)
    client.put("/api/v1/me/leaderboard", json={"opt_in": False, "nickname": "小绿"}, headers=bearer_for(citizen))

    response = client.get(f"/api/v1/me/reports/{THIS_YEAR}/certificate.png", headers=bearer_for(citizen))

    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert response.headers["Cache-Control"] == "private, max-age=300"
    image = Image.open(io.BytesIO(response.data))
    image.load()  # decodes the whole image, not just the header
    assert (image.format, image.size) == ("PNG", SIZE)
    # Drawn, not blank: the name, the figures and the frame put many colours on the paper.
    assert len(image.getcolors(maxcolors=100_000) or []) > 20


def test_the_certificate_name_is_the_nickname_or_the_default_never_the_phone(app, badges) -> None:
    from rewards.honours.certificate import render_certificate
    from rewards.honours.report import yearly_report
    from rewards.honours.service import display_name, set_leaderboard

    citizen = make_citizen()
    assert display_name(citizen) == "低碳市民"
    set_leaderboard(citizen, opt_in=False, nickname="绿色出行者", nickname_given=True)
    assert display_name(citizen) == "绿色出行者"
    report = yearly_report(citizen, THIS_YEAR)
    one = render_certificate(report, "绿色出行者", issued=shanghai_today())
    other = render_certificate(report, "低碳市民", issued=shanghai_today())
    assert one != other  # the name is drawn


# ---- leaderboards --------------------------------------------------------------------------------


def opt_in(client, citizen: int, nickname: str | None = None, district: str = "xuhui") -> dict:
    set_district(citizen, district)
    body = {"opt_in": True} if nickname is None else {"opt_in": True, "nickname": nickname}
    response = client.put("/api/v1/me/leaderboard", json=body, headers=bearer_for(citizen))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_the_leaderboard_shows_only_citizens_who_opted_in(client, db_session) -> None:
    today = datetime.combine(shanghai_today(), datetime.min.time())
    first, second, shy, elsewhere, me = (make_citizen() for _ in range(5))
    opt_in(client, first, "一号")
    opt_in(client, second, "二号")
    opt_in(client, me, "我")
    opt_in(client, elsewhere, "浦东人", district="pudong")
    set_district(shy, "xuhui")  # same district, most grams, never opted in
    client.put("/api/v1/me/leaderboard", json={"opt_in": False, "nickname": "害羞"}, headers=bearer_for(shy))
    for citizen, grams in ((first, 900), (second, 500), (shy, 99_999), (elsewhere, 5_000), (me, 500)):
        usage(citizen, today, grams)

    response = client.get("/api/v1/leaderboards?district=xuhui&period=month", headers=bearer_for(me))

    assert response.status_code == 200
    body = response.get_json()
    assert [(item["rank"], item["nickname"], item["grams"]) for item in body["items"]] == [
        (1, "一号", 900), (2, "二号", 500), (2, "我", 500)
    ]
    assert body["me"] == {"rank": 2, "nickname": "我", "grams": 500, "is_me": True}
    assert body["participants"] == 3 and body["district"] == "xuhui"
    raw = response.get_data(as_text=True)
    assert "害羞" not in raw and "99999" not in raw and "浦东人" not in raw
    assert "citizen_id" not in raw and str(shy) not in json.dumps(body["items"])


def test_opting_out_leaves_the_board_at_once_and_is_audited(client, db_session) -> None:
    citizen, viewer = make_citizen(), make_citizen()
    opt_in(client, citizen, "走了")
    set_district(viewer, "xuhui")
    client.put("/api/v1/me/leaderboard", json={"opt_in": False}, headers=bearer_for(citizen))
    body = client.get("/api/v1/leaderboards", headers=bearer_for(viewer)).get_json()  # viewer's own district
    assert body["items"] == [] and body["me"] is None and body["participants"] == 0
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.actor_id == str(citizen)).order_by(AuditEntry.id)
    ).all()
    assert actions == ["honours.leaderboard_opt_in", "honours.leaderboard_opt_out"]


def test_the_top_n_and_my_rank_below_it(client, db_session) -> None:
    today = datetime.combine(shanghai_today(), datetime.min.time())
    citizens = [make_citizen() for _ in range(4)]
    for index, citizen in enumerate(citizens):
        opt_in(client, citizen, f"市民{index}")
        usage(citizen, today, 1_000 - index * 100)
    body = client.get("/api/v1/leaderboards?district=xuhui&limit=2", headers=bearer_for(citizens[3])).get_json()
    assert [item["nickname"] for item in body["items"]] == ["市民0", "市民1"]
    assert body["me"]["rank"] == 4 and body["participants"] == 4


def test_the_month_board_ignores_earlier_months_and_the_year_board_counts_them(client, db_session) -> None:
    today = shanghai_today()
    citizen = make_citizen()
    opt_in(client, citizen, "年度")
    usage(citizen, datetime.combine(today, datetime.min.time()), 100)
    earlier = today.replace(day=1) - timedelta(days=1)
    if earlier.year == today.year:  # in January there is no earlier month of this year
        usage(citizen, datetime.combine(earlier, datetime.min.time()), 1_000)
    usage(citizen, datetime(today.year - 1, 12, 31), 50_000)  # last year: on neither board
    month = client.get("/api/v1/leaderboards?period=month", headers=bearer_for(citizen)).get_json()
    year = client.get("/api/v1/leaderboards?period=year", headers=bearer_for(citizen)).get_json()
    assert month["items"][0]["grams"] == 100
    assert year["items"][0]["grams"] == (1_100 if earlier.year == today.year else 100)
    assert year["period_start"] == f"{today.year}-01-01"


def test_a_nickname_may_be_kept_and_the_default_shows_without_one(client, db_session) -> None:
    citizen = make_citizen()
    assert opt_in(client, citizen) == {
        "nickname": None, "display_name": "低碳市民", "leaderboard_opt_in": True, "home_district": "xuhui"
    }
    body = client.get("/api/v1/leaderboards", headers=bearer_for(citizen)).get_json()
    assert body["items"][0]["nickname"] == "低碳市民"
    opt_in(client, citizen, "  绿叶子 ")
    again = client.put("/api/v1/me/leaderboard", json={"opt_in": True}, headers=bearer_for(citizen)).get_json()
    assert again["nickname"] == "绿叶子"  # stripped, and kept when not sent


def test_joining_needs_a_home_district(client, db_session) -> None:
    citizen = make_citizen()
    headers = bearer_for(citizen)
    db.session.commit()  # a refused request rolls back to here, not past the citizen
    response = client.put("/api/v1/me/leaderboard", json={"opt_in": True}, headers=headers)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "home_district_required"
    board = client.get("/api/v1/leaderboards", headers=headers)
    assert board.status_code == 400 and board.get_json()["error"]["code"] == "district_required"


@pytest.mark.parametrize(
    "body",
    [
        {"opt_in": True, "nickname": "13800138000"},  # a phone number
        {"opt_in": True, "nickname": "x" * 21},
        {"opt_in": True, "nickname": "   "},
        {"opt_in": True, "nickname": "a\nb"},
        {"nickname": "小绿"},  # opt_in is required
        {"opt_in": True, "citizen_id": 1},  # unknown fields are refused
        {"opt_in": "maybe"},
    ],
)
def test_bad_leaderboard_settings_are_400(client, db_session, body: dict) -> None:
    citizen = make_citizen()
    set_district(citizen, "xuhui")
    response = client.put("/api/v1/me/leaderboard", json=body, headers=bearer_for(citizen))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("query", ["district=atlantis", "period=week", "limit=0", "limit=101", "citizen=1"])
def test_bad_leaderboard_queries_are_400(client, db_session, query: str) -> None:
    citizen = make_citizen()
    response = client.get(f"/api/v1/leaderboards?{query}", headers=bearer_for(citizen))
    assert response.status_code == 400


def test_leaderboards_need_a_citizen_token(client, db_session) -> None:
    assert client.get("/api/v1/leaderboards?district=xuhui").status_code == 401
    assert client.put("/api/v1/me/leaderboard", json={"opt_in": False}).status_code == 401


def test_a_closed_account_leaves_the_board(client, db_session) -> None:
    citizen, viewer = make_citizen(), make_citizen()
    opt_in(client, citizen, "已注销")
    set_district(viewer, "xuhui")
    db.session.execute(text("UPDATE citizens SET status = 'closed' WHERE id = :id"), {"id": citizen})
    body = client.get("/api/v1/leaderboards", headers=bearer_for(viewer)).get_json()
    assert body["items"] == []


# ---- the job, end to end -------------------------------------------------------------------------


def test_crediting_a_batch_enqueues_the_honours_job_and_a_worker_awards_once(app, loaded_scenarios) -> None:  # noqa: F811
    load_definitions()
    partner = make_partner("metro")
    citizen = make_citizen(trajectory_scenarios=("metro_trip",))
    ref = bind(partner, citizen)
    # Three mornings running in Shanghai (22:00 UTC is 06:00 the next day there).
    batch = make_batch(partner, [
        Ev(ref, "metro_trip", f"2026-11-{day:02d}T22:00:00Z", {"distance_km": "8.5"}) for day in (20, 21, 22)
    ])
    db.session.commit()

    jobs.credit_batch(str(batch))  # the crediting job: commits, then enqueues the honours job

    q = queue()
    assert f"honours-{batch}" in q.get_job_ids()
    job = Job.fetch(f"honours-{batch}", connection=q.connection, serializer=JSONSerializer)
    assert (job.func_name, job.args) == ("app.jobs.evaluate_honours", [str(batch)])
    assert db.session.scalars(select(CitizenHonour.badge_code)).all() == []  # nothing before the job runs

    run_worker(app, burst=True, with_scheduler=False)

    db.session.expire_all()
    earned = set(db.session.scalars(select(CitizenHonour.badge_code).where(CitizenHonour.citizen_id == citizen)))
    grams = db.session.scalar(text("SELECT sum(credited_grams) FROM inbound_events WHERE citizen_id = :c"),
                              {"c": citizen})
    assert 1_000 <= grams < 10_000  # three 8.5 km trips: over 1 kg CO2e
    assert earned == {"first_step", "first_metro", "streak_3", "co2e_1kg"}
    assert jobs.evaluate_honours(str(batch)) == {"citizens": 1, "awarded": 0}  # a rerun awards nothing
    assert db.session.scalar(text("SELECT count(*) FROM citizen_honours")) == 4


def test_a_batch_that_credits_nothing_enqueues_no_honours_job(app, loaded_scenarios) -> None:  # noqa: F811
    partner = make_partner("metro")
    batch = make_batch(partner, [Ev("nobody", "metro_trip", "2026-11-20T22:00:00Z", {"distance_km": "8.5"})])
    db.session.commit()
    jobs.credit_batch(str(batch))
    assert f"honours-{batch}" not in queue().get_job_ids()

