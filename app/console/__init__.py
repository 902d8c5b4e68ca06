"""The operators' console (/console): server-rendered pages for staff, signed in with a session cookie.

Sign-in checks the password through `app.staff.service.sign_in` (argon2, the same refusals and audit
rows as the API). The session (Flask's signed cookie: HttpOnly, SameSite=Lax, Secure outside
development and tests) holds the staff id and role; every request checks, with the same
`staff_may_act` the API's guard uses, that the account is still active with that role, so a
suspended or demoted account loses its session at once. Every POST carries a CSRF token
(Flask-WTF's CSRFProtect, called here only: the JSON API under /api uses bearer tokens, not cookies).
Assets are served by the app itself, never a CDN.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError, CSRFProtect

from app.auth.guard import ADMIN_ROLE, STAFF_ROLES
from app.errors import AppError
from app.extensions import db, limiter
from app.staff import service as staff_service
from app.staff.models import StaffUser

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")
csrf = CSRFProtect()

ROLE_NAMES = {"operator": "运营人员", "reviewer": "审核专家", "admin": "管理员"}
_OPEN_ENDPOINTS = {"console.sign_in", "console.static"}
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def init_console(app: Flask) -> None:
    csrf.init_app(app)  # WTF_CSRF_CHECK_DEFAULT is False: only the console's before_request checks
    from app.console import methodologies, scenarios  # noqa: F401  (their routes join the blueprint)

    app.register_blueprint(bp)


def _auth_limit() -> str:
    return current_app.config["RATELIMIT_AUTH"]


@bp.before_request
def _guard() -> Response | None:
    """CSRF on every POST, then the signed-in staff member (still active, same role) as g.staff."""
    # Flask-WTF caches the token in g; a test client reusing one app context must not see a stale one
    # (nor an earlier request's commit-on-error flag).
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    g.pop("commit_on_error", None)
    if request.method == "POST":
        csrf.protect()
    g.staff = None
    signed_out = False
    staff_id, role = session.get("staff_id"), session.get("role")
    if isinstance(staff_id, int) and isinstance(role, str):
        if staff_service.staff_may_act(staff_id, role):
            g.staff = db.session.get(StaffUser, staff_id)
        else:
            session.clear()
            signed_out = True
    if g.staff is None and request.endpoint not in _OPEN_ENDPOINTS:
        if signed_out:
            reason = "您的账号已停用或角色已变更，请重新登录。"
            return render_template("console/sign_in.html", error=reason, next_url=None), 401
        return redirect(url_for("console.sign_in", next=request.full_path if request.method == "GET" else None))
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


def may(role: str) -> bool:
    """Whether the signed-in staff member holds `role` (an admin holds every staff role)."""
    staff = g.get("staff")
    return staff is not None and (staff.role == role or staff.role == ADMIN_ROLE)


def console_role(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The page's roles; anyone else gets a 403 page (an admin passes any staff role)."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not any(may(role) for role in roles):
                raise AppError("forbidden", "Your role does not allow this.", "您的角色无权执行此操作。", 403)
            return view(*args, **kwargs)

        return wrapper

    return decorator


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {"current_staff": g.get("staff"), "may": may, "role_names": ROLE_NAMES}


@bp.errorhandler(AppError)
def _app_error(error: AppError) -> tuple[str, int]:
    if error.keep_changes:
        g.commit_on_error = True
    return render_template("console/error.html", error=error), error.status


@bp.errorhandler(CSRFError)
def _csrf_error(error: CSRFError) -> tuple[str, int]:
    refused = AppError("csrf_failed", "The form expired or did not come from this console; reload and retry.",
                       "表单已过期或来源不明，请刷新页面后重试。", 400)
    return render_template("console/error.html", error=refused), 400


def _safe_next(target: str | None) -> str:
    """Only a console path of this site (no scheme, no host): never an open redirect."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/console/") and "\\" not in target:
            return target
    return url_for("console.home")


@bp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit(_auth_limit, methods=["POST"])
def sign_in() -> Any:
    """The sign-in form; success starts a fresh session (no fixation) and goes where the user was going."""
    next_url = request.values.get("next")
    if request.method == "GET":
        if g.staff is not None:
            return redirect(_safe_next(next_url))
        return render_template("console/sign_in.html", error=None, next_url=next_url)
    login = request.form.get("login", "")[:64]
    password = request.form.get("password", "")[:staff_service.PASSWORD_MAX + 1]
    try:
        signed_in = staff_service.sign_in(login, password)
    except AppError as error:
        g.commit_on_error = True  # keep the failed-login audit row
        return render_template("console/sign_in.html", error=error.message_zh, next_url=next_url, login=login), 401
    session.clear()
    session.permanent = True
    session["staff_id"] = signed_in.staff.id
    session["role"] = signed_in.staff.role
    return redirect(_safe_next(next_url), code=303)


@bp.post("/sign-out")
def sign_out() -> Response:
    staff = g.staff
    session.clear()
    from app.audit.service import record as audit

    audit("staff.logout", actor_type="staff", actor_id=staff.id, object_type="staff", object_id=staff.id)
    return redirect(url_for("console.sign_in"), code=303)  # type: ignore[return-value]


@bp.get("/")
def home() -> Response:
    return redirect(url_for("console.methodology_list"))  # type: ignore[return-value]


__all__ = ["STAFF_ROLES", "bp", "console_role", "init_console", "may"]
