"""The decision trace: why was (or was not) an order placed for one strategy, session and symbol.

One answer assembled from the records: the partition's lineage rows of one execution (the
latest that reached the order step, unless one is asked for), its artifacts, the recorded order
decision, the broker's orders, their events and fills, and the portfolio snapshot of the date.
Every object comes with its URI, sha256 and the API path that serves its verified bytes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ibkr_assets.domain.orders import order_ref
from ibkr_assets.viewer.context import ViewerContext

WORKFLOW_STEPS = ("market_data", "market_data_quality", "indicators", "daily_chart",
                  "weekly_chart", "llm_analysis", "trading_signal", "order")  # fmt: skip


class NotFound(LookupError):
    """Nothing recorded for what was asked; the message says what."""


def object_ref(row: dict[str, Any]) -> dict[str, Any] | None:
    """A lineage row's object: URI, sha256 and where its verified bytes are served."""
    ref = (row.get("output_data") or {}).get("object")
    if not isinstance(ref, dict) or not ref.get("uri"):
        return None
    return {"uri": ref.get("uri"), "sha256": ref.get("sha256"),
            "content_url": f"/api/lineage/rows/{row['id']}/object"}  # fmt: skip


def artifact_ref(ctx: ViewerContext, art: dict[str, Any]) -> dict[str, Any]:
    """An artifact's identity, object and MLflow run (texts and data stay in the full row)."""
    return {
        "id": art["id"], "name": art["name"], "type": art["type"], "uri": art["uri"],
        "sha256": art["sha256"],
        "content_url": f"/api/artifacts/{art['id']}/content" if art.get("uri") else None,
        "mlflow": ctx.links.mlflow_info(art.get("mlflow_experiment_id"), art.get("mlflow_run_id")),
    }  # fmt: skip


def step_entry(ctx: ViewerContext, row: dict[str, Any]) -> dict[str, Any]:
    """One step as the trace shows it: status, timing, code version, input, output, object."""
    return {
        "row_id": row["id"], "step_name": row["step_name"], "step_number": row["step_number"],
        "status": row["status"], "error": row["error"], "duration_ms": row["duration_ms"],
        "attempts": row["attempts"], "code_version": row["code_version"],
        "run_id": row["run_id"], "dagster_run_url": ctx.links.dagster_run(row["run_id"]),
        "recorded_at": row["recorded_at"], "input": row["input_data"],
        "output": row["output_data"], "object": object_ref(row),
    }  # fmt: skip


def decision_trace(
    ctx: ViewerContext,
    strategy_id: str,
    day: dt.date,
    symbol: str,
    execution_id: str | None = None,
) -> dict[str, Any]:
    """The trace of ``strategy_id``'s decision for ``symbol`` on session ``day``."""
    partition = f"{day.isoformat()}|{symbol}"
    rows = ctx.lineage.partition_rows(strategy_id, partition)
    ref = order_ref(strategy_id, symbol, day)
    record = ctx.trading.order_record(ref)
    if not rows and record is None:
        raise NotFound(f"nothing recorded for strategy {strategy_id!r}, {symbol} on {day}")
    executions = _executions(rows)
    if execution_id is not None and execution_id not in executions:
        raise NotFound(f"execution {execution_id!r} has no rows for partition {partition!r}")
    chosen = execution_id or _deciding_execution(rows)
    steps = {r["step_name"]: r for r in rows if r["execution_id"] == chosen}
    arts = ctx.lineage.partition_artifacts(strategy_id, partition, chosen) if chosen else []
    by_type: dict[str, list[dict[str, Any]]] = {}
    for art in arts:
        by_type.setdefault(art["type"], []).append(art)

    llm_row, llm_art = steps.get("llm_analysis"), _first(by_type.get("llm"))
    llm_out = (llm_row or {}).get("output_data") or {}
    llm_in = (llm_row or {}).get("input_data") or {}
    signal_row, order_row = steps.get("trading_signal"), steps.get("order")
    broker_orders = ctx.trading.broker_orders(strategy_id, ref)
    snapshot_rows = [r for r in ctx.lineage.partition_rows(strategy_id, day.isoformat())
                     if r["step_name"] == "portfolio_snapshot"]  # fmt: skip
    mlflow_art = next((a for a in arts if a.get("mlflow_run_id")), None)
    return {
        "strategy_id": strategy_id, "date": day, "symbol": symbol, "partition_key": partition,
        "order_ref": ref, "execution_id": chosen, "executions": list(executions.values()),
        "steps": [step_entry(ctx, steps[s]) for s in WORKFLOW_STEPS if s in steps],
        "market_data": _output(steps.get("market_data")),
        "quality": _output(steps.get("market_data_quality")),
        "indicators": (_output(steps.get("indicators")) or {}).get("latest"),
        "charts": [artifact_ref(ctx, a) | {"chart_data": a.get("chart_data")}
                   for a in by_type.get("chart", [])],
        "analysis": None if llm_row is None and llm_art is None else {
            "provider": llm_out.get("provider"),
            "model": (llm_art or {}).get("model_name") or llm_out.get("model"),
            "template_id": llm_in.get("template_id"),
            "template_version": llm_in.get("template_version"),
            "template_sha256": llm_in.get("template_sha256"),
            "prompt_sha256": llm_in.get("prompt_sha256"),
            "prompt": (llm_art or {}).get("prompt"), "response": (llm_art or {}).get("response"),
            "proposal": llm_out.get("proposal"), "valid": llm_out.get("valid"),
            "final": llm_out.get("final"), "error": llm_out.get("error"),
            "cost_usd": llm_out.get("cost_usd"), "input_tokens": llm_out.get("input_tokens"),
            "output_tokens": llm_out.get("output_tokens"), "latency_ms": llm_out.get("latency_ms"),
            "cache_hit": llm_out.get("cache_hit"),
            "artifact": artifact_ref(ctx, llm_art) if llm_art else None,
        },
        "signal": _output(signal_row),
        "risk_checks": None if signal_row is None else {
            "rules": (signal_row.get("input_data") or {}).get("rules"),
            "rejections": (signal_row.get("output_data") or {}).get("rejections"),
            "is_actionable": (signal_row.get("output_data") or {}).get("is_actionable"),
        },
        "sizing": _sizing(order_row, record),
        "order": _output(order_row),
        "order_record": record,
        "broker_orders": broker_orders,
        "order_events": ctx.trading.order_events(ref) if broker_orders else [],
        "fills": ctx.trading.order_fills(ref) if broker_orders else [],
        "portfolio": {
            "snapshot": ctx.trading.snapshot(strategy_id, day),
            "lineage": step_entry(ctx, snapshot_rows[-1]) if snapshot_rows else None,
        },
        "artifacts": [artifact_ref(ctx, a) for a in arts],
        "links": {
            "dagster_runs": {r: ctx.links.dagster_run(r)
                             for r in sorted({s["run_id"] for s in steps.values()})},
            "mlflow": ctx.links.mlflow_info(
                (mlflow_art or {}).get("mlflow_experiment_id"), (mlflow_art or {}).get("mlflow_run_id")
            ),
        },
    }  # fmt: skip


def _executions(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The partition's executions in the order they first wrote a row."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        e = out.setdefault(r["execution_id"], {"execution_id": r["execution_id"], "run_ids": [],
                           "steps": {}, "first_recorded_at": r["recorded_at"]})  # fmt: skip
        if r["run_id"] not in e["run_ids"]:
            e["run_ids"].append(r["run_id"])
        e["steps"][r["step_name"]] = r["status"]
    return out


def _deciding_execution(rows: list[dict[str, Any]]) -> str | None:
    """The latest execution that reached the order step, else the latest one."""
    with_order = [r["execution_id"] for r in rows if r["step_name"] == "order"]
    if with_order:
        return with_order[-1]
    return rows[-1]["execution_id"] if rows else None


def _sizing(order_row: dict[str, Any] | None, record: dict[str, Any] | None) -> Any:
    out = (order_row or {}).get("output_data") or {}
    decision = (record or {}).get("decision") or {}
    sizing = out.get("sizing") or decision.get("sizing")
    if sizing is None and order_row is None:
        return None
    inputs = (order_row or {}).get("input_data") or {}
    return {"sizing": sizing, "equity": inputs.get("equity"),
            "position_before": inputs.get("position_before")}  # fmt: skip


def _output(row: dict[str, Any] | None) -> Any:
    return None if row is None else row.get("output_data")


def _first(items: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    return items[0] if items else None
