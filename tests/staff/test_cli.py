"""`flask users create-admin`: the first admin, password from a prompt or stdin, weak ones refused."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.extensions import db
from app.staff.cli import users_cli
from app.staff.models import StaffUser


@pytest.fixture
def runner(app, db_session):
    return app.test_cli_runner()


def test_create_admin_with_password_on_stdin_can_sign_in(runner, client) -> None:
    result = runner.invoke(users_cli, ["create-admin", "--login", "Root", "--password-stdin"],
                           input="a strong admin password\n")

    assert result.exit_code == 0, result.output
    admin = db.session.scalars(select(StaffUser).where(StaffUser.login == "root")).one()
    assert (admin.role, admin.status, admin.display_name) == ("admin", "active", "Root")
    assert "a strong admin password" not in result.output
    session = client.post("/api/v1/staff/session", json={"login": "root", "password": "a strong admin password"})
    assert session.status_code == 200 and session.get_json()["staff"]["role"] == "admin"
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "staff.created")).one()
    assert (entry.actor_type, entry.object_id) == ("system", str(admin.id))


def test_create_admin_prompts_for_the_password(runner) -> None:
    result = runner.invoke(users_cli, ["create-admin", "--login", "boss", "--display-name", "管理员"],
                           input="another strong one\nanother strong one\n")

    assert result.exit_code == 0, result.output
    assert db.session.scalars(select(StaffUser.display_name).where(StaffUser.login == "boss")).one() == "管理员"


def test_create_admin_refuses_a_weak_password_and_a_taken_login(runner) -> None:
    weak = runner.invoke(users_cli, ["create-admin", "--login", "weak", "--password-stdin"], input="short\n")
    assert weak.exit_code != 0 and "at least 12" in weak.output
    assert db.session.scalar(select(StaffUser.id).where(StaffUser.login == "weak")) is None

    first = runner.invoke(users_cli, ["create-admin", "--login", "dup", "--password-stdin"],
                          input="a strong admin password\n")
    again = runner.invoke(users_cli, ["create-admin", "--login", "dup", "--password-stdin"],
                          input="a strong admin password\n")
    assert first.exit_code == 0 and again.exit_code != 0 and "already used" in again.output
