"""Faults injected into the real services of a deployment while a range runs.

Each scenario runs the command's single-run range (workflow, then portfolio) against a service
on 127.0.0.1 that goes away mid-range: the S3 endpoint (moto) and the MLflow server behind a
forwarder that is stopped (no listener, live connections cut) and started again on the same
port, the lineage PostgreSQL database whose connections are terminated and refused, and an
OpenAI-compatible server that answers HTML, schema violations, 429s, hangs or drips. For each
fault it asserts that nothing recorded is lost or false (``verify``: every row's object exists
with its sha256, Dagster events and rows agree, order records match the book, snapshots match
the fills), that every failed partition has an ``error`` row with the cause, that no order is
placed twice, and that a rerun after recovery ends with exactly the book of an uninterrupted
range: the same orders, fills, snapshots (P&L included) and order-object sha256s.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import select
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets.storage.order_records import order_records
from ibkr_assets.storage.trading_tables import orders
from ibkr_assets_tests import cli_runner
from ibkr_assets_tests.book import STRATEGY, Home, reference_book
from ibkr_assets_tests.conftest import PG_ADMIN_URL, MlflowServer, free_port, fresh_database
from ibkr_assets_tests.helpers import seed_mlflow_store
from ibkr_assets_tests.openai_stub import (
    StubReply,
    answer,
    drip,
    error,
    hang,
    non_json,
    start_openai_stub,
)

run_cli = cli_runner.run_cli  # a fixture

pytestmark = pytest.mark.slow

SYMBOLS = ["NVDA"]  # a bracket buy on the 11th that fills on the 12th, long on the 13th
START, END = dt.date(2025, 3, 11), dt.date(2025, 3, 13)
FAST = {"IBKR_ASSETS_CHART_WORKERS": "1"}  # charts in this process: no fork beside our threads


# --- the faults: a stoppable TCP forwarder and a trigger that fires mid-range ------------------


class Forwarder:
    """A TCP forwarder on 127.0.0.1 in front of a service. ``stop()`` is the service going
    away: the listener closes (connections are refused) and every live connection is cut;
    ``start()`` brings it back on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener, self._stopping = listener, threading.Event()
        self._thread = threading.Thread(
            target=self._accept, args=(listener, self._stopping), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._listener is None:
            return
        self._stopping.set()
        assert self._thread is not None
        self._thread.join(5)
        self._listener.close()
        self._listener = None
        with self._lock:
            live, self._live = self._live, set()
        for sock in live:
            _shutdown(sock)

    def _accept(self, listener: socket.socket, stopping: threading.Event) -> None:
        while not stopping.is_set():
            if not select.select([listener], [], [], 0.02)[0]:
                continue
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                continue
            upstream.settimeout(None)
            with self._lock:
                self._live |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:  # one side is done: so is the connection
            _shutdown(dst)
            with self._lock:
                self._live.discard(src)
            src.close()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Trigger(threading.Thread):
    """Fires each ``(name, condition, action)`` in turn: waits until ``condition()`` holds, then
    runs ``action()``. ``finish()`` stops waiting and raises what went wrong in the thread."""

    def __init__(self, *steps: tuple[str, Callable[[], bool], Callable[[], object]]) -> None:
        super().__init__(daemon=True)
        self.steps, self.fired, self.error = steps, [], None
        self._done = threading.Event()
        self.start()

    def run(self) -> None:
        try:
            for name, condition, action in self.steps:
                while not condition():
                    if self._done.wait(0.01):
                        return
                action()
                self.fired.append(name)
        except BaseException as exc:  # noqa: BLE001 - raised again by finish()
            self.error = exc

    def finish(self) -> list[str]:
        self._done.set()
        self.join(30)
        if self.error is not None:
            raise self.error
        return self.fired


def _sqlite_count(database: Path, query: str) -> int:
    """``query``'s count in a SQLite file being written by the run (0 while it has no table)."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute(query).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _error_rows_recorded(home: Home) -> Callable[[], bool]:
    database = home.root / "lineage.db"
    return lambda: _sqlite_count(
        database, "SELECT count(*) FROM workflow_lineage WHERE status = 'error'"
    ) > 0  # fmt: skip


# --- what every scenario asserts -----------------------------------------------------------


def audit(instance, start: dt.date = START, end: dt.date = END) -> list[str]:
    """``verify`` of the strategy's range against the deployment's current configuration:
    every discrepancy except orphans (objects a failed step stored before it failed, which no
    row claims)."""
    from ibkr_assets.settings import load_settings
    from ibkr_assets.strategies.config import load_strategies
    from ibkr_assets.verification.run import verify

    (strategy,) = [s for s in load_strategies() if s.id == STRATEGY]
    result = verify(load_settings(), strategy, start, end, instance=instance, record=False)
    return [
        f"{d.check}: {d.subject}: {d.detail}" for d in result.discrepancies if d.check != "orphans"
    ]


def assert_each_order_once(url: str) -> None:
    """No order is duplicated: no two executions say they placed the same reference, each leg
    of each reference is in the book once, and every order in the book has its decision's
    record (``sent`` or ``reconciled``; the reference is the record's key). The execution that
    placed an order may have no row saying so when the database went down before its rows were
    written: its record keeps the run, and the rerun's row says ``existing``."""
    rows = LineageStore(url).lineage_rows(step_name="order")
    placed = [r["output_data"]["order_ref"] for r in rows if r["output_data"].get("outcome") == "placed"]  # fmt: skip
    assert len(placed) == len(set(placed)), placed
    with engine_for(url).connect() as conn:
        roles = conn.execute(sa.select(orders.c.order_ref, orders.c.role)).all()
        records = dict(conn.execute(sa.select(order_records.c.order_ref, order_records.c.state)).all())  # fmt: skip
    assert len(roles) == len(set(roles)), roles
    assert all(records.get(ref) in ("sent", "reconciled") for ref, _ in roles), (roles, records)
    assert set(placed) <= {ref for ref, _ in roles}


ASSETS_OF_STEP = {"charts": ("daily_chart", "weekly_chart")}  # a step that makes two assets


def assert_failed_step_recorded(url: str, run_id: str, step: str, *fragments: str) -> None:
    """Every partition of ``step`` in the run has an ``error`` row whose error names the cause."""
    keys = {f"{day}|{s}" for day in _weekdays(START, END) for s in SYMBOLS}
    rows = []
    for asset in ASSETS_OF_STEP.get(step, (step,)):
        found = LineageStore(url).lineage_rows(execution_id=run_id, step_name=asset)
        assert {r["partition_key"] for r in found} == keys, asset
        rows += found
    for row in rows:
        assert row["status"] == "error", row
        assert all(f in row["error"] for f in fragments), row["error"]
        assert "object" not in row["output_data"]  # points at nothing


def _weekdays(start: dt.date, end: dt.date) -> list[str]:
    days = (start + dt.timedelta(i) for i in range((end - start).days + 1))
    return [d.isoformat() for d in days if d.weekday() < 5]


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_mlflow(tmp_path_factory) -> str:
    """One SQLite MLflow store for the module's homes, a copy of an empty migrated one: creating
    one costs seconds."""
    folder = tmp_path_factory.mktemp("mlflow")
    seed_mlflow_store(folder)
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, shared_mlflow) -> dict:
    """The book of one uninterrupted range on the embedded default (SQLite, a local folder):
    orders, fills, snapshots and order objects do not depend on where they are stored."""
    env = {"MLFLOW_TRACKING_URI": shared_mlflow, **FAST}
    return reference_book(
        tmp_path_factory.mktemp("uninterrupted"), START, END, env, symbols=SYMBOLS
    )


@pytest.fixture
def homes(tmp_path, deployment, monkeypatch, shared_mlflow) -> Iterator[Callable[..., Home]]:
    deployment()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", shared_mlflow)
    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    made: list[Home] = []

    def make(name: str, **kwargs) -> Home:
        made.append(Home(tmp_path / name, monkeypatch, **{"symbols": SYMBOLS, **kwargs}))
        return made[-1]

    yield make
    for home in reversed(made):  # last opened, first closed: see Home.close
        home.close()


@pytest.fixture
def forward() -> Iterator[Callable[[str], Forwarder]]:
    """``forward(url)``: a started ``Forwarder`` to the service at ``url``, stopped at the end."""
    made: list[Forwarder] = []

    def start(url: str) -> Forwarder:
        parts = urlsplit(url)
        made.append(Forwarder(parts.hostname, parts.port))
        made[-1].start()
        return made[-1]

    yield start
    for forwarder in made:
        forwarder.stop()


@pytest.fixture
def fault_db() -> Iterator[str]:
    """A PostgreSQL database of the test's own (its connections are terminated on purpose)."""
    with fresh_database("ibkr_fault") as url:
        yield url


# --- 1. the S3 endpoint stops mid-range ---------------------------------------------------------


def test_s3_endpoint_stopped_mid_range(homes, forward, s3_endpoint, uninterrupted, monkeypatch):
    import boto3

    forwarder = forward(s3_endpoint)
    bucket = f"fault-{uuid.uuid4().hex[:8]}"
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(key, value)
    env = {
        "IBKR_ASSETS_OBJECT_STORE": "s3",
        "IBKR_ASSETS_S3_ENDPOINT_URL": forwarder.url,
        "IBKR_ASSETS_S3_BUCKET": bucket,
        "AWS_REGION": "us-east-1",
    }
    direct = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")

    def indicators_stored() -> bool:  # seen at moto itself, not through the forwarder
        try:
            found = direct.list_objects_v2(Bucket=bucket, Prefix=f"trading-data/{STRATEGY}/")
        except direct.exceptions.NoSuchBucket:
            return False
        return any("/processed/" in o["Key"] for o in found.get("Contents", []))

    home = homes("s3")
    trigger = Trigger(
        ("stopped", indicators_stored, forwarder.stop),
        ("restarted", _error_rows_recorded(home), forwarder.start),  # before the portfolio run
    )
    try:
        workflow, portfolio = home.run(START, END, **env)
        assert trigger.finish() == ["stopped", "restarted"]
    finally:
        trigger.finish()
        forwarder.stop()
        forwarder.start()

    assert not workflow.success and portfolio.success
    failed = workflow.failed_steps
    assert failed, workflow
    for step, cause in failed.items():  # the first step the outage hit, and any beside it
        assert cause.startswith("EndpointConnectionError: Could not connect"), cause
        assert_failed_step_recorded(home.url, workflow.run_id, step, "EndpointConnectionError", forwarder.url)  # fmt: skip
    assert home.book()["orders"] == []  # the order step was never reached
    assert audit(home.instance) == []  # no success row points at a missing or changed object

    home.backfill(START, END, **env)

    assert home.book() == uninterrupted
    assert_each_order_once(home.url)
    assert audit(home.instance) == []
    stored = direct.list_objects_v2(Bucket=bucket, Prefix=f"trading-data/{STRATEGY}/NVDA/orders/")
    assert stored.get("KeyCount", 0) > 0  # the rerun's objects are in S3, not in a local folder


# --- 2. the lineage PostgreSQL database becomes unreachable mid-range ----------------------------


def test_lineage_postgres_unreachable_mid_range(
    run_cli, deployment, fault_db, uninterrupted, shared_mlflow, monkeypatch, tmp_path
):
    import dagster as dg

    deployment(
        DATABASE_URL=fault_db, **{k.removeprefix("IBKR_ASSETS_"): v for k, v in FAST.items()}
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", shared_mlflow)
    name = sa.engine.make_url(fault_db).database
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    watch = sa.create_engine(fault_db, poolclass=sa.pool.NullPool)

    def deciding() -> bool:
        with watch.connect() as conn:
            if conn.execute(sa.text("SELECT to_regclass('order_records')")).scalar() is None:
                return False
            return conn.execute(sa.select(sa.func.count()).select_from(order_records)).scalar() > 0

    def cut() -> None:  # refuse new connections, then end every live one
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"
                ),
                {"d": name},
            )

    trigger = Trigger(("cut", deciding, cut))
    try:
        code, out, err = run_cli("backfill", "--no-progress", "--start", START.isoformat(),
                                 "--end", END.isoformat(), "--symbols", ",".join(SYMBOLS))  # fmt: skip
        assert trigger.finish() == ["cut"], out + err
    finally:
        trigger.finish()
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))

    assert code == 1, out + err
    assert "Traceback" not in out + err
    cause = "OperationalError"
    assert cause in out + err and (
        "terminat" in out + err or "not currently accepting" in out + err
    ), out + err

    instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster_home"))  # the command's
    try:
        # Whatever was written before the cut is true. The one thing verify may find is the
        # crash window it documents: an order the book has whose record still says `sending`
        # (the cut came between sending and recording); the rerun must heal it.
        unfinished = [d for d in audit(instance) if "state 'sending'" not in d]
        assert unfinished == []
        code, out, err = run_cli("backfill", "--no-progress", "--start", START.isoformat(),
                                 "--end", END.isoformat(), "--symbols", ",".join(SYMBOLS))  # fmt: skip
        assert code == 0, out + err
        assert audit(instance) == []
        with engine_for(fault_db).connect() as conn:
            states = set(conn.execute(sa.select(order_records.c.state)).scalars())
        assert states and states <= {"decided", "sent", "reconciled"}
    finally:
        instance.dispose()
        admin.dispose()
        watch.dispose()
    assert_each_order_once(fault_db)
    home = Home(tmp_path / "home", monkeypatch, SYMBOLS, url=fault_db)
    try:
        assert home.book() == uninterrupted
    finally:
        home.close()


# --- 3. the MLflow server stops mid-range -------------------------------------------------------


def test_mlflow_server_stopped_mid_range(
    homes, forward, mlflow_server: MlflowServer, uninterrupted, monkeypatch
):
    from mlflow import MlflowClient

    forwarder = forward(mlflow_server.url)
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)  # the project's bounded defaults
    env = {"MLFLOW_TRACKING_URI": forwarder.url}
    before = set(mlflow_server.artifacts.rglob("*.png"))

    def charts_logged() -> bool:
        return any(p not in before for p in mlflow_server.artifacts.rglob("*_chart.png"))

    home = homes("mlflow")
    stopped_at: list[float] = []
    trigger = Trigger(
        ("stopped", charts_logged, lambda: (forwarder.stop(), stopped_at.append(time.monotonic()))),
        ("restarted", _error_rows_recorded(home), forwarder.start),
    )
    try:
        workflow, _ = home.run(START, END, **env)
        failed_at = time.monotonic()
        assert trigger.finish() == ["stopped", "restarted"]
    finally:
        trigger.finish()
        forwarder.stop()
        forwarder.start()

    assert not workflow.success
    assert failed_at - stopped_at[0] < 30  # the bounded retries, not minutes
    for step, cause in workflow.failed_steps.items():
        assert f"MLflow server {forwarder.url} is unavailable" in cause, cause
        assert_failed_step_recorded(home.url, workflow.run_id, step, "MLflow", "unavailable")
    assert audit(home.instance) == []

    home.backfill(START, END, **env)

    assert home.book() == uninterrupted
    assert_each_order_once(home.url)
    assert audit(home.instance) == []
    client = MlflowClient(tracking_uri=mlflow_server.url)
    experiments = [
        client.get_experiment_by_name(f"{STRATEGY}/trading_workflow_{s}") for s in SYMBOLS
    ]
    runs = client.search_runs([e.experiment_id for e in experiments if e is not None])
    executions = {r.data.tags.get("execution_id") for r in runs}
    assert workflow.run_id in executions  # the failed execution's runs are among them
    running = [(r.data.tags.get("partition_key"), r.info.run_id) for r in runs if r.info.status == "RUNNING"]  # fmt: skip
    assert runs and not running, running
    assert {r.info.status for r in runs} == {"FINISHED", "FAILED"}


# --- 4. the LLM server misbehaves ---------------------------------------------------------------

LLM_SYMBOLS, LLM_DAYS = ["AAPL", "NVDA"], (dt.date(2025, 3, 11), dt.date(2025, 3, 13))
PROMPT = re.compile(r"HOLD\s+(\S+)\s+for the next session after the close of\s+(\d{4}-\d{2}-\d{2})")
BUYS = {("NVDA", "2025-03-11"), ("AAPL", "2025-03-13")}  # valid answers: BUY there, else HOLD
FAULTS = {  # what the misbehaving server answers, and what the analysis must keep as its error
    ("AAPL", "2025-03-11"): (lambda close: non_json(), "not a chat completion"),
    ("AAPL", "2025-03-12"): (lambda close: answer('{"action": "BUY", "confidence": "high"}'), "schema violation"),
    ("NVDA", "2025-03-12"): (lambda close: error(429, "slow down", retry_after="0"), "rate limited (HTTP 429)"),
    ("AAPL", "2025-03-13"): (lambda close: hang(3.0), "timed out"),
    ("NVDA", "2025-03-13"): (lambda close: drip(_valid("NVDA", "2025-03-13", close), 1.0, 30), "timed out"),
}  # fmt: skip


def _prompt(body: dict) -> tuple[str, str, float]:
    text = "\n".join(
        part.get("text", "") if isinstance(part, dict) else str(part)
        for message in body["messages"]
        for part in (message["content"] if isinstance(message["content"], list) else [message["content"]])
    )  # fmt: skip
    symbol, day = PROMPT.search(text).groups()
    close = float(re.search(r"Last close: ([0-9.]+)", text).group(1))
    return symbol, day, close


def _valid(symbol: str, day: str, close: float) -> StubReply:
    if (symbol, day) in BUYS:
        proposal = {"action": "BUY", "confidence": 80, "entry_price": close,
                    "stop_loss": round(close * 0.97, 4), "take_profit": round(close * 1.06, 4),
                    "reasoning": "Uptrend above both moving averages."}  # fmt: skip
    else:
        proposal = {"action": "HOLD", "confidence": 70, "entry_price": None, "stop_loss": None,
                    "take_profit": None, "reasoning": "Mixed evidence."}  # fmt: skip
    return answer(json.dumps(proposal))


def _server(faulty: bool) -> Callable[[dict], StubReply]:
    def reply(body: dict) -> StubReply:
        symbol, day, close = _prompt(body)
        if faulty and (symbol, day) in FAULTS:
            return FAULTS[symbol, day][0](close)
        return _valid(symbol, day, close)

    return reply


def test_llm_server_faults_fail_closed_and_a_rerun_decides_again(homes, deployment, monkeypatch):
    start, end = LLM_DAYS
    with start_openai_stub() as stub:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        analyst = {"provider": "openai", "base_url": stub.base_url, "model": "stub-model"}
        deployment(strategy={"symbols": LLM_SYMBOLS, "analyst": analyst}, LLM_TIMEOUT="2",
                   LLM_MAX_RETRIES="1")  # fmt: skip
        stub.route(_server(faulty=False))
        reference = homes("llm-reference", symbols=LLM_SYMBOLS)
        reference.backfill(start, end)
        expected = reference.book()
        assert expected["orders"], "the valid answers must trade, or the comparison proves little"

        stub.route(_server(faulty=True))
        home = homes("llm", symbols=LLM_SYMBOLS)
        began = time.monotonic()
        workflow, portfolio = home.run(start, end)
        assert workflow.success and portfolio.success  # a bad answer fails nothing
        assert time.monotonic() - began < 60

        rows = {
            (r["step_name"], r["partition_key"]): r for r in LineageStore(home.url).lineage_rows()
        }
        with engine_for(home.url).connect() as conn:
            decided = dict(
                conn.execute(sa.select(order_records.c.order_ref, order_records.c.state)).all()
            )
        for (symbol, day), (_, expected_error) in FAULTS.items():
            key = f"{day}|{symbol}"
            analysis = rows["llm_analysis", key]
            assert analysis["status"] == "success" and analysis["output_data"]["valid"] is False
            assert expected_error in analysis["output_data"]["error"], analysis["output_data"][
                "error"
            ]
            signal = rows["trading_signal", key]["output_data"]
            assert signal["action"] == "HOLD" and signal["decision_final"] is False
            order = rows["order", key]["output_data"]
            assert order["outcome"] == "none" and order["final"] is False
            assert f"ibkr-assets:{STRATEGY}:{symbol}:{day}" not in decided  # not final
        proceeded = rows["order", "2025-03-11|NVDA"]["output_data"]
        assert proceeded["outcome"] == "placed" and proceeded["final"] is True
        assert decided == {f"ibkr-assets:{STRATEGY}:NVDA:2025-03-11": "sent"}
        assert audit(home.instance, start, end) == []

        stub.route(_server(faulty=False))  # the model recovers
        home.backfill(start, end)

    latest = {
        r["partition_key"]: r["output_data"]
        for r in home.order_rows()
        if r["execution_id"] != workflow.run_id
    }
    assert latest[f"{end}|AAPL"]["outcome"] == "placed"  # the latest session decided again
    assert home.book() == expected
    assert_each_order_once(home.url)
    assert audit(home.instance, start, end) == []
