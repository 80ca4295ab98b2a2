"""The Celery path: a range on two Celery workers against the same range in one process.

2 sample symbols (AAPL, MSFT) x the last ``round(10 * scale)`` XNYS sessions ending 2025-06-30,
strategy ``bench`` with the strategy defaults, on the embedded default deployment (SQLite
instance on Dagster's own storage, SQLite lineage, local objects, SQLite MLflow store), each
measurement on a fresh temporary deployment:

- celery: ``IBKR_ASSETS_EXECUTOR=celery`` with Redis on 127.0.0.1:6379 (``IBKR_ASSETS_BENCH_REDIS_URL``
  to change it; a database number no one else claimed) and two workers started as the README
  starts them (``--pool solo --disable-prefetch``). One range run per symbol, both launched at
  once (a process each, as two ``dagster job execute`` commands would be), then the portfolio
  run; timed from the launch of the first to the end of the portfolio, process start included.
  An untimed partition before the range first goes through the workers, so they have loaded
  the code location and the stores exist.
- in one process: ``ibkr-assets backfill``'s single run (the workflow section's (a)) over the same
  range and symbols, after its own untimed partition.

On one machine the workers share its two cores with the runs' own processes, so this shows what
Celery costs per step, not what it gains: that needs the workers on other machines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.workflow_bench import (
    _ONE_PARTITION,
    _SINGLE_RUN,
    _environment,
    _python,
    _sessions,
)

SYMBOLS = ["AAPL", "MSFT"]
DAYS = 10
WORKERS = 2
REDIS_URL = os.environ.get("IBKR_ASSETS_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
CLAIM = "ibkr_assets_test_claim"  # test_celery's key too: the two never share a database
_REPO = Path(__file__).resolve().parents[1]

# One run of a job over a key range, on the executor the deployment configures (Celery here),
# loaded by reference as workers load it.
_RANGE_RUN = """
import json, sys, time
started = time.perf_counter()
import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository
from ibkr_assets.runs import RANGE_END, RANGE_START
job_name, first, last, repo = sys.argv[2:6]
job = ReconstructableRepository.for_module(
    "ibkr_assets.definitions", "defs", working_directory=repo
).get_reconstructable_job(job_name)
instance = dg.DagsterInstance.get()
tags = {RANGE_START: first, RANGE_END: last}
with dg.execute_job(job, instance, tags=tags, raise_on_error=False) as result:
    errors = [e.message for e in result.all_events if e.is_failure] if not result.success else []
print(json.dumps({"setup": 0.0, "runs": time.perf_counter() - started, "errors": errors}))
"""


def _row(case: str, value: float, unit: str) -> dict:
    return {"section": "celery", "case": case, "value": value, "unit": unit, "target": None,
            "ok": None}  # fmt: skip


def _log(message: str) -> None:
    print(f"  celery: {message}", file=sys.stderr, flush=True)


@contextmanager
def _redis_database() -> Iterator[str]:
    """A Redis database URL (numbers 1-15) no test or other measurement holds, emptied."""
    import redis

    token = uuid.uuid4().hex
    for number in range(1, 16):
        client = redis.Redis.from_url(f"{REDIS_URL}/{number}", socket_connect_timeout=2)
        if client.set(CLAIM, token, nx=True, ex=1800):
            break
        client.close()
    else:
        raise RuntimeError("every Redis database 1-15 is claimed")
    try:
        client.flushdb()
        client.set(CLAIM, token, ex=1800)
        yield f"{REDIS_URL}/{number}"
    finally:
        if client.get(CLAIM) == token.encode():
            client.flushdb()
        client.close()


@contextmanager
def _workers(env: dict[str, str], broker: str, folder: Path) -> Iterator[None]:
    """``WORKERS`` Celery workers on ``broker``, stopped (their process groups) at the end."""
    from celery import Celery

    tag = uuid.uuid4().hex[:8]
    names = [f"bench{i}-{tag}@ibkr-assets" for i in range(WORKERS)]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "dagster_celery.app",
                "-b",
                broker,
                "--result-backend",
                broker,
                "worker",
                "--pool",
                "solo",
                "--disable-prefetch",
                "-n",
                name,
                "--loglevel",
                "WARNING",
            ],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(folder / f"{name.split('@')[0]}.log").open("wb"),
            start_new_session=True,
        )  # fmt: skip
        for name in names
    ]
    control = Celery(broker=broker, backend=broker)
    try:
        deadline = time.monotonic() + 90
        while True:
            replies = control.control.ping(destination=names, timeout=1)
            if {n for reply in replies for n in reply} == set(names):
                break
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError("the Celery workers did not start (see their logs)")
        yield
    finally:
        control.close()
        for process in processes:
            try:
                os.killpg(process.pid, 15)
                process.wait(30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, 9)


def _launch(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _RANGE_RUN, json.dumps({}), *args],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _finish(process: subprocess.Popen) -> None:
    out, err = process.communicate()
    lines = out.strip().splitlines()
    errors = json.loads(lines[-1])["errors"] if process.returncode == 0 and lines else ["exited"]
    if errors:
        raise RuntimeError(f"celery run failed: {errors[:3]}\n{err[-1500:]}")


def _celery(warmup, sessions) -> float:
    with tempfile.TemporaryDirectory(prefix="celery-bench-") as name, _redis_database() as broker:
        folder = Path(name)
        env = _environment(folder, warmup, event_log="dagster")
        _log(f"warm-up partition {warmup} in one process (creates the stores, adds the symbols)")
        for symbol in SYMBOLS:
            _python(_ONE_PARTITION, [f"{warmup}|{symbol}"], env, folder)
        env |= {"IBKR_ASSETS_EXECUTOR": "celery", "IBKR_ASSETS_CELERY_BROKER": broker}
        with _workers(env, broker, folder):
            _log("warm-up partition through the workers")
            key = f"{warmup}|{SYMBOLS[0]}"
            _finish(_launch(["bench_workflow_job", key, key, str(_REPO)], env, folder))
            _log(f"{len(SYMBOLS)} range runs at once on {WORKERS} workers, then the portfolio")
            started = time.perf_counter()
            runs = [
                _launch(
                    [
                        "bench_workflow_job",
                        f"{sessions[0]}|{symbol}",
                        f"{sessions[-1]}|{symbol}",
                        str(_REPO),
                    ],
                    env,
                    folder,
                )  # fmt: skip
                for symbol in SYMBOLS
            ]
            for run in runs:
                _finish(run)
            _finish(_launch(["bench_portfolio_job", str(sessions[0]), str(sessions[-1]),
                             str(_REPO)], env, folder))  # fmt: skip
            return time.perf_counter() - started


def _in_process(warmup, sessions) -> float:
    with tempfile.TemporaryDirectory(prefix="celery-bench-") as name:
        folder = Path(name)
        env = _environment(folder, warmup, event_log="dagster")
        _python(_ONE_PARTITION, [f"{warmup}|{SYMBOLS[0]}"], env, folder)
        _log("the same range as one run in one process")
        args = [",".join(SYMBOLS), sessions[0].isoformat(), sessions[-1].isoformat()]
        seconds, _ = _python(_SINGLE_RUN, args, env, folder)
        return seconds


def run(scale: float) -> list[dict]:
    days = max(1, round(DAYS * scale))
    warmup, *sessions = _sessions(days)
    partitions = len(SYMBOLS) * len(sessions)
    size = f"{len(SYMBOLS)} symbols x {len(sessions)} sessions ({partitions} partitions)"
    celery = _celery(warmup, sessions)
    one = _in_process(warmup, sessions)
    return [
        _row(
            f"celery, {WORKERS} workers: {size}, a range run per symbol at once, then the "
            f"portfolio (wall {celery:.1f} s)",
            celery / partitions,
            "s/partition",
        ),  # fmt: skip
        _row(
            f"one process, single run: the same range (wall {one:.1f} s)",
            one / partitions,
            "s/partition",
        ),  # fmt: skip
        _row("celery / one process, per partition", celery / one, "x"),
    ]
