"""The production path against the embedded default, per partition, in the same run.

The workflow section's (a) single run (5 sample symbols x the last ``round(SESSIONS * scale)``
XNYS sessions ending 2025-06-30: 5 sessions by default, so that the section's seven fresh
deployments stay within about six minutes on a 2-core machine; ``--scale 4`` gives the
workflow section's 20; one strategy ``bench`` with the strategy defaults, one process
timed from outside, after an untimed warm-up partition on the same fresh deployment) is run
here on the embedded default (SQLite Dagster instance with the pooled event log, SQLite lineage,
local objects, SQLite MLflow store) and on the production configuration, all on this machine:

- Dagster's run, event log and schedule storage on ``dagster-postgres`` (``storage: postgres``
  in ``dagster.yaml``, as ``docker/dagster.yaml``), in a fresh PostgreSQL database;
- the lineage on PostgreSQL (``IBKR_ASSETS_DATABASE_URL``), another fresh database;
- the objects on S3 over HTTP: moto's server on 127.0.0.1 (``IBKR_ASSETS_OBJECT_STORE=s3``,
  ``IBKR_ASSETS_S3_ENDPOINT_URL``), a fresh bucket;
- a real ``mlflow server`` subprocess (SQLite backend store, proxied artifacts), a fresh one.

Where the extra time goes: the same run with one of the four parts switched on at a time (the
others as in the embedded default). The databases are created on ``IBKR_ASSETS_BENCH_PG_URL``
(default: the local server, user postgres) and dropped at the end.

dagster-postgres opens a new connection for every storage call (SQLAlchemy ``NullPool``) and its
storage config (``dagster_postgres`` 0.29, Dagster 1.13) has no pool setting: the only pooling
Dagster offers is ``DagsterInstance.optimize_for_webserver`` (a ``QueuePool`` of one connection),
which only ``dagster-webserver`` calls (its ``--db-pool-*`` flags), never a run's process. So
the connection cost is measured instead: the connections the production run opened to the
Dagster database (PostgreSQL's ``pg_stat_database.sessions``), the cost of one connection
(opening, one query, closing, against a query on a kept connection), and, without a target,
the production run once more with the instance calling ``optimize_for_webserver`` as the
webserver does (not a supported setting for runs: what such a setting would save).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
import yaml

from benchmarks.workflow_bench import (
    _ONE_PARTITION,
    _PRELUDE,
    _SINGLE_RUN,
    SYMBOLS,
    _environment,
    _python,
    _sessions,
    _single_run,
)
from ibkr_assets.dagster_home import instance_config

SESSIONS = 5  # x scale: --scale 4 for 20 sessions (seven fresh deployments run)
TARGET_RATIO = 1.5  # production / embedded default, per partition
PARTS = ("dagster", "lineage", "s3", "mlflow")
PART_NAMES = {
    "dagster": "Dagster storage on dagster-postgres",
    "lineage": "lineage on PostgreSQL",
    "s3": "objects on S3 (moto server over HTTP)",
    "mlflow": "MLflow server",
}
CONNECTS = 200  # connections opened to measure one connection's cost
PG_ADMIN_URL = os.environ.get(
    "IBKR_ASSETS_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
# What dagster-webserver does with its default flags (--db-statement-timeout 15000,
# --db-pool-recycle 3600, --db-pool-max-overflow 20), here in the run's process.
_POOLED = "instance.optimize_for_webserver(15000, 3600, 20)\n"


def _row(
    case: str, value: float, unit: str, target: str | None = None, ok: bool | None = None
) -> dict:
    return dict(section="production", case=case, value=value, unit=unit, target=target, ok=ok)


def _log(message: str) -> None:
    print(f"  production: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _database(label: str) -> Iterator[str]:
    """A fresh PostgreSQL database (psycopg2 URL, as dagster-postgres needs), dropped after."""
    name = f"ibkr_assets_production_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            url = sa.make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg2", database=name)
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@contextlib.contextmanager
def _s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, in a thread of this process."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def _mlflow_server(root: Path) -> Iterator[str]:
    """A real ``mlflow server`` (SQLite backend store, proxied artifacts) on 127.0.0.1."""
    root.mkdir(parents=True, exist_ok=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
               "--port", str(port), "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"),
               "--workers", "1"]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(root / "server.log", "wb") as log:
        server = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its worker processes stop with it
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = (root / "server.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"mlflow server did not start:\n{tail}") from None
                time.sleep(0.3)
        yield url
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(server.pid, sig)
                server.wait(30)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def _sessions_opened(url: str) -> int:
    """Connections ever opened to ``url``'s database (PostgreSQL's own count)."""
    name = sa.make_url(url).database
    admin = sa.create_engine(PG_ADMIN_URL, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            return conn.execute(
                sa.text("SELECT sessions FROM pg_stat_database WHERE datname = :n"), {"n": name}
            ).scalar_one()
    finally:
        admin.dispose()


def _measure(
    label: str,
    warmup_day: dt.date,
    sessions: list[dt.date],
    parts: set[str],
    s3_endpoint: str,
    pooled: bool = False,
) -> dict:
    """One fresh deployment with ``parts`` switched on: warm-up partition, then the timed
    single run; its wall seconds and, with Dagster on PostgreSQL, the connections it opened."""
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="production-bench-")))
        home = folder / "dagster"
        home.mkdir()
        config = instance_config(str(home / "storage"), "pooled")  # the embedded default's
        extra: dict[str, str] = {}
        dagster_url = None
        if "dagster" in parts:
            dagster_url = stack.enter_context(_database("dagster"))
            for key in ("storage", "run_storage", "event_log_storage", "schedule_storage"):
                config.pop(key, None)
            config = {"storage": {"postgres": {"postgres_url": dagster_url}}, **config}
        (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        if "lineage" in parts:
            extra["IBKR_ASSETS_DATABASE_URL"] = stack.enter_context(_database("lineage"))
        if "s3" in parts:
            extra |= {
                "IBKR_ASSETS_OBJECT_STORE": "s3",
                "IBKR_ASSETS_S3_ENDPOINT_URL": s3_endpoint,
                "IBKR_ASSETS_S3_BUCKET": f"bench-{uuid.uuid4().hex[:12]}",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        if "mlflow" in parts:
            _log(f"{label}: starting an mlflow server")
            extra["MLFLOW_TRACKING_URI"] = stack.enter_context(_mlflow_server(folder / "mlflow"))
        env = {**_environment(folder, warmup_day), **extra}
        _log(f"{label}: warm-up partition {SYMBOLS[0]} {warmup_day}")
        _python(_ONE_PARTITION, [f"{warmup_day}|{SYMBOLS[0]}"], env, folder)
        snippet = _SINGLE_RUN
        if pooled:
            assert _SINGLE_RUN.startswith(_PRELUDE)
            snippet = _PRELUDE + _POOLED + _SINGLE_RUN[len(_PRELUDE) :]
        before = _sessions_opened(dagster_url) if dagster_url else 0
        args = [",".join(SYMBOLS), sessions[0].isoformat(), sessions[-1].isoformat()]
        seconds, report = _python(snippet, args, env, folder)
        connections = None
        if dagster_url:
            time.sleep(1.0)  # a backend's statistics reach the shared counters as it exits
            connections = _sessions_opened(dagster_url) - before
        _log(f"{label}: {seconds:.1f} s (setup {report['setup']:.1f} s)")
        return {"seconds": seconds, "setup": report["setup"], "connections": connections}


def _connection_cost() -> tuple[float, float]:
    """Seconds per storage call with a new connection each (NullPool, as dagster-postgres)
    and with a kept connection, for ``SELECT 1`` in a fresh database."""
    with _database("connect") as url:
        times = {}
        for pool in (sa.pool.NullPool, sa.pool.QueuePool):
            engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=pool)
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")  # warm-up
            each = []
            for _ in range(CONNECTS):
                started = time.perf_counter()
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
                each.append(time.perf_counter() - started)
            engine.dispose()
            times[pool] = statistics.median(each)
    return times[sa.pool.NullPool], times[sa.pool.QueuePool]


def run(scale: float) -> list[dict]:
    days = max(1, round(SESSIONS * scale))
    warmup_day, *sessions = _sessions(days)
    partitions = len(SYMBOLS) * len(sessions)
    size = f"{len(SYMBOLS)} symbols x {len(sessions)} sessions ({partitions} partitions)"
    load = os.getloadavg()[0]
    started = time.perf_counter()
    try:
        sa.create_engine(PG_ADMIN_URL).connect().close()
    except sa.exc.OperationalError as exc:
        reason = str(exc).splitlines()[0]
        return [_row(f"postgresql unreachable: {reason}", float("nan"), "s/partition")]

    with _s3_endpoint() as s3:
        _log("embedded default: workflow's (a) single run")
        default_seconds, _, _ = _single_run(warmup_day, sessions)
        production = _measure("production", warmup_day, sessions, set(PARTS), s3)
        pooled = _measure("production, pooled", warmup_day, sessions, set(PARTS), s3, True)
        alone = {part: _measure(f"only {part}", warmup_day, sessions, {part}, s3) for part in PARTS}
    load = max(load, os.getloadavg()[0])
    per_connect, per_query = _connection_cost()

    default = default_seconds / partitions
    prod = production["seconds"] / partitions
    ratio = prod / default
    connections = production["connections"] / partitions
    rows = [
        _row(
            f"embedded default, workflow's (a): {size} + portfolio, wall {default_seconds:.1f} s",
            default,
            "s/partition",
        ),
        _row(
            f"production: Dagster on dagster-postgres, lineage on PostgreSQL, S3 over HTTP, "
            f"mlflow server; wall {production['seconds']:.1f} s",
            prod,
            "s/partition",
        ),
        _row(
            "production / embedded default per partition",
            ratio,
            "x",
            f"<= {TARGET_RATIO:g}x",
            ratio <= TARGET_RATIO,
        ),
    ]
    extras = 0.0
    for part in PARTS:
        value = alone[part]["seconds"] / partitions
        extras += value - default
        rows.append(
            _row(
                f"only {PART_NAMES[part]} (the rest embedded): "
                f"{(value - default) * 1000:+.0f} ms/partition over the default",
                value,
                "s/partition",
            )
        )
    rows += [
        _row(
            f"sum of the four parts' extras {extras * 1000:+.0f} ms/partition; production's "
            f"{(prod - default) * 1000:+.0f} ms",
            extras,
            "s/partition",
        ),
        _row(
            f"connections the production run opened to the Dagster database "
            f"({production['connections']} for the range: one per storage call)",
            connections,
            "per partition",
        ),
        _row(
            f"one storage call on a new connection (NullPool, median of {CONNECTS}): "
            f"{per_connect * 1000:.2f} ms; on a kept one {per_query * 1000:.2f} ms",
            (per_connect - per_query) * 1000,
            "ms/call",
        ),
        _row(
            "connection floor: the connections per partition x the extra cost of each",
            connections * (per_connect - per_query),
            "s/partition",
        ),
        _row(
            "production with the instance pooled as dagster-webserver does "
            f"(optimize_for_webserver; no setting for runs), wall {pooled['seconds']:.1f} s, "
            f"{pooled['connections']} connections; / default "
            f"{pooled['seconds'] / default_seconds:.2f}x",
            pooled["seconds"] / partitions,
            "s/partition",
        ),
        _row("1-minute load average, highest seen (2 cores shared)", load, ""),
        _row("this section's wall clock", time.perf_counter() - started, "s"),
    ]
    return rows
