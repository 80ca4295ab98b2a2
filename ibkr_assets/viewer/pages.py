"""The viewer's HTML pages (Jinja2, autoescaped), over the same ``ViewerContext`` as the API.

``/`` strategies overview, ``/lineage`` an execution step by step, ``/artifacts`` grouped by
execution and ``/artifacts/{id}``, ``/decisions/{strategy}/{date}/{symbol}`` the decision trace,
``/compare?a=&b=`` two executions, ``/portfolio/{strategy}`` equity, drawdown, trades and
statistics, ``/docs`` the API described without a CDN. Every stored text is untrusted: the
templates escape everything (no ``|safe`` on data), pages carry a Content-Security-Policy that
allows only this server's own script, styles and images, and values pass through ``redact``.

Longer than most modules: one short route per page over the same context and page helpers.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ibkr_assets.domain.orders import order_ref
from ibkr_assets.viewer.auth import is_page
from ibkr_assets.viewer.compare import compare_executions
from ibkr_assets.viewer.context import ViewerContext
from ibkr_assets.viewer.database import ViewerDatabaseError
from ibkr_assets.viewer.decisions import NotFound, decision_trace, object_ref
from ibkr_assets.viewer.links import RedactedJSONResponse, redact
from ibkr_assets.viewer.overview import portfolio_view, strategies_overview
from ibkr_assets.viewer.rows import parse_cursor
from ibkr_assets.viewer.svg import equity_and_drawdown

HERE = Path(__file__).parent
TEMPLATES, STATIC = HERE / "templates", HERE / "static"
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")  # fmt: skip
MAX_ROWS = 1000  # lineage cards on one page (filter by partition for more)
ARTIFACTS_PAGE = 200
TYPES = ("market_data", "chart", "llm", "signal", "order", "portfolio", "validation")
STEP_TITLES = {
    "market_data": "Market data", "market_data_quality": "Data quality", "indicators": "Indicators",
    "daily_chart": "Daily chart", "weekly_chart": "Weekly chart", "llm_analysis": "Analysis",
    "trading_signal": "Signal", "order": "Order", "portfolio_snapshot": "Portfolio",
}  # fmt: skip


# -- formatting ---------------------------------------------------------------------------


def _num(value: Any, digits: int = 2) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:,.{digits}f}"


def _pct(value: Any, digits: int = 2, ratio: bool = True) -> str:
    if value is None:
        return "-"
    try:
        return f"{float(value) * (100 if ratio else 1):,.{digits}f}%"
    except (TypeError, ValueError):
        return str(value)


def _duration(ms: Any) -> str:
    if ms is None:
        return "-"
    ms = float(ms)
    return f"{ms:,.0f} ms" if ms < 10_000 else f"{ms / 1000:,.1f} s"


def _when(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return "-" if value is None else str(value)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=False)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, dt.date))


def _scalars(data: Any, limit: int = 8) -> list[tuple[str, Any]]:
    """A step's input or output at a glance: its first simple fields."""
    if not isinstance(data, Mapping):
        return []
    out = [(k, v) for k, v in data.items() if k != "object" and _scalar(v) and v != ""]
    return out[:limit]


def _status_class(status: Any) -> str:
    s = str(status or "").lower()
    if s in ("success", "ok", "filled", "placed", "passed", "true", "existing"):
        return "ok"
    if s in ("error", "failed", "failure", "rejected", "cancelled", "canceled", "false",
             "inactive"):  # fmt: skip
        return "bad"
    if s in ("blocked", "market_closed", "submitted", "pending_submit", "presubmitted",
             "partially_filled", "none", "skipped"):  # fmt: skip
        return "warn"
    return "neutral"


def _action_class(action: Any) -> str:
    return {"BUY": "buy", "SELL": "sell", "HOLD": "hold"}.get(str(action or "").upper(), "neutral")


def _url(path: str, **params: Any) -> str:
    query = {k: v for k, v in params.items() if v not in (None, "")}
    return path + ("?" + urlencode(query) if query else "")


def environment() -> jinja2.Environment:
    """The templates' environment: autoescape on for every template."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=_num, pct=_pct, duration=_duration, when=_when, pretty=_pretty,
                       scalars=_scalars, status_class=_status_class,
                       action_class=_action_class)  # fmt: skip
    env.globals.update(url=_url, step_titles=STEP_TITLES, _num=_num, _pct=_pct)
    return env


ENV = environment()


def _ctx(request: Request) -> ViewerContext:
    return request.app.state.viewer


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    ctx = _ctx(request)
    page = ENV.get_template(name).render(
        path=request.url.path,
        dagster_run=ctx.links.dagster_run,
        **redact(context),
    )
    return HTMLResponse(page, status_code=status, headers={"Content-Security-Policy": PAGE_CSP})


# -- helpers that shape records for the templates -------------------------------------------


def _partition_parts(partition_key: str | None) -> tuple[str | None, str | None]:
    if partition_key and "|" in partition_key:
        day, symbol = partition_key.split("|", 1)
        return day, symbol
    return partition_key, None


def _trace_link(strategy_id: str, partition_key: str | None, execution_id: str | None = None):
    day, symbol = _partition_parts(partition_key)
    if not symbol or not day:
        return None
    return _url(f"/decisions/{strategy_id}/{day}/{symbol}", execution_id=execution_id)


def _cards(ctx: ViewerContext, rows: list[dict[str, Any]], execution_id: str) -> list[dict]:
    """The execution's rows as step cards grouped by partition, with artifacts, orders, fills."""
    arts: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for a in ctx.lineage.execution_artifacts(execution_id):
        arts.setdefault((a["partition_key"], a["step_name"]), []).append(a)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["strategy_id"], row["partition_key"])
        group = groups.setdefault(key, {"strategy_id": key[0], "partition_key": key[1],
                                        "symbol": row["symbol"], "steps": [], "status": "success",
                                        "trace_url": _trace_link(key[0], key[1], execution_id)})  # fmt: skip
        card = {"row": row, "object": object_ref(row),
                "artifacts": arts.get((row["partition_key"], row["step_name"]), []),
                "llm": None, "broker_orders": [], "fills": []}  # fmt: skip
        if row["step_name"] == "llm_analysis":
            card["llm"] = next((a for a in card["artifacts"] if a["type"] == "llm"), None)
        if row["step_name"] == "order" and row["symbol"] and row["partition_date"]:
            out = row.get("output_data") or {}
            ref = out.get("order_ref") or order_ref(row["strategy_id"], row["symbol"],
                                                    _day(row["partition_date"]))  # fmt: skip
            if out.get("orders") or out.get("outcome") in ("placed", "existing"):
                card["broker_orders"] = ctx.trading.broker_orders(row["strategy_id"], ref)
                card["fills"] = ctx.trading.order_fills(ref)
        if row["status"] != "success" and group["status"] == "success":
            group["status"] = row["status"]
        group["steps"].append(card)
    for group in groups.values():
        group["steps"].sort(key=lambda c: (c["row"]["step_number"], c["row"]["id"]))
    return list(groups.values())


def _day(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _not_found(message: str) -> HTTPException:
    return HTTPException(404, message)


OptText = Annotated[str | None, Query(max_length=255)]


# -- the pages ------------------------------------------------------------------------------


def pages_router() -> APIRouter:
    r = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

    @r.get("/")
    def overview(request: Request):
        ctx = _ctx(request)
        strategies = strategies_overview(ctx)
        for s in strategies:
            s["recent"] = ctx.lineage.recent_executions(s["strategy_id"], limit=5).items
        return render(request, "overview.html", strategies=strategies)

    @r.get("/lineage")
    def lineage(request: Request, strategy_id: OptText = None, execution_id: OptText = None,
                partition_key: OptText = None):  # fmt: skip
        ctx = _ctx(request)
        strategies = ctx.strategy_ids()
        summary = None
        if execution_id:
            found = ctx.lineage.execution_summaries([execution_id])
            if not found:
                raise _not_found(f"unknown execution {execution_id!r}")
            summary = found[0]
            if not strategy_id and summary["strategy_ids"]:
                strategy_id = summary["strategy_ids"][0]
        strategy_id = strategy_id or (strategies[0] if strategies else None)
        if strategy_id and strategy_id not in strategies:
            raise _not_found(f"unknown strategy {strategy_id!r}")
        executions = (ctx.lineage.recent_executions(strategy_id, limit=30).items
                      if strategy_id else [])  # fmt: skip
        if summary is None and executions:
            summary = executions[0]
            execution_id = summary["execution_id"]
        if summary is not None and all(e["execution_id"] != execution_id for e in executions):
            executions = [summary, *executions]
        groups, partitions, truncated = [], [], False
        if execution_id:
            page = ctx.lineage.execution_rows(execution_id, limit=MAX_ROWS,
                                              partition_key=partition_key or None)  # fmt: skip
            truncated = page.next_cursor is not None
            groups = _cards(ctx, page.items, execution_id)
            partitions = sorted({g["partition_key"] for g in groups})
            if partition_key and not groups:
                raise _not_found(f"execution {execution_id!r} has no rows for {partition_key!r}")
        return render(request, "lineage.html", strategies=strategies, strategy_id=strategy_id,
                      executions=executions, execution=summary, execution_id=execution_id,
                      groups=groups, partitions=partitions, partition_key=partition_key,
                      truncated=truncated, max_rows=MAX_ROWS)  # fmt: skip

    @r.get("/artifacts")
    def artifacts(request: Request, type: OptText = None, symbol: OptText = None,
                  strategy_id: OptText = None, execution_id: OptText = None,
                  cursor: OptText = None):  # fmt: skip
        ctx = _ctx(request)
        if type and type not in TYPES:
            raise HTTPException(422, f"type must be one of {', '.join(TYPES)}")
        try:
            after = parse_cursor(cursor)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        page = ctx.lineage.artifacts(type=type or None, symbol=(symbol or "").upper() or None,
                                     strategy_id=strategy_id or None,
                                     execution_id=execution_id or None, limit=ARTIFACTS_PAGE,
                                     cursor=after)  # fmt: skip
        groups: dict[str, dict[str, Any]] = {}
        for a in page.items:
            g = groups.setdefault(a["execution_id"], {
                "execution_id": a["execution_id"], "workflow_id": a["workflow_id"],
                "run_id": a["run_id"], "strategy_id": a["strategy_id"], "artifacts": [],
                "newest": a["created_at"]})  # fmt: skip
            g["artifacts"].append(a)
        filters = {"type": type, "symbol": symbol, "strategy_id": strategy_id,
                   "execution_id": execution_id}  # fmt: skip
        return render(request, "artifacts.html", groups=list(groups.values()), filters=filters,
                      types=TYPES, strategies=ctx.strategy_ids(),
                      next_url=_url("/artifacts", **filters, cursor=page.next_cursor)
                      if page.next_cursor else None, count=len(page.items))  # fmt: skip

    @r.get("/artifacts/{artifact_id}")
    def artifact(request: Request, artifact_id: int):
        ctx = _ctx(request)
        found = ctx.lineage.artifact(artifact_id) if artifact_id > 0 else None
        if found is None:
            raise _not_found(f"no artifact {artifact_id}")
        rows = ctx.lineage.execution_rows(found["execution_id"], limit=1,
                                          strategy_id=found["strategy_id"],
                                          step_name=found["step_name"],
                                          partition_key=found["partition_key"]).items  # fmt: skip
        siblings = [a for a in ctx.lineage.partition_artifacts(
            found["strategy_id"], found["partition_key"], found["execution_id"]) if a["id"] != artifact_id]  # fmt: skip
        return render(request, "artifact.html", a=found, row=rows[0] if rows else None,
                      mlflow=ctx.links.mlflow_info(found.get("mlflow_experiment_id"),
                                                   found.get("mlflow_run_id")),
                      trace_url=_trace_link(found["strategy_id"], found["partition_key"],
                                            found["execution_id"]),
                      siblings=siblings)  # fmt: skip

    @r.get("/decisions/{strategy_id}/{date}/{symbol}")
    def decision(request: Request, strategy_id: str, date: dt.date, symbol: str,
                 execution_id: OptText = None):  # fmt: skip
        ctx = _ctx(request)
        try:
            trace = decision_trace(ctx, strategy_id, date, symbol.upper(), execution_id)
        except NotFound as exc:
            raise _not_found(str(exc)) from None
        steps = {s["step_name"]: s for s in trace["steps"]}
        return render(request, "decision.html", t=trace, steps=steps)

    @r.get("/compare")
    def compare(request: Request, a: OptText = None, b: OptText = None,
                partition_key: OptText = None, strategy_id: OptText = None):  # fmt: skip
        ctx = _ctx(request)
        strategies = ctx.strategy_ids()
        recent = []
        for sid in ([strategy_id] if strategy_id in strategies else strategies)[:5]:
            recent += ctx.lineage.recent_executions(sid, limit=15).items
        result = None
        if a and b:
            if a == b:
                raise HTTPException(422, "a and b are the same execution")
            for name, execution_id in (("a", a), ("b", b)):
                if not ctx.lineage.execution_exists(execution_id):
                    raise _not_found(f"unknown execution {execution_id!r} ({name})")
            result = compare_executions(ctx.lineage, a, b, partition_key=partition_key or None,
                                        strategy_id=strategy_id or None)  # fmt: skip
            summaries = {s["execution_id"]: s for s in ctx.lineage.execution_summaries([a, b])}
            result["summaries"] = summaries
            partitions: dict[str, list[dict[str, Any]]] = {}
            for step in result["steps"]:
                partitions.setdefault(step["partition_key"], []).append(step)
            result["partitions"] = partitions
        return render(request, "compare.html", a=a, b=b, partition_key=partition_key,
                      strategy_id=strategy_id, recent=recent, result=result)  # fmt: skip

    @r.get("/portfolio/{strategy_id}")
    def portfolio(request: Request, strategy_id: str,
                  start: Annotated[dt.date | None, Query(alias="from")] = None,
                  end: Annotated[dt.date | None, Query(alias="to")] = None):  # fmt: skip
        ctx = _ctx(request)
        if start and end and end < start:
            raise HTTPException(422, f"'to' ({end}) is before 'from' ({start})")
        if strategy_id not in ctx.strategy_ids():
            raise _not_found(f"unknown strategy {strategy_id!r}")
        view = portfolio_view(ctx, strategy_id, start, end)
        equity_chart, drawdown_chart = equity_and_drawdown(view["snapshots"], view["statistics"])
        latest = view["snapshots"][-1] if view["snapshots"] else None
        return render(request, "portfolio.html", v=view, latest=latest,
                      equity_chart=equity_chart, drawdown_chart=drawdown_chart,
                      open_positions=ctx.trading.open_positions(strategy_id))  # fmt: skip

    @r.get("/docs")
    def docs(request: Request):
        spec = request.app.openapi()
        endpoints = []
        for path, methods in spec.get("paths", {}).items():
            for method, op in methods.items():
                params = [{"name": p.get("name"), "in": p.get("in"),
                           "required": p.get("required", False),
                           "description": p.get("description") or ""}
                          for p in op.get("parameters", [])]  # fmt: skip
                endpoints.append({"method": method.upper(), "path": path,
                                  "summary": op.get("summary", ""),
                                  "tag": (op.get("tags") or [""])[0], "params": params})  # fmt: skip
        return render(request, "docs.html", endpoints=endpoints, title=spec["info"]["title"],
                      version=spec["info"]["version"],
                      description=spec["info"].get("description", ""))  # fmt: skip

    @r.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return RedirectResponse("/static/favicon.svg", status_code=308)

    return r


def _is_page(request: Request) -> bool:
    return is_page(request.url.path)


def install(app: FastAPI) -> None:
    """Add the pages, the static files and HTML error pages (the API keeps its JSON errors)."""
    app.include_router(pages_router())
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if not _is_page(request):
            return await http_exception_handler(request, exc)
        return render(request, "error.html", exc.status_code, code=exc.status_code,
                      message=str(exc.detail))  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        if not _is_page(request):
            return await request_validation_exception_handler(request, exc)
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
                    for e in exc.errors()]  # fmt: skip
        return render(request, "error.html", 422, code=422,
                      message="; ".join(problems) or "bad request")  # fmt: skip

    @app.exception_handler(ViewerDatabaseError)
    async def database_down(request: Request, exc: ViewerDatabaseError):
        if not _is_page(request):
            return RedactedJSONResponse({"detail": str(exc)}, status_code=503)
        return render(request, "error.html", 503, code=503, message=str(exc))
