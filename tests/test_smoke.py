from __future__ import annotations

from sqlalchemy import text


def test_database_is_real_postgresql(db_session) -> None:
    assert "PostgreSQL" in db_session.execute(text("select version()")).scalar_one()


def test_redis_is_real(redis) -> None:
    redis.set("k", "v")
    assert redis.get("k") == b"v"


def test_unknown_route_is_json_404(client) -> None:
    response = client.get("/api/v1/nope")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_openapi_spec_served(client) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.get_json()["info"]["title"]
