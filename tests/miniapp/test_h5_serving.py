"""Flask serves the mini-app's H5 build at /m/ (app/miniapp_h5.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient


@pytest.fixture
def h5_dir(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<div id="app"></div><script src="/m/assets/index-abc.js"></script>')
    (tmp_path / "assets" / "index-abc.js").write_text("console.log(1)")
    monkeypatch.setitem(app.config, "MINIAPP_H5_DIR", str(tmp_path))
    return tmp_path


def test_index_is_served_uncached_with_or_without_the_oauth_query(client: FlaskClient, h5_dir: Path) -> None:
    for url in ("/m/", "/m/?code=abc&state=xyz"):
        response = client.get(url)
        assert response.status_code == 200
        assert b'<div id="app">' in response.data
        assert response.headers["Cache-Control"] == "no-cache"
        assert "script-src 'self';" in response.headers["Content-Security-Policy"]
        assert response.headers["Referrer-Policy"] == "no-referrer"  # the first URL carries ?code=


def test_slashless_path_redirects(client: FlaskClient, h5_dir: Path) -> None:
    response = client.get("/m")
    assert response.status_code == 308
    assert response.headers["Location"].endswith("/m/")


def test_hashed_assets_are_cached_for_a_year(client: FlaskClient, h5_dir: Path) -> None:
    response = client.get("/m/assets/index-abc.js")
    assert response.status_code == 200
    assert response.data == b"console.log(1)"
    assert "max-age=31536000" in response.headers["Cache-Control"]


@pytest.mark.parametrize("path", ["/m/assets/missing.js", "/m/../app/config.py", "/m/%2e%2e/wsgi.py"])
def test_missing_or_escaping_paths_are_json_404(client: FlaskClient, h5_dir: Path, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_without_a_build_the_page_says_how_to_make_one(
    app: Flask, client: FlaskClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "MINIAPP_H5_DIR", str(tmp_path / "nothing"))
    response = client.get("/m/")
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "miniapp_not_built"
    assert "npm run build:h5" in error["message"]
