"""A deployment's home and its book, for scenario tests that compare how a range was run.

``Home`` is one deployment: its lineage database (SQLite in its folder unless ``url`` names
another, e.g. PostgreSQL), its objects and a Dagster instance of its own. ``Home.book()`` is what
must not depend on how a range was run (reruns, crashes, outages): the simulator's orders and
fills, every portfolio snapshot's values and the sha256 of every order object. Numbers are
rounded to the six decimals the database keeps, so a book kept in PostgreSQL compares equal to
one kept in SQLite.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from ibkr_assets.runs import RunOutcome, run_workflow
from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets.storage.trading_tables import (
    create_trading_schema,
    fills,
    orders,
    portfolio_snapshots,
)
from ibkr_assets_tests.helpers import seed_mlflow_store

STRATEGY = "momentum"


class Home:
    """One deployment's home: its own lineage database, objects and Dagster instance."""

    def __init__(
        self,
        root: Path,
        monkeypatch: pytest.MonkeyPatch,
        symbols: list[str] | None = None,
        url: str | None = None,
    ) -> None:
        self.root, self.monkeypatch = root, monkeypatch
        self.symbols = symbols or ["AAPL", "NVDA"]
        self.database_url = url  # None: SQLite in the home
        self.url = url or f"sqlite:///{root / 'lineage.db'}"
        seed_mlflow_store(root)
        self._instance = dg.instance_for_test()
        self.instance = self._instance.__enter__()

    def use(self, **env: str) -> None:
        """Point the environment at this home (and set ``env`` on top)."""
        self.monkeypatch.setenv("IBKR_ASSETS_HOME", str(self.root))
        if self.database_url:
            self.monkeypatch.setenv("IBKR_ASSETS_DATABASE_URL", self.database_url)
        else:
            self.monkeypatch.delenv("IBKR_ASSETS_DATABASE_URL", raising=False)
        self.monkeypatch.delenv("IBKR_ASSETS_KILL_SWITCH", raising=False)
        for key, value in env.items():
            self.monkeypatch.setenv(key, value)

    def run(self, start: dt.date, end: dt.date, **env: str) -> list[RunOutcome]:
        """The command's single-run range (workflow, then portfolio); the runs' outcomes."""
        from ibkr_assets.definitions import build_definitions

        self.use(**env)
        return run_workflow(build_definitions(), self.instance, STRATEGY, self.symbols, start, end)

    def backfill(self, start: dt.date, end: dt.date, **env: str) -> None:
        outcomes = self.run(start, end, **env)
        assert all(o.success for o in outcomes), [o.errors for o in outcomes]

    def snapshot_rows(self) -> dict[dt.date, dict]:
        """Every stored snapshot row, timestamps included: untouched rows keep them."""
        t = portfolio_snapshots
        with engine_for(self.url).connect() as conn:
            rows = conn.execute(sa.select(t).order_by(t.c.snapshot_date)).mappings().all()
        return {r["snapshot_date"]: {k: v for k, v in r.items() if k != "id"} for r in rows}

    def book(self) -> dict:
        """What must not depend on how the range was run: orders, fills, snapshot values and
        the bytes of every order object."""
        create_trading_schema(self.url)  # a home that never traded has no tables yet
        with engine_for(self.url).connect() as conn:
            placed = conn.execute(
                sa.select(orders.c.order_ref, orders.c.role, orders.c.side, orders.c.quantity,
                          orders.c.limit_price, orders.c.stop_price, orders.c.status,
                          orders.c.avg_fill_price).order_by(orders.c.order_ref, orders.c.role)
            ).all()  # fmt: skip
            filled = conn.execute(
                sa.select(fills.c.execution_id, fills.c.quantity, fills.c.price,
                          fills.c.commission, fills.c.session_date).order_by(fills.c.execution_id)
            ).all()  # fmt: skip
        snaps = {
            day: {k: v for k, v in row.items() if k not in ("created_at", "updated_at")}
            for day, row in self.snapshot_rows().items()
        }
        return rounded(
            {
                "orders": [tuple(r) for r in placed],
                "fills": [tuple(r) for r in filled],
                "snapshots": snaps,
                "objects": self.order_objects(),
            }
        )

    def order_objects(self) -> dict[str, str]:
        """partition -> sha256 of its order object, from the latest execution's row."""
        rows = LineageStore(self.url).lineage_rows(step_name="order")
        latest = {}
        for row in sorted(rows, key=lambda r: r["id"]):
            if row["output_data"].get("object"):
                latest[row["partition_key"]] = row["output_data"]["object"]["sha256"]
        return latest

    def order_rows(self) -> list[dict]:
        return LineageStore(self.url).lineage_rows(step_name="order")

    def close(self) -> None:
        """Close the instance. Homes must close in the reverse order they were opened: an entered
        instance sets Dagster's current definitions-state storage, and closing out of order leaves a
        closed instance's storage current for every later test in the process."""
        self._instance.__exit__(None, None, None)


def rounded(value: Any) -> Any:
    """``value`` with every float rounded to six decimals (what ``NUMERIC(18, 6)`` keeps)."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(rounded(v) for v in value)
    return value


def reference_book(
    root: Path, start: dt.date, end: dt.date, env: dict[str, str] | None = None, **kwargs: Any
) -> dict:
    """The book of one uninterrupted backfill of ``start`` .. ``end`` in a fresh home (``env``:
    variables set for it; ``kwargs``: ``Home``'s)."""
    home, book = uninterrupted_home(root, start, end, env, **kwargs)
    home.close()
    return book


def uninterrupted_home(
    root: Path, start: dt.date, end: dt.date, env: dict[str, str] | None = None, **kwargs: Any
) -> tuple[Home, dict]:
    """A fresh home after one uninterrupted backfill of ``start`` .. ``end``, and its book, as
    ``reference_book`` makes them, with the home left open for more runs (the caller closes it).

    The backfill runs without the caller's ``IBKR_ASSETS_*`` variables, and the environment is
    restored on return: a later run in the home must set its variables through a monkeypatch
    that undoes them, given as ``home.monkeypatch``."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for var in [v for v in os.environ if v.startswith("IBKR_ASSETS_")]:
            monkeypatch.delenv(var)
        home = Home(root, monkeypatch, **kwargs)
        try:
            home.backfill(start, end, **(env or {}))
            book = home.book()
            assert book["fills"], "the reference range must trade, or the comparisons prove nothing"
            assert any(s["positions"] for s in book["snapshots"].values())
        except BaseException:
            home.close()
            raise
    return home, book
