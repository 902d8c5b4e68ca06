from __future__ import annotations

from app.partners.models import Partner


def test_catalogue_lists_live_scenarios_with_terms_and_sources(client, starter_scenarios, db_session) -> None:
    db_session.add(Partner(code="shmetro", name_zh="上海地铁", name_en="Shanghai Metro", kind="metro"))
    db_session.flush()
    response = client.get("/api/v1/scenarios")
    assert response.status_code == 200
    items = {item["code"]: item for item in response.get_json()["items"]}
    assert set(items) == {"metro_trip", "bus_trip", "bikeshare_ride", "recycling_dropoff", "paperless"}
    metro = items["metro_trip"]
    assert metro["name"] == {"zh": "地铁出行", "en": "Metro trip"}
    assert metro["caps"] == {"unit": "events", "per_day": "10", "per_month": None}
    assert metro["points_per_gram"] == "1"
    assert metro["parameters"][0]["value"] == "78.4"
    assert metro["parameters"][0]["provisional"] is True
    assert "China Daily" in metro["parameters"][0]["source"]
    assert metro["data_sources"] == [
        {"kind": "metro", "partners": [{"code": "shmetro", "name": {"zh": "上海地铁", "en": "Shanghai Metro"}}]}
    ]
    assert items["paperless"]["self_declared"] is True


def test_one_scenario_and_unknown_code(client, starter_scenarios) -> None:
    assert client.get("/api/v1/scenarios/recycling_dropoff").get_json()["methodology"]["status"] == "provisional"
    missing = client.get("/api/v1/scenarios/teleport")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["message_zh"]


def test_unknown_query_parameter_is_refused(client, starter_scenarios) -> None:
    assert client.get("/api/v1/scenarios?bogus=1").status_code == 400
