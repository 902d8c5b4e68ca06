"""Ingest benchmark: signed partner batches over real HTTP, credited by real rq workers.

    .venv/bin/python bench/ingest.py [--events 200000] [--citizens 20000] [--batch 5000]
                                     [--pushers 2] [--workers 2] [--gunicorn-workers 2]
                                     [--database-url postgresql://postgres@127.0.0.1:5432/bench_ingest]
                                     [--redis-url redis://127.0.0.1:6379/12]

What it does, in order (DESIGN §Ingestion path; a figure, not a test):

1. drops and creates its own database (the name in --database-url, default `bench_ingest`),
   applies the migrations, loads the five starter scenarios, registers five partners (metro,
   bus, bikeshare, recycling, einvoice) with signing secrets, and bulk-loads N citizens with
   privacy and trajectory consents and one binding per partner (blind-indexed and encrypted
   exactly as app.partners.service does);
2. starts gunicorn and N `flask worker` processes (rq SimpleWorker) against that database and a
   Redis database of its own (refused when it holds keys that are not the benchmark's);
3. pushes the events as signed 5,000-event batches from --pushers threads with keep-alive
   sessions: realistic activity for each scenario, 2% re-sent event ids, 0.5% account references
   bound to nobody, occurred_at within the last three days;
4. waits until every batch is credited (`event_batches.completed_at`), then prints events/s end
   to end (first push to last credit), the ingest-only and crediting rates, the rate of a plain
   COPY of the same rows into a table with the same unique index, and the ratio;
5. checks the result: every accepted event has a final outcome, the ledger invariants hold,
   counts match (accepted = events - duplicates), points in the ledger = points on the events.

Every subprocess is stopped at the end, also on Ctrl-C or failure. Loopback only.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import queue
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402

from tests.partner_client import signed_headers  # noqa: E402

BIN = Path(sys.executable).parent
PARTNERS = (  # code, kind, scenario
    ("bench-metro", "metro", "metro_trip"),
    ("bench-bus", "bus", "bus_trip"),
    ("bench-bike", "bikeshare", "bikeshare_ride"),
    ("bench-recycling", "recycling", "recycling_dropoff"),
    ("bench-einvoice", "einvoice", "paperless"),
)
TRAJECTORY_SCENARIOS = ("metro_trip", "bus_trip", "bikeshare_ride")
DISTRICTS = ("huangpu", "xuhui", "changning", "jingan", "putuo", "hongkou", "yangpu", "minhang", "baoshan",
             "jiading", "pudong", "jinshan", "songjiang", "qingpu", "fengxian", "chongming")
MATERIALS = ("paper", "plastic", "metal", "glass", "textile")
SHANGHAI = timedelta(hours=8)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
REDIS_OWNER_KEY = "bench:ingest:owner"
INBOUND_COLUMNS = ("batch_id, partner_id, source, external_id, account_ref_idx, citizen_id, scenario_code, "
                   "scenario_version_id, occurred_at, district, activity, item_key, status, received_at")


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------
# Arguments and safety

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events pushed, duplicates included")
    parser.add_argument("--citizens", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=5_000, help="events per signed POST (at most 5,000)")
    parser.add_argument("--pushers", type=int, default=2, help="threads pushing batches concurrently")
    parser.add_argument("--workers", type=int, default=2, help="rq worker processes (flask worker)")
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--duplicates", type=float, default=0.02, help="share of re-sent event ids")
    parser.add_argument("--unbound", type=float, default=0.005, help="share of references bound to nobody")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/bench_ingest")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--port", type=int, default=0, help="gunicorn port (default: a free one)")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for crediting")
    parser.add_argument("--keep-database", action="store_true", help="leave the benchmark database for inspection")
    parser.add_argument("--log-statements", action="store_true",
                        help="log every statement on the benchmark database with its duration (server log)")
    args = parser.parse_args()
    if not 0 < args.batch <= 5000:
        parser.error("--batch must be 1-5000 (PARTNER_MAX_EVENTS)")
    if args.events < args.batch:
        parser.error("--events must be at least --batch")
    for url in (args.database_url, args.redis_url):
        parsed = urlparse(url)
        if parsed.scheme != "unix" and (parsed.hostname or "") not in LOOPBACK:
            parser.error(f"{url}: the benchmark runs on loopback only")
    if not urlparse(args.database_url).path.strip("/"):
        parser.error("--database-url must name a database (it is dropped and created)")
    if urlparse(args.database_url).path.strip("/") in ("postgres", "template0", "template1"):
        parser.error("refusing to drop a system database")
    return args


def sqlalchemy_url(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1] if url.startswith("postgresql://") else url


def plain_url(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1] if url.startswith("postgresql+psycopg://") else url


def admin_url(url: str) -> str:
    parsed = urlparse(plain_url(url))
    return parsed._replace(path="/postgres").geturl()


def database_name(url: str) -> str:
    return urlparse(url).path.strip("/")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Setup

@dataclass
class PartnerSetup:
    id: int
    code: str
    kind: str
    scenario: str
    key_id: str
    secret: str
    refs: list[str] = field(default_factory=list)  # bound account references, one per citizen


def recreate_database(url: str) -> None:
    name = database_name(url)
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database_name(url)}" WITH (FORCE)')


def tear_down(procs: Processes, args: argparse.Namespace) -> None:
    """Stop every subprocess and drop the benchmark's database unless --keep-database."""
    procs.stop()
    if not args.keep_database:
        try:
            drop_database(args.database_url)
        except psycopg.Error as error:
            say(f"could not drop the benchmark database: {error}")


def claim_redis(url: str, owner_key: str = REDIS_OWNER_KEY, owner: str = "bench/ingest.py") -> None:
    """Empty the benchmark's Redis database, refusing one that holds someone else's keys."""
    import redis

    client = redis.Redis.from_url(url)
    if client.dbsize() and client.get(owner_key) is None:
        raise SystemExit(f"{url} holds keys that are not the benchmark's; pass another --redis-url")
    client.flushdb()
    client.set(owner_key, owner.encode())


def bench_app(args: argparse.Namespace):
    from app import create_app

    return create_app("development", {
        "SQLALCHEMY_DATABASE_URI": sqlalchemy_url(args.database_url),
        "REDIS_URL": args.redis_url,
    })


def set_up(args: argparse.Namespace) -> list[PartnerSetup]:
    """Schema through the migrations, scenarios, partners and citizens (bulk SQL, app's own indexes)."""
    from flask_migrate import upgrade

    from app.accounts.terms import TERMS_VERSION
    from app.extensions import db
    from app.partners import service as partners
    from scenarios.service import load_directory

    app = bench_app(args)
    with app.app_context():
        upgrade()
        load_directory()
        made = []
        for code, kind, scenario in PARTNERS:
            partner, key_id, secret = partners.create_partner(code, kind, f"基准{kind}", f"Bench {kind}")
            made.append(PartnerSetup(partner.id, code, kind, scenario, key_id, secret))
        db.session.commit()

        conn = db.session.connection().connection.driver_connection
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO citizens (status, key_version, created_at) "
                "SELECT 'active', 1, now() FROM generate_series(1, %s) RETURNING id",
                (args.citizens,),
            )
            citizen_ids = [row[0] for row in cur.fetchall()]
            cur.execute(
                "INSERT INTO consents (citizen_id, kind, scenario_code, terms_version, granted_at) "
                "SELECT c, 'privacy', NULL, %(v)s, now() FROM unnest(%(ids)s::bigint[]) AS c "
                "UNION ALL "
                "SELECT c, 'trajectory', s, %(v)s, now() FROM unnest(%(ids)s::bigint[]) AS c, "
                "unnest(%(scenarios)s::text[]) AS s",
                {"v": TERMS_VERSION, "ids": citizen_ids, "scenarios": list(TRAJECTORY_SCENARIOS)},
            )
            for partner in made:
                with cur.copy(
                    "COPY partner_bindings (partner_id, citizen_id, account_ref_idx, account_ref_enc, bound_at) "
                    "FROM STDIN"
                ) as copy:
                    now = datetime.now(UTC)
                    for number, citizen_id in enumerate(citizen_ids):
                        ref = f"{partner.kind}-acct-{number:07d}"
                        partner.refs.append(ref)
                        copy.write_row((
                            partner.id,
                            citizen_id,
                            partners.account_ref_index(partner.id, ref),
                            partners.crypto.encrypt(ref, aad=partners._ref_aad(partner.id, citizen_id)),
                            now,
                        ))
        db.session.commit()
        db.engine.dispose()
    # A running system's reference tables are vacuumed (visibility map set, so index-only scans of
    # consents and bindings need no heap visits) and analysed: start from that steady state.
    with psycopg.connect(plain_url(args.database_url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    return made


# ---------------------------------------------------------------------------------------------
# Events

@dataclass
class Batch:
    partner: PartnerSetup
    body: bytes
    events: int
    duplicates: int  # event ids sent before (earlier in the run or earlier in this batch)


def _activity(kind: str, rng: random.Random, serial: int) -> dict[str, Any]:
    if kind == "metro":
        return {"distance_km": f"{rng.uniform(1.5, 38):.3f}"}
    if kind == "bus":
        activity: dict[str, Any] = {"trips": 1 if rng.random() < 0.9 else 2}
        if rng.random() < 0.6:
            activity["distance_km"] = f"{rng.uniform(0.8, 18):.1f}"
        return activity
    if kind == "bikeshare":
        distance = rng.uniform(0.6, 7.5)
        speed = rng.uniform(7, 18)  # km/h: plausible (the rule flags < 0.3 km, < 2 min, > 25 km/h)
        return {"distance_km": f"{distance:.2f}", "duration_min": round(distance / speed * 60, 1)}
    if kind == "recycling":
        return {"material": rng.choice(MATERIALS), "weight_kg": f"{rng.uniform(0.2, 6):.2f}"}
    if rng.random() < 0.8:  # einvoice: one document number per event, never reused
        return {"item_type": "e_invoice", "document_number": f"{26_000_000_000_000_000_000 + serial:020d}"[-20:]}
    kind_name = rng.choice(("e_ticket", "e_statement"))
    return {"item_type": kind_name, "document_number": f"BENCH{serial:012d}"}


def make_batches(args: argparse.Namespace, partners: list[PartnerSetup]) -> tuple[list[Batch], int]:
    """Signed-ready JSON bodies, built before the clock starts; returns (batches, duplicates)."""
    rng = random.Random(args.seed)
    now = datetime.now(UTC)
    run = secrets.token_hex(3)
    count = args.events // args.batch
    sent: dict[int, list[dict[str, Any]]] = {p.id: [] for p in partners}
    batches: list[Batch] = []
    serial = 0
    for number in range(count):
        partner = partners[number % len(partners)]
        history = sent[partner.id]
        events: list[dict[str, Any]] = []
        duplicates = 0
        for _ in range(args.batch):
            if (history or events) and rng.random() < args.duplicates:
                events.append(rng.choice(history or events))  # the same event again, as a partner retries
                duplicates += 1
                continue
            serial += 1
            if rng.random() < args.unbound:
                ref = f"{partner.kind}-unbound-{serial}"
            else:
                ref = partner.refs[rng.randrange(len(partner.refs))]
            occurred = now - timedelta(seconds=rng.uniform(60, 3 * 24 * 3600))
            events.append({
                "event_id": f"{partner.kind}-{run}-{serial:08d}",
                "account_ref": ref,
                "scenario": partner.scenario,
                "occurred_at": (occurred + SHANGHAI).replace(tzinfo=None).isoformat(timespec="seconds") + "+08:00",
                "district": rng.choice(DISTRICTS),
                "activity": _activity(partner.kind, rng, serial),
                "claimed_elsewhere": False,
            })
        history.extend(events)
        body = json.dumps({"events": events}, ensure_ascii=False, separators=(",", ":")).encode()
        batches.append(Batch(partner, body, len(events), duplicates))
    return batches, sum(b.duplicates for b in batches)


# ---------------------------------------------------------------------------------------------
# Processes

class Processes:
    """The benchmark's children; stop() ends exactly these, by pid (and their own process group)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        child = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        self.children.append((name, child))
        return child

    def check_alive(self) -> None:
        for name, child in self.children:
            if child.poll() is not None:
                raise RuntimeError(f"{name} exited with {child.returncode}; see {self.log_dir / (name + '.log')}")

    def stop(self) -> None:
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop(self) -> None:
        for _, child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, child in self.children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)  # the group this script created for it
                child.wait()
        self.children.clear()


def child_env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        APP_ENV="development",
        DATABASE_URL=sqlalchemy_url(args.database_url),
        REDIS_URL=args.redis_url,
        RQ_QUEUE="bench-ingest",
        RATELIMIT_PARTNER="1000000 per minute",
        FLASK_APP="wsgi",
        PYTHONUNBUFFERED="1",
    )
    return env


def start_services(args: argparse.Namespace, procs: Processes, port: int) -> str:
    env = child_env(args)
    procs.start("gunicorn", [
        str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(args.gunicorn_workers),
        "--timeout", "120", "--access-logfile", "-", "wsgi:app",
    ], env)
    for number in range(args.workers):
        procs.start(f"worker-{number + 1}", [str(BIN / "flask"), "worker", "--without-scheduler"], env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            if requests.get(f"{base}/api/v1/scenarios", timeout=2).status_code < 500:
                return base
        except requests.RequestException:  # not listening yet, or still importing
            pass
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer within 60 s")


class CpuMeter:
    """CPU seconds (user + system) used by each group of processes, and by the whole machine."""

    def __init__(self, procs: Processes, database: str) -> None:
        self.procs = procs
        self.database = database
        self.start = self.sample()

    def sample(self) -> dict[str, float]:
        import psutil

        groups: Counter = Counter()
        for name, child in self.procs.children:
            group = "gunicorn" if name == "gunicorn" else "rq workers"
            try:
                parent = psutil.Process(child.pid)
                for process in [parent, *parent.children(recursive=True)]:
                    times = process.cpu_times()
                    groups[group] += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        for process in psutil.process_iter(["cmdline", "cpu_times"]):
            cmdline = " ".join(process.info["cmdline"] or ())
            if cmdline.startswith("postgres:") and f" {self.database} " in f"{cmdline} ":
                times = process.info["cpu_times"]
                groups["postgres (benchmark db)"] += times.user + times.system
        own = psutil.Process().cpu_times()
        groups["bench (pushers)"] = own.user + own.system
        machine = psutil.cpu_times()
        groups["machine"] = machine.user + machine.system + getattr(machine, "nice", 0) + getattr(machine, "irq", 0) \
            + getattr(machine, "softirq", 0)
        return dict(groups)

    def report(self, events: int) -> str:
        end = self.sample()
        used = {key: end.get(key, 0) - self.start.get(key, 0) for key in end}
        ours = sum(value for key, value in used.items() if key != "machine")
        parts = [f"{key} {value:.1f}" for key, value in used.items() if key != "machine"]
        return (f"CPU seconds: {', '.join(parts)}; machine {used['machine']:.1f} (other processes "
                f"{max(used['machine'] - ours, 0):.1f}); {ours / events * 1e6:.0f} µs of CPU per event")


# ---------------------------------------------------------------------------------------------
# Pushing and waiting

@dataclass
class PushResult:
    started: float = 0.0  # time.time() just before the first POST
    finished: float = 0.0  # when the last 202 came back
    latencies: list[float] = field(default_factory=list)
    receipts: Counter = field(default_factory=Counter)
    batch_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    done: int = 0


def push(base: str, batches: list[Batch], pushers: int) -> tuple[PushResult, list[threading.Thread]]:
    result = PushResult()
    todo: queue.Queue[Batch] = queue.Queue()
    for batch in batches:
        todo.put(batch)
    lock = threading.Lock()
    url = f"{base}/api/v1/partner/events:batch"

    def pusher() -> None:
        session = requests.Session()  # keep-alive where the server allows it
        while not result.errors:
            try:
                batch = todo.get_nowait()
            except queue.Empty:
                return
            headers = signed_headers(batch.partner.key_id, batch.partner.secret, batch.body)
            begun = time.time()
            try:
                response = session.post(url, data=batch.body, headers=headers, timeout=300)
            except requests.RequestException as error:
                with lock:
                    result.errors.append(f"POST failed: {error}")
                return
            ended = time.time()
            if response.status_code != 202:
                with lock:
                    result.errors.append(f"POST answered {response.status_code}: {response.text[:300]}")
                return
            receipt = response.json()
            with lock:
                result.latencies.append(ended - begun)
                result.finished = max(result.finished, ended)
                result.batch_ids.append(receipt["batch_id"])
                for key in ("received", "accepted", "duplicates", "rejected"):
                    result.receipts[key] += receipt[key]
                result.done += 1

    threads = [threading.Thread(target=pusher, name=f"pusher-{n}", daemon=True) for n in range(pushers)]
    result.started = time.time()
    for thread in threads:
        thread.start()
    return result, threads


def wait_for_credit(args: argparse.Namespace, procs: Processes, result: PushResult, threads: list[threading.Thread],
                    total_batches: int, total_events: int) -> float:
    """Progress every second until every batch is complete; returns the last completed_at (epoch)."""
    deadline = time.monotonic() + args.timeout
    last_print = 0.0
    with psycopg.connect(plain_url(args.database_url), autocommit=True) as conn:
        while True:
            if result.errors:
                raise RuntimeError("; ".join(result.errors))
            procs.check_alive()
            row = conn.execute(
                "SELECT count(*), count(completed_at), coalesce(sum(accepted_count) FILTER "
                "(WHERE completed_at IS NOT NULL), 0), extract(epoch FROM max(completed_at)) FROM event_batches"
            ).fetchone()
            received, completed, credited_events, last_completed = row
            pushing = any(thread.is_alive() for thread in threads)
            now = time.monotonic()
            if now - last_print >= 1 or (not pushing and completed == total_batches):
                last_print = now
                elapsed = time.time() - result.started
                pushed_events = result.receipts["received"]
                say(f"{elapsed:6.1f} s | pushed {result.done:>3}/{total_batches} batches "
                    f"({pushed_events:,} events, {pushed_events / elapsed:,.0f}/s) | credited {completed:>3}/"
                    f"{total_batches} ({credited_events:,} accepted events, {credited_events / elapsed:,.0f}/s)")
            if not pushing and result.done == total_batches and received == completed == total_batches:
                return float(last_completed)
            if time.monotonic() > deadline:
                raise RuntimeError(f"not every batch was credited within {args.timeout:.0f} s "
                                   f"({completed}/{total_batches}); see the worker logs in {procs.log_dir}")
            time.sleep(0.25)


def job_timings(args: argparse.Namespace, batch_ids: list[str]) -> list[float]:
    """Seconds each crediting job ran (rq's started_at/ended_at), for the per-worker rate."""
    import redis
    from rq.job import Job
    from rq.serializers import JSONSerializer

    connection = redis.Redis.from_url(args.redis_url)
    jobs = Job.fetch_many([f"credit-{b}" for b in batch_ids], connection=connection, serializer=JSONSerializer)
    return [(job.ended_at - job.started_at).total_seconds() for job in jobs
            if job is not None and job.started_at and job.ended_at]


# ---------------------------------------------------------------------------------------------
# The COPY yardstick and the checks

def copy_rate(args: argparse.Namespace) -> tuple[int, float]:
    """COPY the stored events (the same rows) into a fresh table with the same unique index."""
    with psycopg.connect(plain_url(args.database_url)) as conn:
        buffer = io.BytesIO()
        with conn.cursor().copy(f"COPY (SELECT {INBOUND_COLUMNS} FROM inbound_events) TO STDOUT") as copy:
            for data in copy:
                buffer.write(data)
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute("CREATE TABLE bench_copy (LIKE inbound_events INCLUDING DEFAULTS)")
        conn.execute("CREATE SEQUENCE bench_copy_id_seq OWNED BY bench_copy.id")
        conn.execute("ALTER TABLE bench_copy ALTER COLUMN id SET DEFAULT nextval('bench_copy_id_seq')")
        conn.execute("ALTER TABLE bench_copy ADD PRIMARY KEY (id)")
        conn.execute("CREATE UNIQUE INDEX ON bench_copy (partner_id, external_id) WHERE partner_id IS NOT NULL")
        conn.commit()
        rows = conn.execute("SELECT count(*) FROM inbound_events").fetchone()[0]
        data = buffer.getvalue()
        begun = time.perf_counter()
        with conn.cursor().copy(f"COPY bench_copy ({INBOUND_COLUMNS}) FROM STDIN") as copy:
            for start in range(0, len(data), 1 << 20):
                copy.write(data[start:start + (1 << 20)])
        conn.commit()
        seconds = time.perf_counter() - begun
        conn.execute("DROP TABLE bench_copy")
        conn.commit()
    return rows, seconds


def check_results(args: argparse.Namespace, total_events: int, duplicates: int, result: PushResult) -> list[str]:
    from app.behaviours.models import FINAL_STATUSES
    from app.extensions import db
    from app.ledger.service import check_invariants

    problems: list[str] = []
    app = bench_app(args)
    with app.app_context():
        session = db.session
        scalar = session.scalar
        text = db.text
        stored = scalar(text("SELECT count(*) FROM inbound_events"))
        open_events = scalar(text("SELECT count(*) FROM inbound_events WHERE NOT (status = ANY(:final))"),
                             {"final": list(FINAL_STATUSES)})
        accepted, dupes, rejected = session.execute(text(
            "SELECT sum(accepted_count), sum(duplicate_count), sum(rejected_count) FROM event_batches"
        )).one()
        outcomes = dict(session.execute(text("SELECT status, count(*) FROM inbound_events GROUP BY status")).all())
        event_points, with_transfer = session.execute(text(
            "SELECT coalesce(sum(points), 0), count(transfer_id) FROM inbound_events"
        )).one()
        ledger_points, earn_transfers = session.execute(text(
            "SELECT coalesce(sum(amount), 0), count(*) FROM ledger_transfers WHERE kind = 'earn'"
        )).one()
        citizen_points = scalar(text("SELECT coalesce(sum(credits_posted), 0) FROM ledger_accounts "
                                     "WHERE kind = 'citizen'"))
        say("checking the ledger invariants (full scans) ...")
        invariants = check_invariants()
        db.engine.dispose()

    expected = total_events - duplicates
    print(f"  outcomes: {', '.join(f'{k} {v:,}' for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1]))}")
    print(f"  receipts: {result.receipts['received']:,} received, {result.receipts['accepted']:,} accepted, "
          f"{result.receipts['duplicates']:,} duplicates, {result.receipts['rejected']:,} rejected")
    print(f"  ledger: {earn_transfers:,} earn transfers, {ledger_points:,} points "
          f"(events say {event_points:,}; citizens' accounts {citizen_points:,})")
    checks = [
        (open_events == 0, f"every accepted event has a final outcome ({open_events:,} still open)"),
        (invariants == [], f"ledger invariants hold ({len(invariants)} violations)"),
        (stored == accepted == expected == result.receipts["accepted"],
         f"accepted = events - duplicates: {stored:,} stored, {accepted:,} counted, "
         f"{total_events:,} - {duplicates:,} = {expected:,}"),
        (dupes == duplicates == result.receipts["duplicates"], f"duplicates answered: {dupes:,} of {duplicates:,}"),
        (rejected == 0, f"no event rejected at ingestion ({rejected:,})"),
        (event_points == ledger_points == citizen_points and with_transfer == earn_transfers,
         "points on the events = earn transfers = citizens' credits"),
    ]
    for ok, line in checks:
        print(f"  [{'ok' if ok else 'FAIL'}] {line}")
        if not ok:
            problems.append(line)
    problems.extend(invariants[:10])
    return problems


# ---------------------------------------------------------------------------------------------

def main() -> int:
    args = parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    procs = Processes(log_dir)
    interrupted = False

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started in the background, where SIGINT is ignored
    try:
        say(f"database {database_name(args.database_url)} (fresh), redis {args.redis_url}, logs in {log_dir}")
        claim_redis(args.redis_url)
        recreate_database(args.database_url)
        begun = time.perf_counter()
        partners = set_up(args)
        if args.log_statements:
            with psycopg.connect(plain_url(args.database_url), autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{database_name(args.database_url)}" SET log_min_duration_statement = 0')
        say(f"set up: migrations, 5 scenarios, {len(partners)} partners, {args.citizens:,} citizens with consents "
            f"and {len(partners) * args.citizens:,} bindings in {time.perf_counter() - begun:.1f} s")
        batches, duplicates = make_batches(args, partners)
        total_events = sum(b.events for b in batches)
        say(f"{len(batches)} batches of {args.batch:,} events ({total_events:,} events, {duplicates:,} re-sent "
            f"ids, {sum(len(b.body) for b in batches) / len(batches) / 1e6:.2f} MB a batch) built")

        load_before = os.getloadavg()[0]
        port = args.port or free_port()
        base = start_services(args, procs, port)
        say(f"gunicorn ({args.gunicorn_workers} workers) on {base}, {args.workers} rq worker(s); pushing with "
            f"{args.pushers} pusher(s)")
        meter = CpuMeter(procs, database_name(args.database_url))
        result, threads = push(base, batches, args.pushers)
        last_credit = wait_for_credit(args, procs, result, threads, len(batches), total_events)
        for thread in threads:
            thread.join()
        cpu = meter.report(total_events)
        timings = job_timings(args, result.batch_ids)
        procs.stop()

        say("COPY yardstick ...")
        copy_rows, copy_seconds = copy_rate(args)

        end_to_end = last_credit - result.started
        ingest = result.finished - result.started
        e2e_rate = total_events / end_to_end
        copy_per_s = copy_rows / copy_seconds
        accepted = result.receipts["accepted"]
        with psycopg.connect(plain_url(args.database_url)) as conn:
            first_received = conn.execute(
                "SELECT extract(epoch FROM min(received_at)) FROM event_batches"
            ).fetchone()[0]
        crediting_window = last_credit - float(first_received)
        print()
        print(f"== bench/ingest.py: {total_events:,} events ({duplicates:,} re-sent), {args.citizens:,} citizens, "
              f"batches of {args.batch:,}, {args.pushers} pushers, {args.gunicorn_workers} gunicorn workers, "
              f"{args.workers} rq workers, {os.cpu_count()} cores (load average {load_before:.2f} before, "
              f"{os.getloadavg()[0]:.2f} after)")
        print(f"  end to end (first push -> last credit): {end_to_end:7.2f} s  {e2e_rate:10,.0f} events/s"
              f"  ({accepted / end_to_end:,.0f} accepted events/s)")
        print(f"  ingest only (first push -> last 202):   {ingest:7.2f} s  {total_events / ingest:10,.0f} events/s"
              f"  (POST of {args.batch:,}: median {statistics.median(result.latencies) * 1000:.0f} ms, "
              f"max {max(result.latencies) * 1000:.0f} ms)")
        print(f"  crediting (first batch in -> last credit): {crediting_window:4.2f} s  "
              f"{accepted / crediting_window:10,.0f} events/s")
        if timings:
            per_job = statistics.mean(timings)
            print(f"  crediting jobs: {len(timings)}, mean {per_job * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms "
                  f"({accepted / len(timings) / per_job:,.0f} events/s per busy worker)")
        print(f"  {cpu}")
        print(f"  plain COPY of the same {copy_rows:,} rows (unique index on partner_id, external_id): "
              f"{copy_seconds:.2f} s  {copy_per_s:10,.0f} rows/s")
        print(f"  end to end / COPY: {e2e_rate / copy_per_s:.2f}")
        print("  checks:")
        problems = check_results(args, total_events, duplicates, result)
        print(f"  RESULT: {'correct' if not problems else 'WRONG'}")
        return 0 if not problems else 1
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: stopping everything")
        return 130
    finally:
        tear_down(procs, args)
        if interrupted:
            say(f"logs kept in {log_dir}")


if __name__ == "__main__":
    sys.exit(main())
