"""The application factory: the only place that wires things together."""
from __future__ import annotations

import logging
import os

from flask import Flask, Response, g, send_from_directory

from app.config import CONFIGS, normalise_database_url
from app.errors import register_error_handlers
from app.extensions import api, db, init_extensions


def create_app(config_name: str | None = None, overrides: dict | None = None) -> Flask:
    config_name = config_name or os.environ.get("APP_ENV", "development")
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(CONFIGS[config_name])
    if overrides:
        app.config.update(overrides)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        raise RuntimeError("DATABASE_URL is not set (make run starts an embedded PostgreSQL for you)")
    if not app.config.get("REDIS_URL"):
        raise RuntimeError("REDIS_URL is not set (make run starts an embedded Redis for you)")
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if app.config["PRODUCTION"]:
        from app.startup_checks import check_production_config

        check_production_config(app.config)

    if app.config["PROXY_FIX_X_FOR"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_FIX_X_FOR"])  # type: ignore[method-assign]
    _configure_logging(app)
    _import_models()
    init_extensions(app)
    register_error_handlers(app)
    _register_api(app)
    _register_request_boundary(app)
    _register_cli(app)
    _serve_swagger_assets(app)
    from app.miniapp_h5 import bp as miniapp_h5_bp

    app.register_blueprint(miniapp_h5_bp)
    from app.console import init_console

    init_console(app)
    return app


def _import_models() -> None:
    """Every model module, so metadata (create_all, Alembic) sees every table."""
    import app.accounts.models  # noqa: F401
    import app.appeals.models  # noqa: F401
    import app.audit.models  # noqa: F401
    import app.auth.models  # noqa: F401
    import app.behaviours.models  # noqa: F401
    import app.idempotency.models  # noqa: F401
    import app.ledger.models  # noqa: F401
    import app.notifications.models  # noqa: F401
    import app.partners.models  # noqa: F401
    import app.privacy_rights.models  # noqa: F401
    import app.staff.models  # noqa: F401
    import rewards.campaigns.models  # noqa: F401
    import rewards.coupons.models  # noqa: F401
    import rewards.honours.models  # noqa: F401
    import rewards.merchants.models  # noqa: F401
    import scenarios.models  # noqa: F401
    import scenarios.registry.models  # noqa: F401


def _register_api(app: Flask) -> None:
    from app.accounts.api import blp as accounts_blp
    from app.auth.api import blp as auth_blp
    from app.behaviours.api import blp as behaviours_blp
    from app.converters import RowIdConverter
    from app.ledger.api import blp as ledger_blp
    from app.partners.api import blp as partners_blp
    from rewards.honours.api import blp as honours_blp
    from scenarios.api import blp as scenarios_blp

    app.url_map.converters["id"] = RowIdConverter  # path ids; before the blueprints add their rules
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    api.spec.components.security_scheme(
        "partnerSignature",
        {
            "type": "apiKey",
            "in": "header",
            "name": "X-Signature",
            "description": "HMAC-SHA256 over timestamp\\nnonce\\nbody; see README §Partner API",
        },
    )
    for blueprint in (auth_blp, accounts_blp, ledger_blp, scenarios_blp, partners_blp, behaviours_blp):
        api.register_blueprint(blueprint, url_prefix="/api/v1")
    api.register_blueprint(honours_blp, url_prefix="/api/v1")

    from app.staff.api import blp as staff_blp
    from rewards.merchants.api import blp as merchants_blp

    for blueprint in (staff_blp, merchants_blp):
        api.register_blueprint(blueprint, url_prefix="/api/v1")

    from app.notifications.api import blp as notifications_blp

    api.register_blueprint(notifications_blp, url_prefix="/api/v1")

    from rewards.campaigns.api import blp as campaigns_blp

    api.register_blueprint(campaigns_blp, url_prefix="/api/v1")

    from rewards.coupons.api import blp as coupons_blp

    api.register_blueprint(coupons_blp, url_prefix="/api/v1")

    from app.appeals.api import blp as appeals_blp
    from app.privacy_rights.api import blp as privacy_rights_blp

    for blueprint in (privacy_rights_blp, appeals_blp):
        api.register_blueprint(blueprint, url_prefix="/api/v1")

    from scenarios.registry.api import blp as methodology_registry_blp

    api.register_blueprint(methodology_registry_blp, url_prefix="/api/v1")


def _register_request_boundary(app: Flask) -> None:
    """One unit of work per request: services flush, the boundary commits once or rolls back."""

    @app.after_request
    def _commit_or_rollback(response: Response) -> Response:
        if response.status_code < 400 or g.get("commit_on_error"):
            try:
                db.session.commit()
            except Exception:
                db.session.rollback()
                raise
        else:
            db.session.rollback()
        return response


def _register_cli(app: Flask) -> None:
    from app.cli import register_cli

    register_cli(app)


def _serve_swagger_assets(app: Flask) -> None:
    """Swagger UI from the swagger-ui-bundle wheel: no CDN, government networks often have no internet."""
    from swagger_ui_bundle import swagger_ui_path

    @app.get("/static/swagger-ui/<path:filename>")
    def swagger_ui_asset(filename: str) -> Response:
        return send_from_directory(swagger_ui_path, filename)


def _configure_logging(app: Flask) -> None:
    if not app.debug and not app.testing:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
