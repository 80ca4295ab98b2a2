"""Generated records for the viewer benchmark and the index test: lineage rows, artifacts and the
book, shaped as the workflow writes them.

Five strategies of ten symbols each, run once per session (about 250 sessions at scale 1); each
session's symbols are split over executions of two or three symbols, each symbol a partition of
eight steps (``market_data`` ... ``order``), and the session's ``portfolio_snapshot`` row goes
with the last execution. About 2% of partitions fail at one step (an ``error`` row with a
message, no later steps), some signals are ``blocked``, and about 2% of executions are
re-executed later under a new execution id. A partition that reaches its signal has two chart
artifacts, the model's prompt and answer and the signal; a placed order has its artifact, its
order record, its broker orders (a bracket), their events and the parent's fill; every strategy
has one portfolio snapshot per session.

``fill(url, lineage_rows, artifact_rows)`` creates the project's tables (its own DDL code) in the
PostgreSQL database ``url`` and loads them with ``COPY``: exactly ``lineage_rows`` lineage rows
and at most ``artifact_rows`` artifacts (the oldest beyond those counts are left out), then
``VACUUM ANALYZE``. Deterministic: the same arguments give the same rows (apart from the ids of runs).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ibkr_assets.domain.orders import order_ref

STRATEGIES: dict[str, list[str]] = {
    "momentum": ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AMD", "AVGO", "NFLX"],
    "value_swing": ["JPM", "BAC", "WFC", "C", "GS", "MS", "BRK.B", "XOM", "CVX", "KO"],
    "mean_reversion": ["SPY", "QQQ", "IWM", "DIA", "XLF", "XLE", "XLK", "XLV", "XLY", "XLP"],
    "breakout": ["SHOP", "SQ", "PLTR", "SNOW", "CRWD", "NET", "DDOG", "ZS", "MDB", "OKTA"],
    "dividend": ["PG", "JNJ", "PEP", "MCD", "MMM", "T", "VZ", "PFE", "ABBV", "MO"],
}
STEPS = ("market_data", "market_data_quality", "indicators", "daily_chart", "weekly_chart",
         "llm_analysis", "trading_signal", "order")  # fmt: skip
CHUNKS = (3, 2, 3, 2)  # symbols per execution within a session
SESSIONS_AT_SCALE_1 = 250
FAIL_RATE, BLOCK_RATE, RERUN_RATE = 0.02, 0.03, 0.02
ERRORS = {
    "market_data": ["market data unavailable: IB Gateway 127.0.0.1:4002 timed out after 30 s",
                    "market data for {symbol} ends at {prev}, before the session {day}"],
    "market_data_quality": ["quality gate 'no_gaps' failed: 3 missing sessions before {day}"],
    "indicators": ["not enough bars for sma_50: 41 < 50"],
    "daily_chart": ["chart rendering failed: worker process died (signal 9)"],
    "weekly_chart": ["chart rendering failed: worker process died (signal 9)"],
    "llm_analysis": ["OpenAI 429 Too Many Requests after 3 retries",
                     "model answer is not valid JSON: Expecting ',' delimiter: line 7 column 3",
                     "analyst call timed out after 60 s"],
}  # fmt: skip
WORKFLOW = "{strategy}_workflow_job"
INDICATORS = ["sma_20", "sma_50", "ema_12", "ema_26", "macd", "rsi_14", "atr_14", "bollinger"]


@dataclass
class Loaded:
    """What ``fill`` wrote, and a few keys the benchmark asks for."""

    lineage_rows: int = 0
    artifact_rows: int = 0
    order_records: int = 0
    broker_orders: int = 0
    fills: int = 0
    snapshots: int = 0
    executions: dict[str, int] = field(default_factory=dict)  # execution id -> lineage rows
    decisions: list[tuple[str, dt.date, str]] = field(default_factory=list)  # placed orders
    first_day: dt.date | None = None
    last_day: dt.date | None = None


@dataclass
class _Execution:
    strategy: str
    day: dt.date
    symbols: list[str]
    execution_id: str
    run_id: str
    rng_seed: str
    portfolio: bool
    rerun_of: str | None = None


def sessions(count: int, end: dt.date | None = None) -> list[dt.date]:
    """``count`` weekdays ending with the last weekday before ``end`` (default today)."""
    day = (end or dt.date.today()) - dt.timedelta(days=1)
    out: list[dt.date] = []
    while len(out) < count:
        if day.weekday() < 5:
            out.append(day)
        day -= dt.timedelta(days=1)
    return out[::-1]


def _id(*parts: Any) -> str:
    """A stable UUID-shaped id from ``parts`` (run ids look like Dagster's)."""
    h = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _sha(*parts: Any) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _plan(days: list[dt.date]) -> list[_Execution]:
    plan: list[_Execution] = []
    for day in days:
        for strategy, symbols in STRATEGIES.items():
            start = 0
            for n, size in enumerate(CHUNKS):
                chunk = symbols[start : start + size]
                start += size
                ex = _Execution(strategy, day, chunk, _id("ex", strategy, day, n),
                                _id("run", strategy, day, n), f"{strategy}{day}{n}",
                                portfolio=n == len(CHUNKS) - 1)  # fmt: skip
                plan.append(ex)
                if random.Random(ex.rng_seed + "rerun").random() < RERUN_RATE:
                    plan.append(_Execution(strategy, day, chunk, _id("rerun", strategy, day, n),
                                           _id("rerun-run", strategy, day, n),
                                           ex.rng_seed + "r", portfolio=False,
                                           rerun_of=ex.execution_id))  # fmt: skip
    return plan


@dataclass
class _Partition:
    """One symbol of one execution: its steps' statuses and its decision."""

    symbol: str
    fail_step: int | None
    blocked: bool
    action: str
    price: float


def _partitions(ex: _Execution) -> list[_Partition]:
    out = []
    for symbol in ex.symbols:
        rng = random.Random(f"{ex.rng_seed}{symbol}")
        fail = rng.randrange(0, 6) if rng.random() < FAIL_RATE and ex.rerun_of is None else None
        blocked = rng.random() < BLOCK_RATE
        action = rng.choices(["BUY", "SELL", "HOLD"], [25, 10, 65])[0]
        price = round(20 + (int(_sha(symbol)[:6], 16) % 480) * (1 + rng.uniform(-0.02, 0.02)), 2)
        out.append(_Partition(symbol, fail, blocked, action, price))
    return out


def _rows_of(ex: _Execution) -> int:
    n = 0
    for p in _partitions(ex):
        if p.fail_step is not None:
            n += p.fail_step + 1
        elif p.blocked:
            n += len(STEPS) - 1
        else:
            n += len(STEPS)
    return n + (1 if ex.portfolio else 0)


# -- record shapes ----------------------------------------------------------------------------


def _object(strategy: str, step: str, partition: str, run_id: str, ext: str, size: int) -> dict:
    day, _, symbol = partition.partition("|")
    key = f"{strategy}/{step}/{day}/{symbol or 'portfolio'}/{run_id[:8]}.{ext}"
    return {"uri": f"s3://ibkr-assets/{key}", "sha256": _sha(key), "bytes": size,
            "content_type": {"json": "application/json", "png": "image/png",
                             "parquet": "application/vnd.apache.parquet"}[ext]}  # fmt: skip


def _indicators(price: float, rng: random.Random) -> dict:
    return {"close": price, "sma_20": round(price * rng.uniform(0.95, 1.05), 4),
            "sma_50": round(price * rng.uniform(0.9, 1.1), 4),
            "ema_12": round(price * rng.uniform(0.97, 1.03), 4),
            "ema_26": round(price * rng.uniform(0.95, 1.05), 4),
            "macd": round(rng.uniform(-3, 3), 4), "macd_signal": round(rng.uniform(-3, 3), 4),
            "rsi_14": round(rng.uniform(20, 80), 2), "atr_14": round(price * 0.02, 4),
            "bb_upper": round(price * 1.04, 4), "bb_lower": round(price * 0.96, 4)}  # fmt: skip


def _proposal(p: _Partition, rng: random.Random) -> dict:
    stop = round(p.price * (0.96 if p.action != "SELL" else 1.04), 2)
    target = round(p.price * (1.08 if p.action != "SELL" else 0.92), 2)
    return {"action": p.action, "entry_price": p.price, "stop_loss": stop, "take_profit": target,
            "confidence": rng.randrange(45, 95), "timeframe": "swing",
            "reasoning": f"{p.symbol} closed at {p.price} with momentum and volume above the "
                         "20-day average; the weekly trend agrees."}  # fmt: skip


def _step_data(ex: _Execution, p: _Partition, step: str, rng: random.Random) -> tuple[dict, dict]:
    """(input_data, output_data) of one successful step."""
    partition = f"{ex.day.isoformat()}|{p.symbol}"
    obj = lambda ext, size: _object(ex.strategy, step, partition, ex.run_id, ext, size)  # noqa: E731
    if step == "market_data":
        return ({"source": "ibkr", "lookback_bars": 200, "symbol": p.symbol,
                 "session": ex.day.isoformat()},
                {"symbol": p.symbol, "as_of": ex.day.isoformat(), "status": "ok",
                 "source": "ibkr", "synthetic": False, "bars_count": 200, "requested_bars": 200,
                 "start_date": (ex.day - dt.timedelta(days=290)).isoformat(),
                 "end_date": ex.day.isoformat(), "latest_price": p.price, "note": "",
                 "object": obj("parquet", 9_800)})  # fmt: skip
    if step == "market_data_quality":
        gates = [{"name": g, "passed": True, "detail": ""} for g in
                 ("no_gaps", "positive_prices", "high_low_order", "fresh", "volume_present")]  # fmt: skip
        return {"gates": [g["name"] for g in gates]}, {"passed": True, "gates": gates}
    if step == "indicators":
        return ({"indicators": INDICATORS},
                {"symbol": p.symbol, "as_of": ex.day.isoformat(), "rows": 200,
                 "latest": _indicators(p.price, rng), "object": obj("parquet", 21_400)})  # fmt: skip
    if step in ("daily_chart", "weekly_chart"):
        timeframe = step.split("_")[0]
        return ({"bars": 120 if timeframe == "daily" else 52, "style": "yahoo"},
                {"symbol": p.symbol, "as_of": ex.day.isoformat(), "timeframe": timeframe,
                 "width": 1600, "height": 900, "bars_count": 120 if timeframe == "daily" else 52,
                 "indicators": INDICATORS[:4], "object": obj("png", 88_000)})  # fmt: skip
    if step == "llm_analysis":
        proposal = _proposal(p, rng)
        return ({"template_id": "swing_v3", "template_version": "3.2.0",
                 "template_sha256": _sha("template", "3.2.0"),
                 "prompt_sha256": _sha("prompt", ex.strategy, partition)},
                {"provider": "openai", "model": "gpt-4o-mini", "proposal": proposal,
                 "valid": True, "final": proposal, "error": None,
                 "cost_usd": round(rng.uniform(0.0004, 0.002), 6),
                 "input_tokens": rng.randrange(1800, 2600), "output_tokens": rng.randrange(150, 400),
                 "latency_ms": rng.randrange(900, 4000), "cache_hit": rng.random() < 0.1,
                 "object": obj("json", 3_100)})  # fmt: skip
    if step == "trading_signal":
        proposal = _proposal(p, rng)
        rr = round(rng.uniform(1.2, 3.5), 2)
        return ({"rules": {"min_confidence": 60, "min_rr": 1.5, "max_notional": 25000.0}},
                {"symbol": p.symbol, "action": p.action, "proposed_action": p.action,
                 "entry_price": p.price, "stop_loss": proposal["stop_loss"],
                 "take_profit": proposal["take_profit"], "risk_reward": rr,
                 "confidence": proposal["confidence"], "reasoning": proposal["reasoning"],
                 "is_actionable": p.action != "HOLD" and not p.blocked,
                 "rejections": ["kill switch is on"] if p.blocked else [],
                 "object": obj("json", 600)})  # fmt: skip
    # order
    ref = order_ref(ex.strategy, p.symbol, ex.day)
    qty = max(1, int(250 / max(p.price * 0.04, 0.01)))
    placed = p.action != "HOLD"
    outcome = ("existing" if ex.rerun_of else "placed") if placed else "no_order"
    orders = ([{"role": r, "broker_order_id": _id("bo", ref, r)[:18], "quantity": qty,
                "side": p.action if r == "parent" else ("SELL" if p.action == "BUY" else "BUY"),
                "order_type": "STP" if r == "stop_loss" else "LMT", "status": "submitted"}
               for r in ("parent", "take_profit", "stop_loss")] if placed else [])  # fmt: skip
    return ({"equity": 100_000.0 + rng.uniform(-5000, 5000), "position_before": 0},
            {"order_ref": ref, "outcome": outcome, "orders": orders, "final": p.action,
             "decision": p.action, "reason": "" if placed else "signal is HOLD",
             "sizing": {"quantity": qty, "risk_amount": round(qty * p.price * 0.04, 2),
                        "notional": round(qty * p.price, 2)} if placed else None,
             "object": obj("json", 900)})  # fmt: skip


@dataclass
class _Out:
    lineage: list[list[Any]] = field(default_factory=list)
    artifacts: list[list[Any]] = field(default_factory=list)
    records: list[list[Any]] = field(default_factory=list)
    orders: list[list[Any]] = field(default_factory=list)
    events: list[list[Any]] = field(default_factory=list)
    fills: list[list[Any]] = field(default_factory=list)
    snapshots: list[list[Any]] = field(default_factory=list)


LINEAGE_COLUMNS = ("workflow_id", "execution_id", "run_id", "step_name", "step_number",
                   "partition_key", "symbol", "partition_date", "strategy_id", "code_version",
                   "input_data", "output_data", "metadata", "status", "error", "duration_ms",
                   "attempts", "previous_attempts", "recorded_at", "updated_at")  # fmt: skip
ARTIFACT_COLUMNS = ("name", "type", "symbol", "workflow_id", "execution_id", "run_id",
                    "step_name", "partition_key", "strategy_id", "mlflow_run_id",
                    "mlflow_experiment_id", "prompt", "response", "image_path", "chart_data",
                    "signal_data", "metadata", "uri", "sha256", "prompt_length",
                    "response_length", "model_name", "confidence_score", "created_at")  # fmt: skip
RECORD_COLUMNS = ("order_ref", "strategy_id", "symbol", "session_date", "broker", "mode",
                  "state", "decision", "broker_orders", "run_id", "created_at", "updated_at")  # fmt: skip
ORDER_COLUMNS = ("account", "order_ref", "role", "broker_order_id", "symbol", "side",
                 "order_type", "quantity", "limit_price", "stop_price", "parent_id", "status",
                 "filled_quantity", "avg_fill_price", "commission", "reason", "session_date",
                 "created_at", "updated_at")  # fmt: skip
EVENT_COLUMNS = ("account", "broker_order_id", "order_ref", "status", "filled_quantity", "at",
                 "detail")  # fmt: skip
FILL_COLUMNS = ("execution_id", "account", "broker_order_id", "order_ref", "role", "symbol",
                "side", "quantity", "price", "commission", "session_date", "filled_at")  # fmt: skip
SNAPSHOT_COLUMNS = ("account", "snapshot_date", "cash", "market_value", "equity",
                    "realized_pnl", "unrealized_pnl", "commissions", "gross_exposure",
                    "net_exposure", "exposure_pct", "positions")  # fmt: skip


def _j(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _execution_records(ex: _Execution, out: _Out, equity: dict[str, float]) -> None:
    """Append ``ex``'s rows (step-major, as a run of several partitions writes them)."""
    workflow = WORKFLOW.format(strategy=ex.strategy)
    start = dt.datetime.combine(ex.day, dt.time(21, 5), tzinfo=dt.timezone.utc)
    if ex.rerun_of:
        start += dt.timedelta(hours=2)
    clock = start
    parts = _partitions(ex)
    rngs = {p.symbol: random.Random(f"{ex.rng_seed}{p.symbol}data") for p in parts}
    mlflow_run = {
        p.symbol: _id("mlflow", ex.execution_id, p.symbol).replace("-", "") for p in parts
    }
    experiment = str(100 + list(STRATEGIES).index(ex.strategy))
    for number, step in enumerate(STEPS, start=1):
        for p in parts:
            if p.fail_step is not None and number - 1 > p.fail_step:
                continue
            if p.blocked and step == "order":
                continue
            rng = rngs[p.symbol]
            partition = f"{ex.day.isoformat()}|{p.symbol}"
            duration = int(rng.lognormvariate(5.5 if step != "llm_analysis" else 7.6, 0.5))
            clock += dt.timedelta(milliseconds=duration + 40)
            if p.fail_step == number - 1:
                template = rng.choice(ERRORS.get(step, ["step failed"]))
                error = template.format(symbol=p.symbol, day=ex.day,
                                        prev=ex.day - dt.timedelta(days=1))  # fmt: skip
                inputs, outputs, status = {"symbol": p.symbol}, {"error": error}, "error"
            else:
                error = None
                inputs, outputs = _step_data(ex, p, step, rng)
                status = "blocked" if p.blocked and step == "trading_signal" else "success"
            meta = {"dagster_run_id": ex.run_id, "asset_key": f"{ex.strategy}/{step}",
                    "code_version": f"{step}-v2", "host": "code-1"}  # fmt: skip
            out.lineage.append([workflow, ex.execution_id, ex.run_id, step, number, partition,
                                p.symbol, ex.day, ex.strategy, f"{step}-v2", _j(inputs),
                                _j(outputs), _j(meta), status, error, duration, 1, "[]", clock,
                                None])  # fmt: skip
            if status == "error":
                continue
            _artifacts_of(ex, p, step, outputs, rng, clock, workflow, partition,
                          mlflow_run[p.symbol], experiment, out)  # fmt: skip
            if step == "order" and outputs["outcome"] == "placed":
                _book(ex, p, outputs, clock, out)
    if ex.portfolio:
        clock += dt.timedelta(milliseconds=300)
        account = ex.strategy
        equity[account] = equity.get(account, 100_000.0) * random.Random(ex.rng_seed).uniform(
            0.985, 1.017
        )
        value = round(equity[account], 2)
        positions = [
            {
                "symbol": s,
                "quantity": 10,
                "avg_cost": 100.0,
                "price": 101.5,
                "market_value": 1015.0,
                "unrealized_pnl": 15.0,
            }
            for s in ex.symbols[:2]
        ]
        out.lineage.append([workflow, ex.execution_id, ex.run_id, "portfolio_snapshot", 9,
                            ex.day.isoformat(), None, ex.day, ex.strategy, "portfolio_snapshot-v2",
                            _j({"fills": 3}), _j({"equity": value, "cash": round(value * 0.6, 2),
                                                  "market_value": round(value * 0.4, 2),
                                                  "realized_pnl": 0.0,
                                                  "unrealized_pnl": round(value * 0.01, 2),
                                                  "exposure_pct": 40.0, "positions": positions}),
                            None, "success", None, 180, 1, "[]", clock, None])  # fmt: skip
        out.snapshots.append([account, ex.day, round(value * 0.6, 2), round(value * 0.4, 2), value,
                              0, round(value * 0.01, 2), 12.5, round(value * 0.4, 2),
                              round(value * 0.4, 2), 40.0, _j(positions)])  # fmt: skip


def _artifacts_of(ex, p, step, outputs, rng, clock, workflow, partition, mlflow_run, experiment,
                  out: _Out) -> None:  # fmt: skip
    base = [workflow, ex.execution_id, ex.run_id, step, partition, ex.strategy, mlflow_run,
            experiment]  # fmt: skip

    def add(name, type_, prompt=None, response=None, image=None, chart=None, signal=None,
            meta=None, obj=None, model=None, confidence=None):  # fmt: skip
        out.artifacts.append([name, type_, p.symbol, *base, prompt, response, image, _j(chart),
                              _j(signal), _j(meta), (obj or {}).get("uri"),
                              (obj or {}).get("sha256"), len(prompt) if prompt else None,
                              len(response) if response else None, model, confidence, clock])  # fmt: skip

    if step in ("daily_chart", "weekly_chart"):
        obj = outputs["object"]
        add(f"{step}.png", "chart", image=obj["uri"],
            chart={"timeframe": step.split("_")[0], "bars": 120, "width": 1600, "height": 900},
            obj=obj)  # fmt: skip
    elif step == "llm_analysis":
        prompt = (f"You are a swing-trading analyst. Strategy {ex.strategy}. Symbol {p.symbol}, "
                  f"session {ex.day}. Latest indicators: ") + json.dumps(
            _indicators(p.price, rng)) + " Charts attached (daily, weekly). " + "Answer in JSON. " * 40  # fmt: skip
        response = json.dumps(outputs["proposal"])
        add("analysis", "llm", prompt=prompt, response=response, obj=outputs["object"],
            model="gpt-4o-mini", confidence=outputs["proposal"]["confidence"] / 100)  # fmt: skip
    elif step == "trading_signal":
        add("signal", "signal", signal={k: outputs[k] for k in ("action", "entry_price",
                                                                "risk_reward", "is_actionable")},
            obj=outputs["object"])  # fmt: skip
    elif step == "order" and outputs["orders"]:
        add("order", "order", meta={"order_ref": outputs["order_ref"],
                                    "outcome": outputs["outcome"]}, obj=outputs["object"])  # fmt: skip


def _book(ex: _Execution, p: _Partition, outputs: dict, clock: dt.datetime, out: _Out) -> None:
    ref, account = outputs["order_ref"], ex.strategy
    side = "BUY" if p.action == "BUY" else "SELL"
    exit_side = "SELL" if side == "BUY" else "BUY"
    qty = outputs["sizing"]["quantity"]
    ids = {o["role"]: o["broker_order_id"] for o in outputs["orders"]}
    decision = {"action": p.action, "quantity": qty, "entry": p.price, "sizing": outputs["sizing"]}
    out.records.append([ref, ex.strategy, p.symbol, ex.day, "paper", "paper", "reconciled",
                        _j(decision), _j(outputs["orders"]), ex.run_id, clock, clock])  # fmt: skip
    filled_at = clock + dt.timedelta(hours=14)
    for role, order_side, order_type, limit, stop, status in (
        ("parent", side, "LMT", p.price, None, "filled"),
        ("take_profit", exit_side, "LMT", round(p.price * 1.08, 2), None, "submitted"),
        ("stop_loss", exit_side, "STP", None, round(p.price * 0.96, 2), "submitted"),
    ):
        parent = None if role == "parent" else ids["parent"]
        filled = qty if status == "filled" else 0
        out.orders.append([account, ref, role, ids[role], p.symbol, order_side, order_type, qty,
                           limit, stop, parent, status, filled,
                           p.price if filled else None, 1.0 if filled else 0, "", ex.day, clock,
                           filled_at if filled else clock])  # fmt: skip
        out.events.append([account, ids[role], ref, "submitted", 0, clock, None])
        if filled:
            out.events.append([account, ids[role], ref, "filled", qty, filled_at,
                               _j({"price": p.price})])  # fmt: skip
            out.fills.append([_id("fill", ref), account, ids[role], ref, role, p.symbol,
                              order_side, qty, p.price, 1.0, ex.day, filled_at])  # fmt: skip


# -- loading ------------------------------------------------------------------------------------


def create_tables(url: str) -> None:
    """The project's tables and indexes, created by its own code."""
    from ibkr_assets.storage.lineage_store import LineageStore
    from ibkr_assets.storage.order_records import OrderRecords
    from ibkr_assets.storage.run_failure_store import RunFailureStore
    from ibkr_assets.storage.trading_tables import create_trading_schema
    from ibkr_assets.storage.verification_runs import verification_runs

    LineageStore(url).create_schema()
    create_trading_schema(url)
    OrderRecords(url).create_schema()
    RunFailureStore(url).create_schema()
    engine = sa.create_engine(url)
    try:
        verification_runs.create(engine, checkfirst=True)
    finally:
        engine.dispose()


def _copy(cursor: Any, table: str, columns: Iterable[str], rows: Iterable[list[Any]]) -> int:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    n = 0
    for row in rows:
        writer.writerow([r"\N" if v is None else v for v in row])
        n += 1
    buffer.seek(0)
    cursor.copy_expert(
        f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer
    )
    return n


def _trim(plan: list[_Execution], rows_wanted: int) -> tuple[list[_Execution], int]:
    """The newest executions that hold ``rows_wanted`` rows, and how many of the first one's
    leading rows to leave out so the count is exact."""
    total, start = 0, len(plan)
    while start > 0 and total < rows_wanted:
        start -= 1
        total += _rows_of(plan[start])
    return plan[start:], max(0, total - rows_wanted)


def generate(lineage_rows: int, end: dt.date | None = None) -> tuple[_Out, Loaded]:
    """The records (in memory, oldest first) for ``lineage_rows`` lineage rows."""
    per_session = sum(_rows_of(e) for e in _plan(sessions(1, end)))
    days = sessions(int(lineage_rows / max(per_session, 1) * 1.1) + 2, end)
    plan, skip = _trim(_plan(days), lineage_rows)
    out, equity = _Out(), {}
    for ex in plan:
        _execution_records(ex, out, equity)
    out.lineage = out.lineage[skip:]
    loaded = Loaded(first_day=plan[0].day, last_day=plan[-1].day)
    for row in out.lineage:
        loaded.executions[row[1]] = loaded.executions.get(row[1], 0) + 1
    loaded.decisions = [(r[1], r[3], r[2]) for r in out.records]
    return out, loaded


def fill(url: str, lineage_rows: int, artifact_rows: int, end: dt.date | None = None) -> Loaded:
    """Create the tables in ``url`` (an empty PostgreSQL database) and load the records."""
    create_tables(url)
    out, loaded = generate(lineage_rows, end)
    artifacts = out.artifacts[max(0, len(out.artifacts) - artifact_rows) :]
    engine = sa.create_engine(url)
    try:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            loaded.lineage_rows = _copy(cur, "workflow_lineage", LINEAGE_COLUMNS, out.lineage)
            loaded.artifact_rows = _copy(cur, "artifacts", ARTIFACT_COLUMNS, artifacts)
            loaded.order_records = _copy(cur, "order_records", RECORD_COLUMNS, out.records)
            loaded.broker_orders = _copy(cur, "orders", ORDER_COLUMNS, out.orders)
            _copy(cur, "order_events", EVENT_COLUMNS, out.events)
            loaded.fills = _copy(cur, "fills", FILL_COLUMNS, out.fills)
            loaded.snapshots = _copy(cur, "portfolio_snapshots", SNAPSHOT_COLUMNS, out.snapshots)
            cur.execute(
                "INSERT INTO paper_accounts (account, starting_cash, cash) "
                "SELECT DISTINCT account, 100000, 60000 FROM portfolio_snapshots"
            )
            raw.commit()
            raw.set_isolation_level(0)  # ANALYZE outside a transaction block
            cur.execute("VACUUM ANALYZE")  # as autovacuum leaves a loaded table
        finally:
            raw.close()
    finally:
        engine.dispose()
    return loaded


def iter_sizes(loaded: Loaded) -> Iterator[tuple[str, int]]:
    yield from (("lineage rows", loaded.lineage_rows), ("artifacts", loaded.artifact_rows),
                ("order records", loaded.order_records), ("broker orders", loaded.broker_orders),
                ("fills", loaded.fills), ("portfolio snapshots", loaded.snapshots))  # fmt: skip
