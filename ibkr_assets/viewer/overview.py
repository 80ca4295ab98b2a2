"""The strategies overview and a strategy's portfolio (snapshots, trades, statistics)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from ibkr_assets.viewer.context import ViewerContext


def strategies_overview(ctx: ViewerContext, failures: int = 5) -> list[dict[str, Any]]:
    """Per strategy: configuration, last execution and its status, equity, open positions,
    recent failures (failed runs from ``run_failures`` and ``error`` rows) and the last verify."""
    configured = ctx.configured_strategies()
    out = []
    for sid in sorted(set(configured) | set(ctx.lineage.strategy_ids())):
        cfg = configured.get(sid)
        last = ctx.lineage.recent_executions(sid, limit=1).items
        snapshot = ctx.trading.latest_snapshot(sid)
        out.append({
            "strategy_id": sid,
            "configured": cfg is not None,
            "symbols": list(cfg.symbols) if cfg else None,
            "broker": cfg.broker.kind if cfg else None,
            "analyst": cfg.analyst.provider if cfg else None,
            "last_execution": last[0] if last else None,
            "status": last[0]["status"] if last else None,
            "equity": snapshot["equity"] if snapshot else None,
            "snapshot_date": snapshot["snapshot_date"] if snapshot else None,
            "open_positions": ctx.trading.open_positions(sid),
            "recent_run_failures": ctx.trading.recent_failures(sid, failures),
            "recent_error_rows": ctx.lineage.recent_errors(sid, failures),
            "last_verification": ctx.trading.latest_verification(sid),
        })  # fmt: skip
    return out


def portfolio_view(
    ctx: ViewerContext, strategy_id: str, start: dt.date | None, end: dt.date | None
) -> dict[str, Any]:
    """Stored snapshots and fills of the strategy's account in ``start`` .. ``end``, and its
    performance statistics (``statistics`` is None with the reason when they cannot be made)."""
    statistics, problem = performance_statistics(ctx, strategy_id, start, end)
    return {
        "strategy_id": strategy_id, "from": start, "to": end,
        "account": ctx.trading.account(strategy_id),
        "snapshots": ctx.trading.snapshots(strategy_id, start, end),
        "fills": ctx.trading.fills_between(strategy_id, start, end),
        "statistics": statistics, "statistics_error": problem,
    }  # fmt: skip


def performance_statistics(
    ctx: ViewerContext, strategy_id: str, start: dt.date | None, end: dt.date | None
) -> tuple[dict[str, Any] | None, str | None]:
    """The domain's performance report (``storage.performance_inputs.performance_for``)."""
    try:
        from ibkr_assets.storage.performance_inputs import performance_for
    except ImportError:  # a deployment without the performance module
        return None, "performance statistics are not available in this version"
    try:
        report = performance_for(_read_only(ctx.settings.lineage_url), strategy_id, start, end)
    except Exception as exc:
        return None, f"performance statistics failed: {type(exc).__name__}"
    return report.to_dict(), None


def _read_only(url: str) -> str:
    """PostgreSQL: ask the server to refuse writes in the reader's sessions too."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "postgresql" or parsed.get_driver_name() != "psycopg2":
        return url
    options = "-c default_transaction_read_only=on"
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)
