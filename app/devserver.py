"""`make run`: everything a newcomer needs, in one process tree.

Starts an embedded PostgreSQL and Redis when DATABASE_URL / REDIS_URL are unset (or
unreachable), applies migrations, loads the seed scenarios and demo data, then runs the
provider doubles, an rq worker, the job scheduler and the API on http://127.0.0.1:5000.
Ctrl-C stops them all.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.local_services import reachable, start_embedded_postgres, start_embedded_redis

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance" / "dev"
BIN = Path(sys.executable).parent


def _say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


def _services() -> dict[str, str]:
    env = dict(os.environ)
    database_url = env.get("DATABASE_URL")
    if not database_url or not reachable(database_url):
        _say("DATABASE_URL unset or unreachable: starting an embedded PostgreSQL under instance/dev/pg")
        database_url = start_embedded_postgres(INSTANCE / "pg", "carbon")
    redis_url = env.get("REDIS_URL")
    if not redis_url or not reachable(redis_url):
        _say("REDIS_URL unset or unreachable: starting an embedded Redis under instance/dev/redis")
        redis_url = start_embedded_redis(INSTANCE / "redis")
    if not env.get("ALIPAY_PRIVATE_KEY"):
        from doubles.__main__ import ensure_demo_keys

        app_key, gateway_public = ensure_demo_keys(ROOT / "instance" / "doubles")
        env.update(ALIPAY_PRIVATE_KEY=app_key, ALIPAY_PUBLIC_KEY=gateway_public)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        APP_ENV=env.get("APP_ENV", "development"),
        FLASK_APP="wsgi",
        PYTHONUNBUFFERED="1",
    )
    return env


def _flask(env: dict[str, str], *args: str) -> None:
    subprocess.run([str(BIN / "flask"), *args], env=env, cwd=ROOT, check=True)


def main() -> None:
    env = _services()
    _say("applying migrations")
    _flask(env, "db", "upgrade")
    _say("loading seed scenarios")
    _flask(env, "scenarios", "load")
    _say("loading demo data")
    _flask(env, "demo", "load")
    children = [
        subprocess.Popen([str(BIN / "python"), "-m", "doubles", "--instance", "instance/doubles"], env=env, cwd=ROOT),
        subprocess.Popen([str(BIN / "flask"), "worker"], env=env, cwd=ROOT),
        subprocess.Popen([str(BIN / "flask"), "scheduler"], env=env, cwd=ROOT),
        subprocess.Popen(
            [str(BIN / "gunicorn"), "--bind", "127.0.0.1:5000", "--workers", "2", "--threads", "4", "wsgi:app"],
            env=env,
            cwd=ROOT,
        ),
    ]
    _say("API:      http://127.0.0.1:5000/api/v1/  (OpenAPI: /api/v1/openapi.json, browse: /api/v1/docs)")
    if (ROOT / "miniapp" / "dist" / "build" / "h5" / "index.html").is_file():
        _say("mini-app: http://127.0.0.1:5000/m/  (H5; sign in through the Suishenban double as the demo citizen)")
    else:
        _say("mini-app: not built; `make run` builds it (or: cd miniapp && npm ci && npm run build:h5)")
    _say("Ctrl-C stops everything")

    def stop(*_: object) -> None:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        for child in children:
            if child.poll() is not None:
                _say(f"{child.args[0]} exited with {child.returncode}; stopping")
                stop()
        time.sleep(1)


if __name__ == "__main__":
    main()
