"""How fast the viewer answers on PostgreSQL with 100,000 lineage rows and 50,000 artifacts, and
whether its queries use indexes.

A temporary database on ``IBKR_ASSETS_BENCH_PG_URL`` (default: the local server) is created,
given the project's tables by its own DDL code and filled by ``benchmarks.viewer_data`` (scale
multiplies the counts), then dropped. Each case is requested ``REQUESTS`` times through
FastAPI's TestClient (the whole app in process: routing, the queries, JSON or the page) after a
few warm-up requests, over different ids where the case has them (50 executions, 50 decisions),
and reports the p95 (nearest rank) and the median. Then every SQL statement those requests ran
is planned with ``EXPLAIN (FORMAT JSON)`` with its own parameters: a row per statement, 1 when
the plan reads its tables through an index and scans no table of 1,000 rows or more
sequentially.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from benchmarks import viewer_data

PG_ADMIN_URL = os.environ.get(
    "IBKR_ASSETS_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
ENDPOINT_TARGET_MS, PAGE_TARGET_MS = 50.0, 200.0
REQUESTS, WARMUP = 50, 5
INDEX_NODES = {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}
SEQ_SCAN_ROWS = 1000  # a sequential scan of a smaller table is the planner's right choice


def run(scale: float) -> list[dict]:
    lineage_rows = max(2000, int(100_000 * scale))
    artifact_rows = max(1000, int(50_000 * scale))
    try:
        with _temporary_postgres() as url:
            return _bench(url, lineage_rows, artifact_rows)
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "cannot connect"
        return [_row(f"postgresql unreachable: {reason}", math.nan, "ms",
                     f"p95 <= {ENDPOINT_TARGET_MS:g} ms", False)]  # fmt: skip


# -- what is requested ----------------------------------------------------------------------------


@dataclass
class Case:
    label: str
    paths: list[str]
    target_ms: float
    statements: dict[str, Any] = field(default_factory=dict)  # SQL -> parameters (first seen)


def cases(client: Any, loaded: viewer_data.Loaded, seed: int = 7) -> list[Case]:
    """The requests of each measured case (ids drawn from the loaded records)."""
    rng = random.Random(seed)
    executions = sorted(loaded.executions)
    twenty = [e for e in executions if loaded.executions[e] == 20] or sorted(
        executions, key=lambda e: (abs(loaded.executions[e] - 20), e)
    )[:REQUESTS]
    decisions = rng.sample(loaded.decisions, min(REQUESTS, len(loaded.decisions)))
    strategies = sorted(viewer_data.STRATEGIES)
    steps = [*viewer_data.STEPS, "portfolio_snapshot"]
    symbols = [(s, sym) for s in strategies for sym in viewer_data.STRATEGIES[s]]

    def filtered(i: int) -> str:
        strategy, symbol = symbols[i % len(symbols)]
        return f"/api/artifacts?type=chart&symbol={symbol}&strategy_id={strategy}&limit=50"

    cursor_pages = []
    for i in range(REQUESTS):
        first = client.get(filtered(i)).json()
        cursor_pages.append(f"{filtered(i)}&cursor={first['next_cursor']}")
    return [
        Case("execution endpoint (/api/lineage/executions/{id}, ~20 rows)",
             [f"/api/lineage/executions/{e}" for e in rng.sample(executions, REQUESTS)],
             ENDPOINT_TARGET_MS),
        Case("artifact list, first page, no filter (limit 50)",
             ["/api/artifacts?limit=50"] * REQUESTS, ENDPOINT_TARGET_MS),
        Case("artifact list, first page, type+symbol+strategy filters",
             [filtered(i) for i in range(REQUESTS)], ENDPOINT_TARGET_MS),
        Case("artifact list, cursor page, same filters", cursor_pages, ENDPOINT_TARGET_MS),
        Case("decision trace (/api/decisions/{strategy}/{date}/{symbol})",
             [f"/api/decisions/{s}/{d.isoformat()}/{sym}" for s, d, sym in decisions],
             ENDPOINT_TARGET_MS),
        Case("step statistics (/api/lineage/step/{step}/statistics?days=30)",
             [f"/api/lineage/step/{steps[i % len(steps)]}/statistics?days=30"
              f"&strategy_id={strategies[i % len(strategies)]}" if i % 2 else
              f"/api/lineage/step/{steps[i % len(steps)]}/statistics?days=30"
              for i in range(REQUESTS)], ENDPOINT_TARGET_MS),
        Case(f"/lineage page, a {loaded.executions[twenty[0]]}-row execution",
             [f"/lineage?execution_id={twenty[i % len(twenty)]}" for i in range(REQUESTS)],
             PAGE_TARGET_MS),
    ]  # fmt: skip


# -- statements and their plans -------------------------------------------------------------------


@contextlib.contextmanager
def recording(engine: sa.Engine, into: dict[str, Any]) -> Iterator[None]:
    """Every statement ``engine`` runs on the project's tables (the first parameters of each)."""

    def listener(conn, cursor, statement, parameters, context, executemany):
        if "pg_catalog" not in statement and "information_schema" not in statement:
            into.setdefault(statement, parameters)

    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        yield
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)


@dataclass
class Plan:
    statement: str
    index_scans: list[tuple[str, str]]  # (table, index)
    seq_scans: list[str]  # tables scanned sequentially that hold >= SEQ_SCAN_ROWS rows

    @property
    def uses_index(self) -> bool:
        return bool(self.index_scans) and not self.seq_scans

    def describe(self) -> str:
        scans = sorted({f"{t} via {i}" for t, i in self.index_scans})
        seq = [f"SEQ SCAN {t}" for t in sorted(set(self.seq_scans))]
        return ", ".join(scans + seq) or "no table scan"


def explain(conn: sa.Connection, statement: str, parameters: Any) -> Plan:
    """The planner's choice for ``statement`` with its own bound ``parameters``."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
        tree = cursor.fetchone()[0][0]["Plan"]
    finally:
        cursor.close()
    sizes = dict(conn.exec_driver_sql(
        "SELECT relname, reltuples FROM pg_class WHERE relkind = 'r'"
    ).all())  # fmt: skip
    index_scans, seq_scans = [], []
    for node in _nodes(tree):
        kind, table = node.get("Node Type"), node.get("Relation Name")
        if kind in INDEX_NODES:
            index_scans.append((table or _table_of(conn, node["Index Name"]), node["Index Name"]))
        elif kind == "Seq Scan" and sizes.get(table, 0) >= SEQ_SCAN_ROWS:
            seq_scans.append(table)
    return Plan(statement, index_scans, seq_scans)


def _nodes(node: dict) -> Iterator[dict]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _table_of(conn: sa.Connection, index: str) -> str:
    return conn.execute(
        sa.text("SELECT tablename FROM pg_indexes WHERE indexname = :i"), {"i": index}
    ).scalar_one()


# -- the run --------------------------------------------------------------------------------------


def _bench(url: str, lineage_rows: int, artifact_rows: int) -> list[dict]:
    from fastapi.testclient import TestClient

    from ibkr_assets.settings import Settings
    from ibkr_assets.viewer.api import create_app

    start = time.perf_counter()
    loaded = viewer_data.fill(url, lineage_rows, artifact_rows)
    load_s = time.perf_counter() - start
    rows = [_row(f"generate and COPY {loaded.lineage_rows:,} lineage rows, "
                 f"{loaded.artifact_rows:,} artifacts, {loaded.order_records:,} orders "
                 f"({len(loaded.executions):,} executions)", load_s, "s", "< 60 s",
                 load_s < 60)]  # fmt: skip
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=home, database_url=url)
        app = create_app(settings)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            measured = cases(client, loaded)
            engine = app.state.viewer.db.engine
            for case in measured:
                for path in case.paths[:WARMUP]:
                    _get(client, path)
                times = []
                with recording(engine, case.statements):
                    for path in case.paths:
                        t0 = time.perf_counter()
                        _get(client, path)
                        times.append((time.perf_counter() - t0) * 1000)
                p95 = _p95(times)
                rows.append(_row(f"{case.label} p95", p95, "ms", f"p95 <= {case.target_ms:g} ms",
                                 p95 <= case.target_ms))  # fmt: skip
                rows.append(_row(f"{case.label} median", statistics.median(times), "ms"))
    rows += plan_rows(url, measured)
    return rows


def plan_rows(url: str, measured: list[Case]) -> list[dict]:
    """One row per distinct statement the cases ran: whether its plan uses an index."""
    engine = sa.create_engine(url)
    seen: set[str] = set()
    rows = []
    try:
        with engine.connect() as conn:
            for case in measured:
                for statement, parameters in case.statements.items():
                    if statement in seen:
                        continue
                    seen.add(statement)
                    plan = explain(conn, statement, parameters)
                    label = (
                        f"plan [{case.label.split(' (')[0].split(',')[0]}] {_summary(statement)}"
                    )
                    rows.append(_row(f"{label}: {plan.describe()}", int(plan.uses_index),
                                     "index", "index", plan.uses_index))  # fmt: skip
    finally:
        engine.dispose()
    return rows


def _summary(statement: str) -> str:
    """``table(where columns) group/order`` of a statement, short."""
    text = " ".join(statement.split())
    upper = text.upper()
    frm = upper.find(" FROM ")
    table = text[frm + 6 :].split(" ", 1)[0] if frm >= 0 else "?"
    where = upper.find(" WHERE ")
    cols: list[str] = []
    if where >= 0:
        for part in text[where + 7 :].split(" AND "):
            name = part.strip().split(" ", 1)[0].split(".")[-1].strip("()")
            if name and name.upper() not in ("GROUP", "ORDER", "LIMIT") and name not in cols:
                cols.append(name)
    extra = []
    if upper.startswith("WITH RECURSIVE"):
        extra.append("skip scan")
    for clause in ("GROUP BY", "ORDER BY"):
        at = upper.rfind(f" {clause} ")
        if at >= 0:
            first = text[at + len(clause) + 2 :].split(",")[0].split(" ")[0].split(".")[-1]
            extra.append(f"{clause.split()[0].lower()} {first}")
    return f"{table}({', '.join(cols[:4])})" + (f" {', '.join(extra)}" if extra else "")


def _get(client: Any, path: str) -> None:
    response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text[:300]}")


def _p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def _row(case: str, value: float, unit: str, target: str | None = None,
         ok: bool | None = None) -> dict:  # fmt: skip
    return dict(section="viewer", case=case, value=value, unit=unit, target=target, ok=ok)


@contextlib.contextmanager
def _temporary_postgres() -> Iterator[str]:
    name = f"ibkr_assets_viewer_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            from ibkr_assets.storage.engines import dispose_engines

            dispose_engines()
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()
