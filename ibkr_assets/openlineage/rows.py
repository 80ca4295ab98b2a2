"""Reading the ``workflow_lineage`` rows the export needs (read only, the shared pooled engine)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.tables import workflow_lineage as t

_CHUNK = 500  # values per IN (...) list


class LineageRows:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._engine = engine_for(database_url)

    def of_execution(self, workflow_id: str, execution_id: str) -> list[dict[str, Any]]:
        """Every row of an execution of a job, in the order the rows were first written."""
        query = (
            sa.select(t)
            .where(t.c.workflow_id == workflow_id, t.c.execution_id == execution_id)
            .order_by(t.c.id)
        )
        with self._engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def upstream(
        self, strategy_id: str, steps: Iterable[str], partitions: Iterable[str]
    ) -> list[dict[str, Any]]:
        """Rows of ``steps`` of a strategy for any of ``partitions``, whatever their execution."""
        steps, keys = sorted(set(steps)), sorted(set(partitions))
        if not steps or not keys:
            return []
        found: list[dict[str, Any]] = []
        with self._engine.connect() as conn:
            for i in range(0, len(keys), _CHUNK):
                query = sa.select(t).where(
                    t.c.strategy_id == strategy_id,
                    t.c.step_name.in_(steps),
                    t.c.partition_key.in_(keys[i : i + _CHUNK]),
                )
                found += [dict(r._mapping) for r in conn.execute(query)]
        return found
