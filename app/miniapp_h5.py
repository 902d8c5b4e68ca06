"""The mini-app's H5 build, served at /m/ beside /api (browsers and Suishenban H5 service pages).

`make run` builds it into miniapp/dist/build/h5 (`npm run build:h5`); the bundle calls the API on
the same origin (`/api/v1`). Hashed assets are cached for a year, index.html never, so a new build
is picked up on the next visit. Without a build, /m/ says how to make one instead of a bare 404.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, redirect, send_from_directory
from werkzeug.exceptions import NotFound

from app.errors import AppError

DEFAULT_H5_DIR = Path(__file__).resolve().parent.parent / "miniapp" / "dist" / "build" / "h5"
ASSET_MAX_AGE = 365 * 24 * 3600

# The bundle loads only its own scripts; Vue binds inline styles, the QR code is a data: image.
# No referrer: the page is first opened with Suishenban's ?code= in its address.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; "
    "form-action 'self'"
)

bp = Blueprint("miniapp_h5", __name__)


@bp.after_request
def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _h5_dir() -> Path:
    return Path(current_app.config.get("MINIAPP_H5_DIR") or DEFAULT_H5_DIR)


@bp.get("/m")
def h5_no_slash() -> Response:
    """/m → /m/ (the bundle's relative paths and the OAuth redirect_uri both use the slash)."""
    return redirect("/m/", code=308)  # type: ignore[return-value]


@bp.get("/m/")
def h5_index() -> Response:
    """The single page; the query string may carry Suishenban's ?code=&state= back to it."""
    if not (_h5_dir() / "index.html").is_file():
        raise AppError(
            "miniapp_not_built",
            "The mini-app's H5 build is missing: run `make run` or `cd miniapp && npm run build:h5`.",
            "移动端 H5 尚未构建：请运行 make run 或 cd miniapp && npm run build:h5。",
            503,
        )
    response = send_from_directory(_h5_dir(), "index.html", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/m/<path:filename>")
def h5_asset(filename: str) -> Response:
    """A built asset (JS, CSS, images); content-hashed names, so they can be cached for long."""
    try:
        return send_from_directory(_h5_dir(), filename, max_age=ASSET_MAX_AGE)
    except NotFound:
        raise AppError("not_found", "Not found.", "未找到。", 404) from None
