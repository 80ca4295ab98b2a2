"""The workflow on Celery workers (``IBKR_ASSETS_EXECUTOR=celery``): a range of 2 symbols x 2
sessions runs its steps in two worker processes, and records exactly what the same range run
in one process records (objects byte for byte, lineage rows value for value).

Redis on 127.0.0.1:6379 (override with ``IBKR_ASSETS_TEST_REDIS_URL``) is the broker and result
backend; each test claims a database number of its own, so concurrent test sessions never share
a queue. When Redis is missing the test skips locally but fails in CI (``CI=true``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pytest
import redis
from celery import Celery
from dagster._core.definitions.reconstruct import ReconstructableRepository

from ibkr_assets.dagster_home import write_instance_config
from ibkr_assets.definitions import build_definitions
from ibkr_assets.runs import RANGE_END, RANGE_START, run_workflow
from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets_tests.helpers import STRATEGY_ID, add_symbols, job_name, seed_mlflow_store

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("IBKR_ASSETS_TEST_REDIS_URL", "redis://127.0.0.1:6379")
SYMBOLS = ["AAPL", "MSFT"]
START, END = dt.date(2025, 3, 13), dt.date(2025, 3, 14)
CLAIM = "ibkr_assets_test_claim"  # the key that reserves a Redis database for one test
QUEUE = "dagster"  # dagster-celery's queue


def _redis_missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"Redis is required in CI but unavailable: {reason}")
    pytest.skip(f"Redis unavailable: {reason}")


@pytest.fixture
def broker_url() -> Iterator[str]:
    """A Redis database no other test session uses while this test runs (numbers 1-15; 0 is the
    default broker's), emptied of any queue a crashed earlier test left behind."""
    token = uuid.uuid4().hex
    for number in range(1, 16):
        client = redis.Redis.from_url(f"{REDIS_URL}/{number}", socket_connect_timeout=2)
        try:
            claimed = client.set(CLAIM, token, nx=True, ex=900)
        except redis.exceptions.ConnectionError as exc:
            client.close()
            _redis_missing(str(exc))
        if claimed:
            break
        client.close()
    else:
        pytest.fail("every Redis database 1-15 is claimed by another test session")
    client.delete(QUEUE, "unacked", "unacked_index")
    try:
        yield f"{REDIS_URL}/{number}"
    finally:
        if client.get(CLAIM) == token.encode():
            client.delete(CLAIM)
        client.close()


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    log: Path


def _start_worker(name: str, broker: str, log: Path) -> Worker:
    """A worker as the README starts one: ``--pool solo`` runs each step in the worker process
    itself (a step's chart pool cannot start inside a prefork child), ``--disable-prefetch``
    leaves steps to idle workers. ``--include`` imports the definitions module while the worker
    starts (the test's in-process run meanwhile), not in its first step: the same module the
    steps load by reference."""
    command = [sys.executable, "-m", "celery", "-A", "dagster_celery.app", "-b", broker,
               "--result-backend", broker, "worker", "--pool", "solo", "--disable-prefetch",
               "-n", name, "--loglevel", "INFO", "--include", "ibkr_assets.definitions"]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Worker(name, process, log)


def _stop(workers: list[Worker]) -> None:
    """Stop every worker at once (a warm shutdown each, killed after 20 s)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        running = [w for w in workers if w.process.poll() is None]
        for worker in running:
            try:
                os.killpg(worker.process.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        for worker in running:
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass


@dataclass
class Workers:
    control: Celery
    workers: list[Worker]

    def by_pid(self, pid: int) -> Worker:
        return next(w for w in self.workers if w.process.pid == pid)

    def wait_until_ready(self) -> None:
        """Return once every worker answers a ping; fail with the log of one that died or did
        not answer within 90 s."""
        names = {w.name for w in self.workers}
        deadline = time.monotonic() + 90
        while True:
            replies = self.control.control.ping(destination=list(names), timeout=1)
            if {name for reply in replies for name in reply} == names:
                return
            dead = [w for w in self.workers if w.process.poll() is not None]
            if dead or time.monotonic() > deadline:
                w = (dead or self.workers)[0]
                pytest.fail(f"worker {w.name} did not start:\n{w.log.read_text()[-3000:]}")


@pytest.fixture
def celery_workers(deployment, broker_url, monkeypatch, tmp_path) -> Iterator[Workers]:
    """Two worker processes on the test's broker, with the deployment's environment (as workers
    of a code location have), and the Celery app the test uses to reach them. Started, not yet
    ready: the test calls ``wait_until_ready`` before it sends them steps."""
    deployment(EXECUTOR="celery", CELERY_BROKER=broker_url)
    tag = uuid.uuid4().hex[:8]
    workers: list[Worker] = []
    control = Celery(broker=broker_url, backend=broker_url)
    try:
        for i in range(2):
            log = tmp_path / f"worker{i}.log"
            workers.append(_start_worker(f"w{i}-{tag}@ibkr-assets-test", broker_url, log))
        yield Workers(control, workers)
    finally:
        _stop(workers)
        control.close()


def _stop_consuming_after_first_step(instance: dg.DagsterInstance, cluster: Workers) -> Worker:
    """Wait for the first step to start, then tell its worker to take no further steps.

    A run's steps here form a chain (one step at a time), so which idle worker takes the next
    one is up to the broker; leaving the rest to the other worker makes the run use both."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = instance.get_runs(limit=1)
        if runs:
            records = instance.get_records_for_run(
                runs[0].run_id, of_type=dg.DagsterEventType.STEP_START
            ).records
            if records:
                first = cluster.by_pid(records[0].event_log_entry.dagster_event.pid)
                replies = cluster.control.control.cancel_consumer(
                    QUEUE, destination=[first.name], reply=True, timeout=60
                )
                assert replies, f"{first.name} did not confirm"
                return first
        time.sleep(0.1)
    raise AssertionError("no step started within 60 s")


# Not results: what names a run (its ids, its MLflow runs), when and how long, and the analyst
# call's wall-clock latency, which the analysis record itself holds.
RUN_SPECIFIC = {"id", "execution_id", "run_id", "recorded_at", "updated_at", "duration_ms",
                "mlflow_run_id", "mlflow_run_ids", "latency_ms"}  # fmt: skip
VERSION = re.compile(r"\.[0-9a-f]{16}(?=\.\w+$)")  # the sha256 prefix of an immutable copy


def _digest(data: bytes) -> str:
    """sha256 of an object's bytes; for a JSON record holding a measured ``latency_ms`` (the
    analysis, the analyst's cache entry), of the record without it."""
    try:
        value = json.loads(data)
    except ValueError:
        value = None
    if isinstance(value, dict) and "latency_ms" in value:
        del value["latency_ms"]
        data = json.dumps(value, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()


def _objects(home: Path) -> dict[str, str]:
    """Every stored object's digest by key (an immutable copy's version as ``*``), but the
    per-run manifests (named by the run id)."""
    root = home / "objects"
    return {
        VERSION.sub(".*", str(p.relative_to(root))): _digest(p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "manifests"
    }


def _comparable(value, home: Path):
    """A lineage row's value without RUN_SPECIFIC keys; each object reference checked against
    the bytes it names and given as its key and digest."""
    if isinstance(value, list):
        return [_comparable(v, home) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) >= {"uri", "sha256"}:
        data = Path(urlsplit(value["uri"]).path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == value["sha256"], value["uri"]
        key = Path(urlsplit(value["uri"]).path).relative_to(home / "objects")
        return {"key": VERSION.sub(".*", str(key)), "digest": _digest(data)}
    return {k: _comparable(v, home) for k, v in value.items() if k not in RUN_SPECIFIC}


def _rows(home: Path) -> dict[tuple[str, str], dict]:
    """Lineage rows by (partition, step), comparable across deployments."""
    rows = LineageStore(f"sqlite:///{home / 'lineage.db'}").lineage_rows()
    return {(r["partition_key"], r["step_name"]): _comparable(r, home) for r in rows}


def _step_pids(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, set[int]]:
    pids: dict[str, set[int]] = {}
    for run_id in run_ids:
        for record in instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.STEP_START
        ).records:
            event = record.event_log_entry.dagster_event
            pids.setdefault(event.step_key, set()).add(event.pid)
    return pids


def test_celery_workers_share_a_range_and_record_what_one_process_records(
    celery_workers, monkeypatch, tmp_path
):
    celery_home = Path(os.environ["IBKR_ASSETS_HOME"])

    in_process_home = tmp_path / "in_process"
    monkeypatch.setenv("IBKR_ASSETS_HOME", str(in_process_home))
    seed_mlflow_store(in_process_home)
    with dg.instance_for_test() as instance:
        outcomes = run_workflow(build_definitions(), instance, STRATEGY_ID, SYMBOLS, START, END)
        assert all(o.success for o in outcomes), [o.errors for o in outcomes]
    monkeypatch.setenv("IBKR_ASSETS_HOME", str(celery_home))
    celery_workers.wait_until_ready()

    dagster_home = tmp_path / "dagster_home"
    write_instance_config(dagster_home)
    # Loaded by reference, as workers load it: the module Dagster's tools load, its `defs`.
    repository = ReconstructableRepository.for_module(
        "ibkr_assets.definitions", "defs", working_directory=str(REPO)
    )
    ranges = {
        job_name("trading_workflow_job"): (f"{START}|{SYMBOLS[0]}", f"{END}|{SYMBOLS[-1]}"),
        job_name("portfolio_job"): (START.isoformat(), END.isoformat()),
    }
    run_ids = []
    started = time.monotonic()
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        add_symbols(instance, SYMBOLS)
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(_stop_consuming_after_first_step, instance, celery_workers)
            for name, (first_key, last_key) in ranges.items():
                job = repository.get_reconstructable_job(name)
                tags = {RANGE_START: first_key, RANGE_END: last_key}
                with dg.execute_job(job, instance, tags=tags, raise_on_error=False) as result:
                    failures = [e.message for e in result.all_events if e.is_failure]
                    assert result.success, failures
                    run_ids.append(result.run_id)
            first_worker = first.result()
        elapsed = time.monotonic() - started
        pids = _step_pids(instance, run_ids)
        print(f"celery: {elapsed:.1f} s for {len(SYMBOLS) * 2} partitions and their portfolio")

    # (a) every step ran in one of the two workers, and both workers ran steps
    worker_pids = {w.process.pid for w in celery_workers.workers}
    assert all(len(p) == 1 for p in pids.values()), pids
    used = set().union(*pids.values())
    assert used <= worker_pids and os.getpid() not in used, pids
    assert used == worker_pids, (pids, first_worker.name)

    # (b) the same records as the in-process run
    assert _objects(celery_home) == _objects(in_process_home)
    celery_rows, in_process_rows = _rows(celery_home), _rows(in_process_home)
    assert set(celery_rows) == set(in_process_rows)
    assert len(celery_rows) == len(SYMBOLS) * 2 * 8 + 2, sorted(celery_rows)
    for key, row in celery_rows.items():
        assert row == in_process_rows[key], key
