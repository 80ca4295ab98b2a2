"""Read-only queries over ``workflow_lineage`` and ``artifacts`` (SQLAlchemy Core).

Every value is a bound parameter; lists that grow are keyset pages on ``id``. The indexes
each query relies on are named next to it (``sql/001_lineage.sql`` creates them).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ibkr_assets.storage.tables import artifacts, workflow_lineage
from ibkr_assets.viewer.database import ReadOnlyDatabase
from ibkr_assets.viewer.rows import Page, page_of, plain, plain_rows

L, A = workflow_lineage, artifacts


class LineageQueries:
    """Lineage rows, executions, step statistics and artifacts."""

    def __init__(self, db: ReadOnlyDatabase) -> None:
        self.db = db

    def _rows(self, query: sa.Select) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            return plain_rows(conn.execute(query).mappings())

    # -- lineage rows --------------------------------------------------------------------

    def lineage_row(self, row_id: int) -> dict[str, Any] | None:
        """One lineage row by id (primary key)."""
        if not self.db.has(L):
            return None
        rows = self._rows(sa.select(L).where(L.c.id == row_id))
        return rows[0] if rows else None

    def execution_rows(
        self,
        execution_id: str,
        *,
        limit: int = 500,
        cursor: int | None = None,
        strategy_id: str | None = None,
        step_name: str | None = None,
        partition_key: str | None = None,
    ) -> Page:
        """An execution's rows in the order they were written (uq_workflow_lineage_step)."""
        if not self.db.has(L):
            return Page([], limit)
        query = sa.select(L).where(L.c.execution_id == execution_id)
        for column, value in (("strategy_id", strategy_id), ("step_name", step_name),
                              ("partition_key", partition_key)):  # fmt: skip
            if value is not None:
                query = query.where(L.c[column] == value)
        if cursor is not None:
            query = query.where(L.c.id > cursor)
        return page_of(self._rows(query.order_by(L.c.id).limit(limit + 1)), limit)

    def step_rows(
        self,
        step_name: str,
        *,
        limit: int = 50,
        cursor: int | None = None,
        strategy_id: str | None = None,
    ) -> Page:
        """Rows of one step (asset) across executions, newest first (the primary key, backwards)."""
        if not self.db.has(L):
            return Page([], limit)
        query = sa.select(L).where(L.c.step_name == step_name)
        if strategy_id is not None:
            query = query.where(L.c.strategy_id == strategy_id)
        if cursor is not None:
            query = query.where(L.c.id < cursor)
        return page_of(self._rows(query.order_by(L.c.id.desc()).limit(limit + 1)), limit)

    def partition_rows(self, strategy_id: str, partition_key: str) -> list[dict[str, Any]]:
        """Every execution's rows of one partition, oldest first (ix_workflow_lineage_partition_key)."""
        if not self.db.has(L):
            return []
        query = (
            sa.select(L)
            .where(L.c.partition_key == partition_key, L.c.strategy_id == strategy_id)
            .order_by(L.c.id)
        )
        return self._rows(query)

    def step_exists(self, step_name: str, strategy_id: str | None = None) -> bool:
        """Whether a step (of a strategy) has any row: its newest, found by one descent of
        ix_workflow_lineage_step_stats (however rare the step, or if it has none)."""
        if not self.db.has(L):
            return False
        query = sa.select(L.c.recorded_at).where(L.c.step_name == step_name)
        if strategy_id is not None:
            query = query.where(L.c.strategy_id == strategy_id)
        query = query.order_by(L.c.step_name, L.c.recorded_at.desc()).limit(1)
        with self.db.connect() as conn:
            return conn.execute(query).first() is not None

    def execution_exists(self, execution_id: str) -> bool:
        if not self.db.has(L):
            return False
        query = sa.select(L.c.id).where(L.c.execution_id == execution_id).limit(1)
        with self.db.connect() as conn:
            return conn.execute(query).first() is not None

    # -- executions ----------------------------------------------------------------------

    def recent_executions(
        self, strategy_id: str, *, limit: int = 10, cursor: int | None = None
    ) -> Page:
        """A strategy's executions, most recently written first, each summarised
        (ix_workflow_lineage_strategy_execution, then uq_workflow_lineage_step)."""
        return self._executions(L.c.strategy_id == strategy_id, limit, cursor, strategy_id)

    def workflow_executions(
        self, workflow_id: str, *, limit: int = 50, cursor: int | None = None
    ) -> Page:
        """A workflow's (Dagster job's) executions, newest first (ix_workflow_lineage_workflow_execution)."""
        return self._executions(L.c.workflow_id == workflow_id, limit, cursor, None)

    def _executions(
        self, where: sa.ColumnElement, limit: int, cursor: int | None, strategy_id: str | None
    ) -> Page:
        if not self.db.has(L):
            return Page([], limit)
        last = sa.func.max(L.c.id).label("last_id")
        query = sa.select(L.c.execution_id, last).where(where).group_by(L.c.execution_id)
        if cursor is not None:
            query = query.having(sa.func.max(L.c.id) < cursor)
        with self.db.connect() as conn:
            found = conn.execute(query.order_by(last.desc()).limit(limit + 1)).all()
        page = page_of([{"execution_id": e, "last_id": i} for e, i in found], limit, "last_id")
        summaries = self.execution_summaries([p["execution_id"] for p in page.items], strategy_id)
        by_id = {s["execution_id"]: s for s in summaries}
        items = [by_id[p["execution_id"]] for p in page.items if p["execution_id"] in by_id]
        return Page(items, limit, page.next_cursor)

    def execution_summaries(
        self, execution_ids: Sequence[str], strategy_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Per execution: jobs, runs, strategies, rows by status, dates, symbols, when."""
        if not execution_ids or not self.db.has(L):
            return []
        query = (
            sa.select(
                L.c.execution_id, L.c.workflow_id, L.c.strategy_id, L.c.run_id, L.c.status,
                L.c.symbol, sa.func.count().label("rows"),
                sa.func.min(L.c.recorded_at).label("first"),
                sa.func.max(sa.func.coalesce(L.c.updated_at, L.c.recorded_at)).label("last"),
                sa.func.min(L.c.partition_date).label("first_date"),
                sa.func.max(L.c.partition_date).label("last_date"),
                sa.func.sum(L.c.duration_ms).label("duration_ms"),
            )
            .where(L.c.execution_id.in_(list(execution_ids)))
            .group_by(L.c.execution_id, L.c.workflow_id, L.c.strategy_id, L.c.run_id,
                      L.c.status, L.c.symbol)
        )  # fmt: skip
        if strategy_id is not None:
            query = query.where(L.c.strategy_id == strategy_id)
        summaries: dict[str, dict[str, Any]] = {}
        for row in self._rows(query):
            s = summaries.setdefault(row["execution_id"], _empty_summary(row["execution_id"]))
            s["rows"] += row["rows"]
            s["by_status"][row["status"]] = s["by_status"].get(row["status"], 0) + row["rows"]
            s["duration_ms"] += row["duration_ms"] or 0
            for name, value in (("workflow_ids", row["workflow_id"]), ("run_ids", row["run_id"]),
                                ("strategy_ids", row["strategy_id"]), ("symbols", row["symbol"])):  # fmt: skip
                if value and value not in s[name]:
                    s[name].append(value)
            s["first_recorded_at"] = _min(s["first_recorded_at"], _utc(row["first"]))
            s["last_recorded_at"] = _max(s["last_recorded_at"], _utc(row["last"]))
            s["first_date"] = _min(s["first_date"], _date(row["first_date"]))
            s["last_date"] = _max(s["last_date"], _date(row["last_date"]))
        for s in summaries.values():
            for name in ("workflow_ids", "run_ids", "strategy_ids", "symbols"):
                s[name].sort()
            s["status"] = overall_status(s["by_status"])
        return [summaries[e] for e in execution_ids if e in summaries]

    def strategy_ids(self) -> list[str]:
        """Every strategy with a lineage row: a skip scan of ix_workflow_lineage_strategy_execution,
        one index probe per strategy (the next one after the last found) instead of a read of
        every row, which a ``DISTINCT`` is on both databases."""
        if not self.db.has(L):
            return []
        later = L.alias("later")
        found = (
            sa.select(sa.func.min(L.c.strategy_id).label("strategy_id"))
            .where(L.c.strategy_id > "")
            .cte("found", recursive=True)
        )
        after = sa.select(sa.func.min(later.c.strategy_id)).where(
            later.c.strategy_id > found.c.strategy_id
        )
        found = found.union_all(
            sa.select(after.scalar_subquery()).where(found.c.strategy_id.is_not(None))
        )
        query = sa.select(found.c.strategy_id).where(found.c.strategy_id.is_not(None))
        with self.db.connect() as conn:
            return sorted(conn.execute(query).scalars())

    # -- statistics ----------------------------------------------------------------------

    def step_statistics(
        self,
        step_name: str,
        *,
        days: int = 30,
        strategy_id: str | None = None,
        now: dt.datetime | None = None,
        top_errors: int = 5,
    ) -> dict[str, Any]:
        """Rows of a step recorded in the last ``days``: counts by status, success rate, mean
        and p95 (nearest rank) duration (ix_workflow_lineage_step_stats, which holds every column
        these read), the most common errors (ix_workflow_lineage_errors, the error rows only)."""
        now = now or dt.datetime.now(dt.timezone.utc)
        since = now - dt.timedelta(days=days)
        stats: dict[str, Any] = {
            "step_name": step_name, "days": days, "since": since, "strategy_id": strategy_id,
            "rows": 0, "by_status": {}, "success_rate": None, "error_rate": None,
            "mean_duration_ms": None, "p95_duration_ms": None, "max_duration_ms": None,
            "common_errors": [],
        }  # fmt: skip
        if not self.db.has(L):
            return stats
        bound = since if self.db.dialect == "postgresql" else since.replace(tzinfo=None)
        where = [L.c.step_name == step_name, L.c.recorded_at >= bound]
        if strategy_id is not None:
            where.append(L.c.strategy_id == strategy_id)
        timed = [*where, L.c.duration_ms.is_not(None)]
        with self.db.connect() as conn:
            counts = dict(
                conn.execute(
                    sa.select(L.c.status, sa.func.count()).where(*where).group_by(L.c.status)
                ).all()
            )
            n, mean, longest = conn.execute(
                sa.select(sa.func.count(), sa.func.avg(L.c.duration_ms),
                          sa.func.max(L.c.duration_ms)).where(*timed)
            ).one()  # fmt: skip
            p95 = None
            if n:
                rank = math.ceil(0.95 * n)  # nearest rank: the same number on both databases
                p95 = conn.execute(
                    sa.select(L.c.duration_ms).where(*timed).order_by(L.c.duration_ms)
                    .offset(rank - 1).limit(1)
                ).scalar_one()  # fmt: skip
            errors = conn.execute(
                sa.select(L.c.error, sa.func.count().label("n"))
                .where(*where, L.c.status == "error")
                .group_by(L.c.error)
                .order_by(sa.text("n DESC"), L.c.error)
                .limit(top_errors)
            ).all()
        total = sum(counts.values())
        stats.update(
            rows=total,
            by_status=counts,
            success_rate=counts.get("success", 0) / total if total else None,
            error_rate=counts.get("error", 0) / total if total else None,
            mean_duration_ms=float(mean) if mean is not None else None,
            p95_duration_ms=p95,
            max_duration_ms=longest,
            common_errors=[{"error": e, "count": c} for e, c in errors],
        )
        return stats

    # -- artifacts -----------------------------------------------------------------------

    def artifact(self, artifact_id: int) -> dict[str, Any] | None:
        """One artifact row by id (primary key)."""
        if not self.db.has(A):
            return None
        rows = self._rows(sa.select(A).where(A.c.id == artifact_id))
        return rows[0] if rows else None

    def artifacts(
        self,
        *,
        type: str | None = None,
        symbol: str | None = None,
        strategy_id: str | None = None,
        workflow_id: str | None = None,
        execution_id: str | None = None,
        limit: int = 50,
        cursor: int | None = None,
    ) -> Page:
        """Artifacts matching every given filter, newest first (ix_artifacts_type_symbol,
        ix_artifacts_strategy_partition, ix_artifacts_workflow_execution, uq_artifacts_key)."""
        if not self.db.has(A):
            return Page([], limit)
        query = sa.select(A)
        for column, value in (("type", type), ("symbol", symbol), ("strategy_id", strategy_id),
                              ("workflow_id", workflow_id), ("execution_id", execution_id)):  # fmt: skip
            if value is not None:
                query = query.where(A.c[column] == value)
        if cursor is not None:
            query = query.where(A.c.id < cursor)
        return page_of(self._rows(query.order_by(A.c.id.desc()).limit(limit + 1)), limit)

    def execution_artifacts(
        self, execution_id: str, type: str | None = None
    ) -> list[dict[str, Any]]:
        """Every artifact (of ``type``) of one execution, in the order written (uq_artifacts_key)."""
        if not self.db.has(A):
            return []
        query = sa.select(A).where(A.c.execution_id == execution_id)
        if type is not None:
            query = query.where(A.c.type == type)
        return self._rows(query.order_by(A.c.id))

    def recent_errors(self, strategy_id: str, limit: int = 5) -> list[dict[str, Any]]:
        """A strategy's newest ``error`` rows (id order, filtered by strategy and status)."""
        if not self.db.has(L):
            return []
        columns = [L.c[n] for n in ("id", "execution_id", "run_id", "step_name",
                                    "partition_key", "error", "recorded_at")]  # fmt: skip
        query = (
            sa.select(*columns)
            .where(L.c.strategy_id == strategy_id, L.c.status == "error")
            .order_by(L.c.id.desc())
            .limit(limit)
        )
        return self._rows(query)

    def partition_artifacts(
        self, strategy_id: str, partition_key: str, execution_id: str | None = None
    ) -> list[dict[str, Any]]:
        """A partition's artifacts, oldest first (ix_artifacts_strategy_partition)."""
        if not self.db.has(A):
            return []
        query = sa.select(A).where(
            A.c.strategy_id == strategy_id, A.c.partition_key == partition_key
        )
        if execution_id is not None:
            query = query.where(A.c.execution_id == execution_id)
        return self._rows(query.order_by(A.c.id))


STATUS_ORDER = ("error", "blocked", "market_closed", "success")


def overall_status(by_status: dict[str, int]) -> str:
    """An execution's status: its worst row's (error > blocked > market_closed > success)."""
    for status in STATUS_ORDER:
        if by_status.get(status):
            return status
    return "empty"


def _empty_summary(execution_id: str) -> dict[str, Any]:
    return {"execution_id": execution_id, "workflow_ids": [], "run_ids": [], "strategy_ids": [],
            "symbols": [], "rows": 0, "by_status": {}, "duration_ms": 0,
            "first_recorded_at": None, "last_recorded_at": None, "first_date": None,
            "last_date": None}  # fmt: skip


def _utc(value: Any) -> Any:
    return plain({"v": value})["v"] if isinstance(value, dt.datetime) else _parse_ts(value)


def _parse_ts(value: Any) -> Any:
    """SQLite's min()/max() of a DATETIME column return its text."""
    if isinstance(value, str):
        return plain({"v": dt.datetime.fromisoformat(value)})["v"]
    return value


def _date(value: Any) -> dt.date | None:
    if isinstance(value, str):
        return dt.date.fromisoformat(value)
    return value


def _min(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _max(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)
