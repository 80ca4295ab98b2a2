"""What differs between two executions, step by step and partition by partition.

Each ``(strategy, step, partition)`` present in either execution is compared on its status,
error, code version, object sha256, and every value of its output (a flattened path such as
``latest.rsi_14`` or ``orders[0].quantity``); an ``llm_analysis`` step also on its prompt,
response and model. Values that describe how an execution ran rather than what it decided
(cache hits, cost, latency, MLflow run ids, the order's ``outcome`` and ``reason``) are listed
as incidental.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ibkr_assets.viewer.queries import LineageQueries

INCIDENTAL = frozenset({"cache_hit", "cost_usd", "latency_ms", "attempts", "mlflow_run_id",
                        "mlflow_run_ids", "outcome", "input_tokens", "output_tokens",
                        "fetched_once_for_range", "latest_uri"})  # fmt: skip
CATEGORY = {"market_data": "data", "market_data_quality": "quality", "indicators": "indicators",
            "daily_chart": "charts", "weekly_chart": "charts", "llm_analysis": "analysis",
            "trading_signal": "signal", "order": "order",
            "portfolio_snapshot": "portfolio"}  # fmt: skip
# What this execution did with a decision already recorded ("already decided: ..."); the
# decision itself is in the order object, whose sha256 is compared.
INCIDENTAL_BY_STEP = {"order": frozenset({"output.reason"})}
MAX_ROWS = 50_000


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1]}}`` -> ``{"a.b[0]": 1}``; empty containers stay as values."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out |= flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, v in enumerate(value):
            out |= flatten(v, f"{prefix}[{i}]")
        return out
    return {prefix: value}


def facets(row: Mapping[str, Any], llm: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The comparable values of one step's row (and its LLM artifact)."""
    out = row.get("output_data") or {}
    ref = out.get("object") if isinstance(out.get("object"), Mapping) else {}
    values: dict[str, Any] = {
        "status": row.get("status"), "error": row.get("error"),
        "code_version": row.get("code_version"), "object.sha256": ref.get("sha256"),
    }  # fmt: skip
    for path, v in flatten({k: v for k, v in out.items() if k != "object"}).items():
        values[f"output.{path}"] = v
    if llm is not None:
        values |= {"prompt": llm.get("prompt"), "response": llm.get("response"),
                   "model": llm.get("model_name")}  # fmt: skip
    return values


def _incidental(path: str, step_name: str | None = None) -> bool:
    if path in INCIDENTAL_BY_STEP.get(step_name or "", ()):
        return True
    leaf = path.rsplit(".", 1)[-1].split("[", 1)[0]
    return leaf in INCIDENTAL or path.startswith("output.mlflow_run_ids")


def diff_steps(
    a: Mapping[str, Any], b: Mapping[str, Any],
    llm_a: Mapping[str, Any] | None = None, llm_b: Mapping[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The differences between two rows of the same step and partition."""
    fa, fb = facets(a, llm_a), facets(b, llm_b)
    changes, incidental = [], []
    for path in sorted(set(fa) | set(fb)):
        va, vb = fa.get(path), fb.get(path)
        if va != vb:
            (incidental if _incidental(path, a.get("step_name")) else changes).append(
                {"field": path, "a": va, "b": vb}
            )
    return {"identical": not changes, "sha256_equal": fa["object.sha256"] == fb["object.sha256"],
            "changes": changes, "incidental": incidental}  # fmt: skip


def compare_executions(
    lineage: LineageQueries,
    a: str,
    b: str,
    *,
    partition_key: str | None = None,
    strategy_id: str | None = None,
) -> dict[str, Any]:
    """Step-by-step differences between executions ``a`` and ``b`` (optionally one partition)."""
    rows_a = _all_rows(lineage, a, partition_key, strategy_id)
    rows_b = _all_rows(lineage, b, partition_key, strategy_id)
    llm_a, llm_b = _llm_artifacts(lineage, a), _llm_artifacts(lineage, b)
    steps, only_a, only_b = [], [], []
    for key in sorted(
        set(rows_a) | set(rows_b), key=lambda k: (k[2], _number(rows_a, rows_b, k), k)
    ):
        ra, rb = rows_a.get(key), rows_b.get(key)
        where = {"strategy_id": key[0], "step_name": key[1], "partition_key": key[2]}
        if ra is None or rb is None:
            (only_b if ra is None else only_a).append({**where, "row_id": (ra or rb)["id"]})
            continue
        d = diff_steps(ra, rb, llm_a.get(key), llm_b.get(key))
        steps.append({**where, "category": CATEGORY.get(key[1], key[1]),
                      "row_a": ra["id"], "row_b": rb["id"], **d})  # fmt: skip
    differing = [s for s in steps if not s["identical"]]
    categories = sorted({s["category"] for s in differing})
    return {
        "a": a, "b": b, "partition_key": partition_key, "strategy_id": strategy_id,
        "identical": not differing and not only_a and not only_b,
        "summary": {"compared": len(steps), "differing": len(differing),
                    "only_in_a": len(only_a), "only_in_b": len(only_b),
                    "categories": categories},
        "steps": steps, "only_in_a": only_a, "only_in_b": only_b,
    }  # fmt: skip


Key = tuple[str, str, str]


def _all_rows(
    lineage: LineageQueries, execution_id: str, partition_key: str | None, strategy_id: str | None
) -> dict[Key, dict[str, Any]]:
    rows: dict[Key, dict[str, Any]] = {}
    cursor = None
    while len(rows) < MAX_ROWS:
        page = lineage.execution_rows(execution_id, limit=1000, cursor=cursor,
                                      partition_key=partition_key, strategy_id=strategy_id)  # fmt: skip
        for r in page.items:
            rows[(r["strategy_id"], r["step_name"], r["partition_key"])] = r
        if page.next_cursor is None:
            break
        cursor = int(page.next_cursor)
    return rows


def _llm_artifacts(lineage: LineageQueries, execution_id: str) -> dict[Key, dict[str, Any]]:
    return {(a["strategy_id"], a["step_name"], a["partition_key"]): a
            for a in lineage.execution_artifacts(execution_id, "llm")}  # fmt: skip


def _number(rows_a: dict, rows_b: dict, key: Key) -> int:
    row = rows_a.get(key) or rows_b.get(key)
    return row["step_number"]
