"""What recording lineage costs each asset step, on SQLite and on PostgreSQL.

Each step writes one ``workflow_lineage`` row (~1 KB of JSON) through ``LineageStore``: first
as a new row, then again as a re-execution (the update path that appends to
``previous_attempts``), then in batches of 100. PostgreSQL runs in a temporary database on
``IBKR_ASSETS_BENCH_PG_URL`` (default: the local server), created and dropped here.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator

import sqlalchemy as sa

from ibkr_assets.redaction import redact_text as safe_url
from ibkr_assets.storage.engines import dispose_engines, engine_for
from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets.storage.records import LineageRecord

PG_ADMIN_URL = os.environ.get(
    "IBKR_ASSETS_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
TARGET_MS = 5.0  # PostgreSQL median per step
BATCH = 100
WARMUP = 10


def run(scale: float) -> list[dict]:
    n = max(50, int(500 * scale))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        rows += _bench_database("sqlite", f"sqlite:///{folder}/lineage.db", n, target=False)
    try:
        with _temporary_postgres() as url:
            rows += _bench_database("postgresql", url, n, target=True)
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "cannot connect"
        case = f"postgresql unreachable at {safe_url(PG_ADMIN_URL)}: {reason}"
        rows.append(_row(case, math.nan, "ms", f"median <= {TARGET_MS:g} ms", False))
    return rows


def _bench_database(db: str, url: str, n: int, *, target: bool) -> list[dict]:
    store = LineageStore(url)
    store.create_schema()
    execution = f"bench-{uuid.uuid4()}"
    records = [_record(execution, i) for i in range(n)]
    size = statistics.mean(
        len(json.dumps([r.input_data, r.output_data, r.metadata])) for r in records
    )
    for i in range(WARMUP):
        store.record_step(_record(f"warmup-{execution}", i))

    first = _timed_each(store.record_step, records)
    rerun = _timed_each(store.record_step, [_record(execution, i, run="retry") for i in range(n)])
    batches = [
        [_record(f"{execution}-batch", i * BATCH + j) for j in range(BATCH)]
        for i in range(max(3, n // BATCH))
    ]
    per_row = [ms / BATCH for ms in _timed_each(store.record_steps, batches)]

    goal = f"median <= {TARGET_MS:g} ms" if target else None
    label = f"{db} record_step ({size / 1024:.1f} KB JSON, n={n})"
    return [
        _row(f"{label} median", statistics.median(first), "ms/step", goal, _ok(first, target)),
        _row(f"{label} p99", _p99(first), "ms/step"),
        _row(f"{db} re-execution upsert median", statistics.median(rerun), "ms/step", goal,
             _ok(rerun, target)),
        _row(f"{db} re-execution upsert p99", _p99(rerun), "ms/step"),
        _row(f"{db} record_steps({BATCH}) per row, median", statistics.median(per_row), "ms/row"),
    ]  # fmt: skip


def _timed_each(write: Callable, items: list) -> list[float]:
    times = []
    for item in items:
        start = time.perf_counter()
        write(item)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


def _ok(times: list[float], target: bool) -> bool | None:
    return statistics.median(times) <= TARGET_MS if target else None


def _row(
    case: str, value: float, unit: str, target: str | None = None, ok: bool | None = None
) -> dict:
    return dict(section="lineage", case=case, value=value, unit=unit, target=target, ok=ok)


@contextlib.contextmanager
def _temporary_postgres() -> Iterator[str]:
    name = f"ibkr_assets_bench_{uuid.uuid4().hex[:10]}"
    with engine_for(PG_ADMIN_URL).connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        with engine_for(PG_ADMIN_URL).connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _record(execution: str, i: int, run: str = "first") -> LineageRecord:
    """A realistic indicators step: request in, summary with a dozen indicators out (~1 KB)."""
    symbol = f"SYM{i % 500:03d}"
    day = f"2025-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}"
    digest = uuid.uuid5(uuid.NAMESPACE_URL, f"{symbol}/{day}").hex * 2
    price = 100 + (i % 97) * 1.37
    indicators = {
        name: round(price * factor, 4)
        for name, factor in (
            ("sma_20", 0.99), ("sma_50", 0.97), ("sma_200", 0.91), ("ema_12", 1.01),
            ("ema_26", 0.995), ("rsi_14", 0.52), ("macd", 0.012), ("macd_signal", 0.009),
            ("macd_hist", 0.003), ("bb_upper", 1.05), ("bb_lower", 0.95), ("atr_14", 0.021),
        )
    }  # fmt: skip
    return LineageRecord(
        workflow_id="trading_signal_job",
        execution_id=execution,
        run_id=f"{execution}-{run}",
        step_name="indicators",
        step_number=3,
        partition_key=f"{day}|{symbol}",
        symbol=symbol,
        input_data={
            "symbol": symbol,
            "end": day,
            "bars": 200,
            "source": "ibkr",
            "request": {"exchange": "SMART", "duration": "200 D", "bar_size": "1 day"},
            "upstream": {
                "asset": "market_data",
                "uri": f"s3://trading-data/{symbol}/raw/{day}_ibkr.json",
                "sha256": digest,
            },
        },
        output_data={
            "bar_count": 200,
            "first_date": "2024-03-15",
            "last_date": day,
            "latest_price": round(price, 2),
            "indicators": indicators,
            "quality": {"gaps": 0, "nan_values": 0, "duplicates": 0, "checks_passed": 12},
            "uri": f"s3://trading-data/{symbol}/processed/{day}_indicators.json",
            "sha256": digest[::-1],
        },
        metadata={"dagster/partition": f"{day}|{symbol}", "code_version": "bench", "host": "w1"},
        duration_ms=40 + i % 25,
    )
