"""Staff accounts: creation, password sign-in, role changes and suspension.

Passwords are hashed with argon2id. A wrong password and an unknown login give the same 401 after
the same amount of work (an unknown login is checked against a dummy hash). Services flush, never
commit; failures raise AppError.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.audit.service import record as audit
from app.auth.tokens import issue_access_token
from app.errors import AppError
from app.extensions import db
from app.models_base import utcnow
from app.pagination import decode_cursor, page
from app.staff.models import STAFF_ROLES, STAFF_STATUSES, StaffUser

PASSWORD_MIN = 12
PASSWORD_MAX = 256  # hashing is deliberately slow: refuse megabyte "passwords"
LOGIN_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]{2,63}")

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a real password, only for timing")


@dataclass(frozen=True)
class StaffSignedIn:
    access_token: str
    expires_in: int
    token_type: str
    staff: StaffUser


def staff_may_act(staff_id: int, role: str | None = None) -> bool:
    """SUBJECT_CHECKS hook for role_required: only an active account may act (suspension is immediate),
    and only with the role it has now: `role` is the token's, so a demoted admin's older token stops
    working. None (a caller with no token: jobs, CLI) checks the status alone."""
    row = db.session.execute(select(StaffUser.status, StaffUser.role).where(StaffUser.id == staff_id)).first()
    return row is not None and row.status == "active" and (role is None or row.role == role)


def normalise_login(login: str) -> str:
    return login.strip().lower()


def check_password_strength(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise AppError("weak_password", f"The password must have at least {PASSWORD_MIN} characters.",
                       f"密码至少需要{PASSWORD_MIN}个字符。", 400)
    if len(password) > PASSWORD_MAX:
        raise AppError("weak_password", f"The password must have at most {PASSWORD_MAX} characters.",
                       f"密码最多{PASSWORD_MAX}个字符。", 400)
    if len(set(password)) < 4:
        raise AppError("weak_password", "The password is too repetitive.", "密码过于简单。", 400)


def _check_role(role: str) -> None:
    if role not in STAFF_ROLES:
        raise AppError("invalid_role", f"The role must be one of: {', '.join(STAFF_ROLES)}.",
                       f"角色须为：{'、'.join(STAFF_ROLES)}。", 400)


def create_staff(
    login: str, display_name: str, password: str, role: str, *, created_by: int | None = None
) -> StaffUser:
    """Create a staff account; `created_by` is the admin's staff id (None: the CLI)."""
    login = normalise_login(login)
    if not LOGIN_PATTERN.fullmatch(login):
        raise AppError("invalid_login", "The login must be 3-64 characters: a-z, 0-9, '.', '_', '@' or '-'.",
                       "登录名须为3-64位小写字母、数字或 . _ @ -。", 400)
    if not display_name.strip():
        raise AppError("invalid_display_name", "The display name is required.", "显示名称为必填项。", 400)
    _check_role(role)
    check_password_strength(password)
    staff = StaffUser(login=login, display_name=display_name.strip(), password_hash=_hasher.hash(password),
                      role=role, status="active")
    try:
        with db.session.begin_nested():
            db.session.add(staff)
    except IntegrityError:
        raise AppError("staff_login_taken", "This login is already used.", "该登录名已被使用。", 409) from None
    audit("staff.created", actor_type="staff" if created_by else "system", actor_id=created_by,
          object_type="staff", object_id=staff.id, details={"role": role})
    return staff


def sign_in(login: str, password: str) -> StaffSignedIn:
    """Password sign-in; every refusal is the same 401 `invalid_credentials` (audited)."""
    staff = db.session.scalars(
        select(StaffUser).where(StaffUser.login == normalise_login(login)[:64])
    ).one_or_none()
    ok = _verify(staff.password_hash if staff else _DUMMY_HASH, password)
    if staff is None or not ok or staff.status != "active":
        reason = "unknown_login" if staff is None else ("wrong_password" if not ok else "suspended")
        audit("staff.login_failed", actor_type="staff" if staff else "anonymous",
              actor_id=staff.id if staff else None, object_type="staff",
              object_id=staff.id if staff else None, details={"reason": reason})
        raise AppError("invalid_credentials", "The login or password is wrong.", "登录名或密码错误。", 401)
    if _hasher.check_needs_rehash(staff.password_hash):
        staff.password_hash = _hasher.hash(password)
    staff.last_login_at = utcnow()
    db.session.flush()
    audit("staff.login", actor_type="staff", actor_id=staff.id, object_type="staff", object_id=staff.id)
    token, expires_in = issue_access_token(f"staff:{staff.id}", staff.role)
    return StaffSignedIn(access_token=token, expires_in=expires_in, token_type="Bearer", staff=staff)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def get_staff(staff_id: int) -> StaffUser:
    staff = db.session.get(StaffUser, staff_id)
    if staff is None:
        raise AppError("staff_not_found", "No such staff account.", "未找到该员工账号。", 404)
    return staff


def list_staff(cursor: str | None, limit: int, role: str | None = None, status: str | None = None) -> dict[str, Any]:
    """Staff accounts, oldest first."""
    query = select(StaffUser).order_by(StaffUser.id).limit(limit + 1)
    after = decode_cursor(cursor, 1)
    if after is not None:
        if type(after[0]) is not int:
            raise AppError("invalid_cursor", "The cursor is invalid.", "分页游标无效。", 400)
        query = query.where(StaffUser.id > after[0])
    if role is not None:
        query = query.where(StaffUser.role == role)
    if status is not None:
        query = query.where(StaffUser.status == status)
    return page(list(db.session.scalars(query)), limit, key=lambda staff: [staff.id])


def update_staff(actor_id: int, staff_id: int, changes: dict[str, Any]) -> StaffUser:
    """An admin changes a role, suspends or reactivates, renames or resets a password.

    The last active admin cannot be demoted or suspended (nobody could manage staff any more).
    """
    staff = db.session.get(StaffUser, staff_id, with_for_update=True)
    if staff is None:
        raise AppError("staff_not_found", "No such staff account.", "未找到该员工账号。", 404)
    done: dict[str, Any] = {}
    role, status = changes.get("role"), changes.get("status")
    if role is not None:
        _check_role(role)
    if status is not None and status not in STAFF_STATUSES:
        raise AppError("invalid_status", "Status must be active or suspended.", "状态须为 active 或 suspended。", 400)
    stops_being_admin = staff.role == "admin" and staff.status == "active" and (
        (role is not None and role != "admin") or status == "suspended"
    )
    if stops_being_admin and _other_active_admins(staff.id) == 0:
        raise AppError("last_admin", "The last active admin cannot be demoted or suspended.",
                       "不能降级或停用最后一位管理员。", 409)
    if role is not None and role != staff.role:
        done["role"] = [staff.role, role]
        staff.role = role
    if status is not None and status != staff.status:
        done["status"] = [staff.status, status]
        staff.status = status
    if changes.get("display_name") is not None:
        name = changes["display_name"].strip()
        if not name:
            raise AppError("invalid_display_name", "The display name is required.", "显示名称为必填项。", 400)
        if name != staff.display_name:
            staff.display_name = name
            done["display_name"] = True
    if changes.get("password") is not None:
        check_password_strength(changes["password"])
        staff.password_hash = _hasher.hash(changes["password"])
        done["password"] = True
    if done:
        staff.updated_at = utcnow()
        db.session.flush()
        audit("staff.updated", actor_type="staff", actor_id=actor_id, object_type="staff", object_id=staff.id,
              details=done)
    return staff


def _other_active_admins(staff_id: int) -> int:
    """Active admins other than `staff_id`, with their rows locked so two demotions cannot race."""
    ids = db.session.scalars(
        select(StaffUser.id)
        .where(StaffUser.role == "admin", StaffUser.status == "active", StaffUser.id != staff_id)
        .with_for_update()
    ).all()
    return len(ids)


def count_admins() -> int:
    return db.session.scalar(select(func.count()).select_from(StaffUser).where(StaffUser.role == "admin")) or 0
