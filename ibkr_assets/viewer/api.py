"""The JSON API (FastAPI): lineage, artifacts and their bytes, decision traces, execution diffs,
portfolios and the strategies overview. Read-only; OpenAPI at ``/docs``.

``create_app(settings)`` builds the app; the pages read through the same ``ViewerContext``
(``app.state.viewer``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import Response

from ibkr_assets.settings import Settings
from ibkr_assets.storage.records import ARTIFACT_TYPES
from ibkr_assets.viewer import pages
from ibkr_assets.viewer.auth import access_guard
from ibkr_assets.viewer.compare import compare_executions
from ibkr_assets.viewer.context import ViewerContext
from ibkr_assets.viewer.decisions import NotFound, artifact_ref, decision_trace, step_entry
from ibkr_assets.viewer.links import RedactedJSONResponse, public_base
from ibkr_assets.viewer.objects import ObjectBytes, ObjectReader, ObjectUnavailable
from ibkr_assets.viewer.overview import portfolio_view, strategies_overview
from ibkr_assets.viewer.rows import MAX_LIMIT, parse_cursor

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "X-Frame-Options": "DENY"}  # fmt: skip


StrategyId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_\-]{0,99}$", description="strategy id")]
Symbol = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,19}$", description="ticker")]
Ident = Annotated[str, Path(min_length=1, max_length=255)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=18, description="next_cursor of the last page")]
OptText = Annotated[str | None, Query(max_length=255)]
ArtifactType = Literal["market_data", "chart", "llm", "signal", "order", "portfolio", "validation"]
assert set(ArtifactType.__args__) == set(ARTIFACT_TYPES)  # type: ignore[attr-defined]


def _cursor(cursor: str | None) -> int | None:
    try:
        return parse_cursor(cursor)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def _ctx(request: Request) -> ViewerContext:
    return request.app.state.viewer


def _known_strategy(ctx: ViewerContext, strategy_id: str) -> None:
    if strategy_id not in ctx.strategy_ids():
        raise HTTPException(404, f"unknown strategy {strategy_id!r} (not in the strategies "
                                 "file and no lineage rows)")  # fmt: skip


def _object_response(obj: ObjectBytes) -> Response:
    name = obj.key.rsplit("/", 1)[-1]
    headers = {**SECURITY_HEADERS, "Content-Security-Policy": "default-src 'none'; sandbox",
               "Cache-Control": "private, max-age=3600", "ETag": f'"{obj.sha256}"',
               "X-Object-SHA256": obj.sha256,
               "Content-Disposition": f'inline; filename="{name}"'}  # fmt: skip
    return Response(obj.data, media_type=obj.content_type, headers=headers)


def _read_object(ctx: ViewerContext, uri: str | None, sha256: str | None) -> Response:
    try:
        return _object_response(ctx.objects.read(uri, sha256))
    except ObjectUnavailable as exc:
        raise HTTPException(exc.status, str(exc)) from None


def lineage_router() -> APIRouter:
    r = APIRouter(prefix="/api/lineage", tags=["lineage"])

    @r.get("/workflows/{workflow_id}", summary="A workflow's (Dagster job's) executions")
    def workflow(request: Request, workflow_id: Ident, limit: Limit = 50, cursor: Cursor = None):
        page = _ctx(request).lineage.workflow_executions(workflow_id, limit=limit,
                                                         cursor=_cursor(cursor))  # fmt: skip
        if not page.items and cursor is None:
            raise HTTPException(404, f"no lineage rows for workflow {workflow_id!r}")
        return {"workflow_id": workflow_id, **page.to_json()}

    @r.get("/executions/{execution_id}", summary="An execution's lineage rows, in order")
    def execution(request: Request, execution_id: Ident, limit: Limit = 500,
                  cursor: Cursor = None, strategy_id: OptText = None, step_name: OptText = None,
                  partition_key: OptText = None):  # fmt: skip
        ctx = _ctx(request)
        summaries = ctx.lineage.execution_summaries([execution_id])
        if not summaries:
            raise HTTPException(404, f"unknown execution {execution_id!r}")
        page = ctx.lineage.execution_rows(execution_id, limit=limit, cursor=_cursor(cursor),
                                          strategy_id=strategy_id, step_name=step_name,
                                          partition_key=partition_key)  # fmt: skip
        return {"execution": summaries[0], **page.to_json(),
                "items": [_with_links(ctx, row) for row in page.items]}  # fmt: skip

    @r.get("/execution/{execution_id}/step/{step_name}", summary="One step of an execution")
    def execution_step(request: Request, execution_id: Ident, step_name: Ident,
                       partition_key: OptText = None, limit: Limit = 500, cursor: Cursor = None):  # fmt: skip
        ctx = _ctx(request)
        page = ctx.lineage.execution_rows(execution_id, limit=limit, cursor=_cursor(cursor),
                                          step_name=step_name, partition_key=partition_key)  # fmt: skip
        if not page.items and cursor is None:
            if not ctx.lineage.execution_exists(execution_id):
                raise HTTPException(404, f"unknown execution {execution_id!r}")
            raise HTTPException(404, f"execution {execution_id!r} has no rows of step "
                                     f"{step_name!r}" + (f" for {partition_key!r}" if partition_key else ""))  # fmt: skip
        return {"execution_id": execution_id, "step_name": step_name, **page.to_json(),
                "items": [_with_links(ctx, row) for row in page.items]}  # fmt: skip

    @r.get("/steps/{step_name}", summary="A step's rows across executions, newest first")
    def steps(request: Request, step_name: Ident, strategy_id: OptText = None,
              limit: Limit = 50, cursor: Cursor = None):  # fmt: skip
        ctx = _ctx(request)
        page = ctx.lineage.step_rows(step_name, limit=limit, cursor=_cursor(cursor),
                                     strategy_id=strategy_id)  # fmt: skip
        if not page.items and cursor is None:
            raise HTTPException(404, f"no lineage rows for step {step_name!r}")
        return {"step_name": step_name, **page.to_json(),
                "items": [_with_links(ctx, row) for row in page.items]}  # fmt: skip

    @r.get("/step/{step_name}/statistics", summary="Success rate, mean/p95 duration, errors")
    def statistics(request: Request, step_name: Ident,
                   days: Annotated[int, Query(ge=1, le=3660)] = 30, strategy_id: OptText = None):  # fmt: skip
        ctx = _ctx(request)
        if not ctx.lineage.step_exists(step_name, strategy_id):
            raise HTTPException(404, f"no lineage rows for step {step_name!r}")
        return ctx.lineage.step_statistics(step_name, days=days, strategy_id=strategy_id)

    @r.get("/strategy/{strategy_id}/recent", summary="A strategy's latest executions")
    def recent(request: Request, strategy_id: StrategyId,
               limit: Annotated[int, Query(ge=1, le=200)] = 10, cursor: Cursor = None):  # fmt: skip
        ctx = _ctx(request)
        _known_strategy(ctx, strategy_id)
        page = ctx.lineage.recent_executions(strategy_id, limit=limit, cursor=_cursor(cursor))
        return {"strategy_id": strategy_id, **page.to_json()}

    @r.get("/rows/{row_id}", summary="One lineage row")
    def row(request: Request, row_id: Annotated[int, Path(ge=1)]):
        ctx = _ctx(request)
        found = ctx.lineage.lineage_row(row_id)
        if found is None:
            raise HTTPException(404, f"no lineage row {row_id}")
        return _with_links(ctx, found)

    @r.get("/rows/{row_id}/object", summary="The verified bytes of a lineage row's object",
           response_class=Response)  # fmt: skip
    def row_object(request: Request, row_id: Annotated[int, Path(ge=1)]):
        ctx = _ctx(request)
        found = ctx.lineage.lineage_row(row_id)
        if found is None:
            raise HTTPException(404, f"no lineage row {row_id}")
        ref = (found.get("output_data") or {}).get("object") or {}
        return _read_object(ctx, ref.get("uri"), ref.get("sha256"))

    return r


def _with_links(ctx: ViewerContext, row: dict[str, Any]) -> dict[str, Any]:
    entry = step_entry(ctx, row)
    return {**row, "dagster_run_url": entry["dagster_run_url"], "object": entry["object"]}


def artifacts_router() -> APIRouter:
    r = APIRouter(prefix="/api/artifacts", tags=["artifacts"])

    @r.get("", summary="Artifacts, newest first, filtered")
    def artifacts(request: Request, type: ArtifactType | None = None, symbol: OptText = None,
                  strategy_id: OptText = None, workflow_id: OptText = None,
                  execution_id: OptText = None, limit: Limit = 50, cursor: Cursor = None):  # fmt: skip
        ctx = _ctx(request)
        page = ctx.lineage.artifacts(type=type, symbol=symbol, strategy_id=strategy_id,
                                     workflow_id=workflow_id, execution_id=execution_id,
                                     limit=limit, cursor=_cursor(cursor))  # fmt: skip
        return {**page.to_json(), "items": [_artifact(ctx, a) for a in page.items]}

    @r.get("/lineage/{execution_id}", summary="Every artifact of one execution")
    def by_execution(request: Request, execution_id: Ident):
        ctx = _ctx(request)
        found = ctx.lineage.execution_artifacts(execution_id)
        if not found:
            raise HTTPException(404, f"no artifacts for execution {execution_id!r}")
        return {"execution_id": execution_id, "items": [_artifact(ctx, a) for a in found]}

    @r.get("/{artifact_id}", summary="One artifact with its workflow context")
    def artifact(request: Request, artifact_id: Annotated[int, Path(ge=1)]):
        ctx = _ctx(request)
        found = ctx.lineage.artifact(artifact_id)
        if found is None:
            raise HTTPException(404, f"no artifact {artifact_id}")
        rows = ctx.lineage.execution_rows(found["execution_id"], limit=50,
                                          strategy_id=found["strategy_id"],
                                          step_name=found["step_name"],
                                          partition_key=found["partition_key"]).items  # fmt: skip
        return {**_artifact(ctx, found), "lineage_row": _with_links(ctx, rows[0]) if rows else None}

    @r.get("/{artifact_id}/content", summary="The artifact's stored bytes, sha256-verified",
           response_class=Response)  # fmt: skip
    def content(request: Request, artifact_id: Annotated[int, Path(ge=1)]):
        ctx = _ctx(request)
        found = ctx.lineage.artifact(artifact_id)
        if found is None:
            raise HTTPException(404, f"no artifact {artifact_id}")
        return _read_object(ctx, found.get("uri"), found.get("sha256"))

    return r


def _artifact(ctx: ViewerContext, art: dict[str, Any]) -> dict[str, Any]:
    ref = artifact_ref(ctx, art)
    return {**art, "content_url": ref["content_url"], "mlflow": ref["mlflow"],
            "dagster_run_url": ctx.links.dagster_run(art["run_id"])}  # fmt: skip


def trading_router() -> APIRouter:
    r = APIRouter(prefix="/api", tags=["decisions"])

    @r.get("/decisions/{strategy_id}/{date}/{symbol}", summary="Why an order was (not) placed")
    def decision(request: Request, strategy_id: StrategyId, date: dt.date, symbol: Symbol,
                 execution_id: OptText = None):  # fmt: skip
        try:
            return decision_trace(_ctx(request), strategy_id, date, symbol.upper(), execution_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @r.get("/compare", summary="What differs between two executions")
    def compare(request: Request,
                a: Annotated[str, Query(min_length=1, max_length=255)],
                b: Annotated[str, Query(min_length=1, max_length=255)],
                partition_key: OptText = None, strategy_id: OptText = None):  # fmt: skip
        ctx = _ctx(request)
        if a == b:
            raise HTTPException(422, "a and b are the same execution")
        for name, execution_id in (("a", a), ("b", b)):
            if not ctx.lineage.execution_exists(execution_id):
                raise HTTPException(404, f"unknown execution {execution_id!r} ({name})")
        result = compare_executions(ctx.lineage, a, b, partition_key=partition_key,
                                    strategy_id=strategy_id)  # fmt: skip
        if (
            partition_key
            and not result["steps"]
            and not result["only_in_a"]
            and not result["only_in_b"]
        ):
            raise HTTPException(404, f"neither execution has rows for {partition_key!r}")
        return result

    @r.get("/portfolio/{strategy_id}", summary="Snapshots, fills and performance statistics")
    def portfolio(request: Request, strategy_id: StrategyId,
                  start: Annotated[dt.date | None, Query(alias="from")] = None,
                  end: Annotated[dt.date | None, Query(alias="to")] = None):  # fmt: skip
        ctx = _ctx(request)
        if start and end and end < start:
            raise HTTPException(422, f"'to' ({end}) is before 'from' ({start})")
        _known_strategy(ctx, strategy_id)
        return portfolio_view(ctx, strategy_id, start, end)

    @r.get("/strategies", summary="Every strategy: last execution, status, equity, failures")
    def strategies(request: Request):
        return {"strategies": strategies_overview(_ctx(request))}

    @r.get("/health", summary="The viewer answers and can read its database")
    def health(request: Request):
        ctx = _ctx(request)
        return {"ok": True, "database": ctx.db.dialect, "object_store": ctx.settings.object_store,
                "read_only": True}  # fmt: skip

    return r


def create_app(settings: Settings, *, objects: ObjectReader | None = None) -> FastAPI:
    """The viewer's app for ``settings`` (``objects``: a reader over another store, for tests)."""
    context = ViewerContext.from_settings(settings, objects)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        context.close()

    app = FastAPI(
        title="ibkr_assets viewer",
        version=_version(),
        lifespan=lifespan,
        description="Read-only lineage, artifacts, decision traces, execution diffs and "
        "portfolios of the ibkr_assets asset graph.",
        default_response_class=RedactedJSONResponse,
        docs_url=None,  # /docs is a page of the viewer's own (Swagger UI would load from a CDN)
        redoc_url=None,
    )
    app.state.viewer = context
    token = settings.viewer_token.get_secret_value() if settings.viewer_token else None
    app.middleware("http")(access_guard(token or None, _viewer_host(settings.viewer_url)))

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    for router in (lineage_router(), artifacts_router(), trading_router()):
        app.include_router(router)
    pages.install(app)  # the HTML pages, /static, /docs, and error pages (JSON under /api)
    return app


def _viewer_host(viewer_url: str | None) -> frozenset[str]:
    """The host name of ``IBKR_ASSETS_VIEWER_URL``: requests addressed to it are the viewer's."""
    base = public_base(viewer_url)
    host = urlsplit(base).hostname if base else None
    return frozenset({host.lower()}) if host else frozenset()


def _version() -> str:
    try:
        return metadata.version("ibkr_assets")
    except metadata.PackageNotFoundError:
        return "0"
