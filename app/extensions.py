"""Extension singletons, wired to the app in `create_app`."""
from __future__ import annotations

import redis
from flask import Flask, current_app, g, request
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_smorest import Api, Blueprint
from flask_sqlalchemy import SQLAlchemy
from rq import Queue
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from app.errors import ErrorSchema
from app.parsing import ApiParser

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)

# Query strings obey each schema's own `unknown = RAISE`, invalid input is a 400 (the OpenAPI spec
# documents the same), and JSON bodies are strict and storable: see app.parsing.
Blueprint.ARGUMENTS_PARSER = ApiParser()
migrate = Migrate()


class CarbonApi(Api):
    ERROR_SCHEMA = ErrorSchema  # the spec documents the error body we send (app.errors), not flask-smorest's


api = CarbonApi()


def _rate_limit_key() -> str:
    """Limit per authenticated subject where known (citizen or partner), else per client address."""
    subject = getattr(g, "rate_limit_subject", None)
    return subject or (request.remote_addr or "unknown")


limiter = Limiter(key_func=_rate_limit_key, strategy="moving-window")


def init_redis(app: Flask) -> None:
    app.extensions["redis"] = redis.Redis.from_url(app.config["REDIS_URL"])


def redis_client() -> redis.Redis:
    return current_app.extensions["redis"]


def queue() -> Queue:
    """The rq queue; jobs are serialised as JSON and receive ids, never ORM objects."""
    from rq.serializers import JSONSerializer

    return Queue(current_app.config["RQ_QUEUE"], connection=redis_client(), serializer=JSONSerializer)


def init_extensions(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=str(app.config.get("MIGRATIONS_DIR", "migrations")))
    init_redis(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", limiter_storage_uri(app.config["REDIS_URL"]))
    limiter.init_app(app)
    api.init_app(app)


def limiter_storage_uri(redis_url: str) -> str:
    """The `limits` library names a unix-socket Redis `redis+unix://` (the embedded one uses a socket)."""
    return "redis+" + redis_url if redis_url.startswith("unix://") else redis_url
