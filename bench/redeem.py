"""Redemption benchmark: claims and redemptions over real HTTP, beside the database's own hot-row rate.

    .venv/bin/python bench/redeem.py [--claims 2000] [--citizens 2000] [--clients 32] [--gunicorn-workers 4]
                                     [--database-url postgresql://postgres@127.0.0.1:5432/bench_redeem]
                                     [--redis-url redis://127.0.0.1:6379/13]

What it does, in order (a figure, not a test):

1. drops and creates its own database (default `bench_redeem`), applies the migrations, and seeds
   N citizens with points (one set-based ledger credit), a merchant with 4 stores and one staff
   member per client (merchant_staff at every store), and one live offer with a large stock;
2. starts gunicorn against that database and a Redis database of its own (refused when it holds
   keys that are not the benchmark's); helpers are bench/ingest.py's, imported, not copied;
3. claims: --clients threads with keep-alive sessions POST /offers/{id}/claim (Idempotency-Key)
   for --claims coupons, citizens round-robin — every claim takes the same offer row (the hot row);
4. redemptions, in rounds that stay inside the 60 s token lifetime: the citizens fetch their
   coupons' QR tokens (GET /me/coupons/{id}/qr), then the staff POST /merchant/redemptions with
   them (Idempotency-Key), --clients at a time; the rate counts the redemption POSTs only;
5. the raw rate, on the same database in the same run, of the statement a claim is built around:
   `UPDATE ... SET remaining = remaining - 1 WHERE id = 1 AND remaining > 0 RETURNING remaining`
   from --clients connections in autocommit, on one hot row (as the claims) and on one row per
   connection (no contention);
6. checks: every claim 201 and every redemption 201, stock and coupon counts agree, every coupon
   redeemed, ledger invariants hold (app.ledger.service.check_invariants).

Every subprocess is stopped at the end, also on Ctrl-C or failure. Loopback only.
"""
from __future__ import annotations

import argparse
import os
import queue
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402

from bench.ingest import (  # noqa: E402
    BIN,
    LOOPBACK,
    CpuMeter,
    Processes,
    claim_redis,
    database_name,
    free_port,
    plain_url,
    recreate_database,
    say,
    sqlalchemy_url,
    tear_down,
)

REDIS_OWNER_KEY = "bench:redeem:owner"
STORES = ("huangpu", "xuhui", "jingan", "pudong")
PRICE = 10
ROUND_SECONDS = 40  # a redemption round must finish well inside the tokens' 60 s


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claims", type=int, default=2000, help="coupons claimed (and then redeemed)")
    parser.add_argument("--citizens", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    parser.add_argument("--round", type=int, default=200, help="coupons per redemption round (QR, then redeem)")
    parser.add_argument("--raw-seconds", type=float, default=5.0, help="duration of each raw UPDATE measurement")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/bench_redeem")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--port", type=int, default=0, help="gunicorn port (default: a free one)")
    parser.add_argument("--keep-database", action="store_true", help="leave the benchmark database for inspection")
    args = parser.parse_args()
    for url in (args.database_url, args.redis_url):
        parsed = urlparse(url)
        if parsed.scheme != "unix" and (parsed.hostname or "") not in LOOPBACK:
            parser.error(f"{url}: the benchmark runs on loopback only")
    if database_name(args.database_url) in ("", "postgres", "template0", "template1"):
        parser.error("--database-url must name a database of its own (it is dropped and created)")
    if args.claims < 1 or args.citizens < 1 or args.clients < 1:
        parser.error("--claims, --citizens and --clients must be positive")
    return args


# ---------------------------------------------------------------------------------------------
# Setup

@dataclass
class World:
    offer_id: int
    store_ids: list[int]
    citizen_tokens: dict[int, str]  # citizen id -> bearer token
    staff_tokens: list[str]  # one per client


def set_up(args: argparse.Namespace) -> World:
    from flask_migrate import upgrade

    from app import create_app
    from app.auth.tokens import issue_access_token
    from app.extensions import db
    from app.ledger.service import Earning, post_earnings
    from rewards.coupons.models import Offer
    from rewards.merchants.models import Merchant, MerchantStaff, MerchantStaffStore, Store

    app = create_app("development", {"SQLALCHEMY_DATABASE_URI": sqlalchemy_url(args.database_url),
                                     "REDIS_URL": args.redis_url})
    with app.app_context():
        upgrade()
        conn = db.session.connection()
        citizen_ids = [row[0] for row in conn.exec_driver_sql(
            "INSERT INTO citizens (status, key_version, created_at) "
            f"SELECT 'active', 1, now() FROM generate_series(1, {args.citizens + args.clients}) RETURNING id")]
        shoppers, cashiers = citizen_ids[:args.citizens], citizen_ids[args.citizens:]
        per_citizen = -(-args.claims // args.citizens)  # ceiling
        post_earnings([Earning(idempotency_key=f"bench:seed:{c}", citizen_id=c, scenario_code="bench_seed",
                               amount=PRICE * per_citizen, event_id=None, details={"bench": True})
                       for c in shoppers])
        merchant = Merchant(name_zh="基准咖啡", name_en="Bench Café", status="active")
        db.session.add(merchant)
        db.session.flush()
        stores = [Store(merchant_id=merchant.id, name=f"Bench {d}", district=d, address=f"1 Bench Road, {d}",
                        status="active") for d in STORES]
        db.session.add_all(stores)
        db.session.flush()
        staff = [MerchantStaff(merchant_id=merchant.id, citizen_id=c, role="merchant_staff", status="active")
                 for c in cashiers]
        db.session.add_all(staff)
        db.session.flush()
        db.session.add_all(MerchantStaffStore(staff_id=s.id, store_id=store.id) for s in staff for store in stores)
        now = datetime.now(UTC)
        offer = Offer(merchant_id=merchant.id, kind="coupon", title_zh="基准券", title_en="Bench coupon",
                      terms_zh="基准测试。", terms_en="Benchmark.", points_price=PRICE, total_stock=10_000_000,
                      remaining=10_000_000, per_citizen_limit=10_000, claim_starts_at=now - timedelta(hours=1),
                      claim_ends_at=now + timedelta(days=1), valid_days=30, category="食", districts=[],
                      points_budget=None, budget_used=0, rural_revitalisation=False, status="live",
                      created_by="bench")
        db.session.add(offer)
        db.session.flush()
        world = World(
            offer_id=offer.id,
            store_ids=[s.id for s in stores],
            citizen_tokens={c: issue_access_token(f"citizen:{c}")[0] for c in shoppers},
            staff_tokens=[issue_access_token(f"merchant_staff:{s.id}", "merchant_staff")[0] for s in staff],
        )
        db.session.commit()
        db.engine.dispose()
    with psycopg.connect(plain_url(args.database_url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    return world


def start_gunicorn(args: argparse.Namespace, procs: Processes, port: int) -> str:
    env = dict(os.environ)
    env.update(APP_ENV="development", DATABASE_URL=sqlalchemy_url(args.database_url), REDIS_URL=args.redis_url,
               RQ_QUEUE="bench-redeem", FLASK_APP="wsgi", PYTHONUNBUFFERED="1")
    procs.start("gunicorn", [
        str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(args.gunicorn_workers),
        "--timeout", "120", "--backlog", "2048", "wsgi:app",
    ], env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            if requests.get(f"{base}/api/v1/districts", timeout=2).status_code < 500:
                return base
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer within 60 s")


# ---------------------------------------------------------------------------------------------
# Load

@dataclass
class Phase:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    answers: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)

    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        if not self.latencies:
            return "no requests"
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (f"{len(self.latencies):,} in {self.seconds:.2f} s = {self.rate():8,.0f}/s  "
                f"(latency median {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms)")


def run_clients(clients: int, jobs: list[Any], work: Callable[[requests.Session, int, Any], Any],
                phase: Phase) -> None:
    """Run work(session, client number, job) over the jobs from `clients` threads; adds to `phase`."""
    todo: queue.Queue[Any] = queue.Queue()
    for job in jobs:
        todo.put(job)
    lock = threading.Lock()

    def client(number: int) -> None:
        session = requests.Session()
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            begun = time.perf_counter()
            try:
                status, result = work(session, number, job)
            except requests.RequestException as error:
                status, result = -1, str(error)
            elapsed = time.perf_counter() - begun
            with lock:
                phase.latencies.append(elapsed)
                phase.answers[status] += 1
                if status in (200, 201):
                    phase.results.append(result)
                elif len(phase.errors) < 5:
                    phase.errors.append(f"{status}: {str(result)[:200]}")

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    begun = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.seconds += time.perf_counter() - begun


def claim_all(args: argparse.Namespace, base: str, world: World) -> Phase:
    citizens = list(world.citizen_tokens)
    url = f"{base}/api/v1/offers/{world.offer_id}/claim"

    def claim(session: requests.Session, _client: int, n: int) -> tuple[int, Any]:
        citizen_id = citizens[n % len(citizens)]
        response = session.post(url, headers={"Authorization": f"Bearer {world.citizen_tokens[citizen_id]}",
                                              "Idempotency-Key": f"bench-claim-{n}"})
        return response.status_code, (citizen_id, response.json()["id"]) if response.status_code == 201 \
            else response.text

    phase = Phase()
    run_clients(args.clients, list(range(args.claims)), claim, phase)
    return phase


def redeem_all(args: argparse.Namespace, base: str, world: World, coupons: list[tuple[int, int]]) -> tuple[Phase,
                                                                                                          Phase]:
    """QR tokens then redemptions, in rounds short enough for the tokens to stay fresh."""
    shows, redemptions = Phase(), Phase()

    def show(session: requests.Session, _client: int, coupon: tuple[int, int]) -> tuple[int, Any]:
        citizen_id, coupon_id = coupon
        response = session.get(f"{base}/api/v1/me/coupons/{coupon_id}/qr",
                               headers={"Authorization": f"Bearer {world.citizen_tokens[citizen_id]}"})
        return response.status_code, response.json()["token"] if response.status_code == 200 else response.text

    def redeem(session: requests.Session, client: int, token: str) -> tuple[int, Any]:
        response = session.post(
            f"{base}/api/v1/merchant/redemptions",
            json={"store_id": world.store_ids[client % len(world.store_ids)], "token": token},
            headers={"Authorization": f"Bearer {world.staff_tokens[client]}",
                     "Idempotency-Key": f"bench-redeem-{token.split('.')[1]}"},
        )
        return response.status_code, response.text if response.status_code != 201 else None

    for start in range(0, len(coupons), args.round):
        shown_before = len(shows.results)
        round_begun = time.perf_counter()
        run_clients(args.clients, coupons[start:start + args.round], show, shows)
        run_clients(args.clients, shows.results[shown_before:], redeem, redemptions)
        if time.perf_counter() - round_begun > ROUND_SECONDS:
            say(f"a redemption round took {time.perf_counter() - round_begun:.0f} s: pass a smaller --round")
    return shows, redemptions


def raw_update_rate(args: argparse.Namespace, hot: bool) -> tuple[int, float]:
    """Conditional decrements from --clients autocommit connections for --raw-seconds."""
    url = plain_url(args.database_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_stock")
        conn.execute("CREATE TABLE bench_stock (id bigint PRIMARY KEY, remaining bigint NOT NULL "
                     "CHECK (remaining >= 0))")
        conn.execute("INSERT INTO bench_stock SELECT g, 1000000000 FROM generate_series(1, %s) g",
                     (args.clients,))
    counts = [0] * args.clients
    stop = threading.Event()
    barrier = threading.Barrier(args.clients + 1)

    def worker(number: int) -> None:
        row = 1 if hot else number + 1
        with psycopg.connect(url, autocommit=True) as conn:
            statement = "UPDATE bench_stock SET remaining = remaining - 1 WHERE id = %s AND remaining > 0 " \
                        "RETURNING remaining"
            barrier.wait()
            while not stop.is_set():
                conn.execute(statement, (row,), prepare=True).fetchone()
                counts[number] += 1

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(args.clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    begun = time.perf_counter()
    time.sleep(args.raw_seconds)
    stop.set()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - begun
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_stock")
    return sum(counts), seconds


def check_results(args: argparse.Namespace, world: World, claims: Phase, redemptions: Phase) -> list[str]:
    from sqlalchemy import text

    from app import create_app
    from app.extensions import db
    from app.ledger.service import check_invariants

    problems = []
    if claims.answers != Counter({201: args.claims}):
        problems.append(f"claims answered {dict(claims.answers)}: {claims.errors}")
    if redemptions.answers != Counter({201: args.claims}):
        problems.append(f"redemptions answered {dict(redemptions.answers)}: {redemptions.errors}")
    app = create_app("development", {"SQLALCHEMY_DATABASE_URI": sqlalchemy_url(args.database_url),
                                     "REDIS_URL": args.redis_url})
    with app.app_context():
        row = db.session.execute(text(
            "SELECT o.total_stock - o.remaining, (SELECT count(*) FROM coupons), "
            "(SELECT count(*) FROM coupons WHERE status = 'redeemed'), (SELECT count(*) FROM coupon_redemptions) "
            "FROM offers o WHERE o.id = :id"), {"id": world.offer_id}).one()
        taken, coupons, redeemed, redemption_rows = row
        for name, value in (("stock taken", taken), ("coupons", coupons), ("redeemed coupons", redeemed),
                            ("redemption rows", redemption_rows)):
            ok = value == args.claims
            print(f"    {name}: {value:,} {'=' if ok else '!='} {args.claims:,} claims")
            if not ok:
                problems.append(f"{name} {value} != {args.claims}")
        violations = check_invariants()
        print(f"    ledger invariants: {'hold' if not violations else violations[:5]}")
        problems.extend(violations)
        db.engine.dispose()
    return problems


def main() -> int:
    args = parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-redeem-"))
    procs = Processes(log_dir)

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        say(f"database {database_name(args.database_url)} (fresh), redis {args.redis_url}, logs in {log_dir}")
        claim_redis(args.redis_url, REDIS_OWNER_KEY, "bench/redeem.py")
        recreate_database(args.database_url)
        begun = time.perf_counter()
        world = set_up(args)
        say(f"set up: {args.citizens:,} citizens with points, a merchant with {len(STORES)} stores and "
            f"{args.clients} staff, one live offer, in {time.perf_counter() - begun:.1f} s")
        load_before = os.getloadavg()[0]
        base = start_gunicorn(args, procs, args.port or free_port())
        say(f"gunicorn ({args.gunicorn_workers} workers) on {base}; {args.clients} clients claim ...")
        meter = CpuMeter(procs, database_name(args.database_url))
        claims = claim_all(args, base, world)
        say(f"claims: {claims.summary()}; redeeming ...")
        shows, redemptions = redeem_all(args, base, world, claims.results)
        cpu = meter.report(args.claims * 3)
        procs.stop()
        say("raw conditional UPDATE on the same database ...")
        hot_count, hot_seconds = raw_update_rate(args, hot=True)
        spread_count, spread_seconds = raw_update_rate(args, hot=False)

        print()
        print(f"== bench/redeem.py: {args.claims:,} coupons, {args.citizens:,} citizens, {args.clients} concurrent "
              f"clients, {args.gunicorn_workers} gunicorn workers, {os.cpu_count()} cores (load average "
              f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after)")
        print(f"  claims       POST /offers/{{id}}/claim:      {claims.summary()}")
        print(f"  QR tokens    GET /me/coupons/{{id}}/qr:      {shows.summary()}")
        print(f"  redemptions  POST /merchant/redemptions:    {redemptions.summary()}")
        print(f"  raw UPDATE ... WHERE id = :id AND remaining > 0, {args.clients} connections, autocommit:")
        print(f"    one hot row (what every claim of one offer takes): {hot_count / hot_seconds:10,.0f}/s")
        print(f"    one row per connection (no contention):           {spread_count / spread_seconds:10,.0f}/s")
        print(f"  claims / raw hot-row rate: {claims.rate() / (hot_count / hot_seconds):.3f}")
        print(f"  {cpu} (per request: claims + QR + redemptions)")
        print("  checks:")
        problems = check_results(args, world, claims, redemptions)
        print(f"  RESULT: {'correct' if not problems else 'WRONG'}")
        for problem in problems[:10]:
            print(f"    {problem}")
        return 0 if not problems else 1
    except KeyboardInterrupt:
        say("interrupted: stopping everything")
        return 130
    finally:
        tear_down(procs, args)


if __name__ == "__main__":
    sys.exit(main())
