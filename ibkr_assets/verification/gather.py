"""Read what ``verify`` compares: lineage rows, objects, order records, the simulator's book.

Every query is SQLAlchemy Core with bound parameters, read-only (the simulator account is
opened only when it exists, so verifying never creates one).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.object_store import ObjectStore, ObjectStoreError
from ibkr_assets.storage.order_records import order_records
from ibkr_assets.storage.tables import workflow_lineage
from ibkr_assets.storage.trading_tables import orders, paper_accounts

ROW_COLUMNS = (
    "id",
    "execution_id",
    "run_id",
    "step_name",
    "partition_key",
    "symbol",
    "status",
    "output_data",
    "previous_attempts",
)


def _has(engine: sa.Engine, table: sa.Table) -> bool:
    return sa.inspect(engine).has_table(table.name)


def lineage_rows(url: str, strategy_id: str, start: dt.date, end: dt.date) -> list[dict]:
    """The strategy's lineage rows of sessions ``start`` .. ``end``, oldest first."""
    engine = engine_for(url)
    if not _has(engine, workflow_lineage):
        return []
    t = workflow_lineage
    query = (
        sa.select(*(t.c[name] for name in ROW_COLUMNS))
        .where(t.c.strategy_id == strategy_id, t.c.partition_date.between(start, end))
        .order_by(t.c.id)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def known_runs(url: str, strategy_id: str) -> set[str]:
    """Every run that wrote (or earlier attempted) a lineage row of the strategy, any date."""
    engine = engine_for(url)
    if not _has(engine, workflow_lineage):
        return set()
    t = workflow_lineage
    with engine.connect() as conn:
        runs = set(
            conn.execute(
                sa.select(t.c.run_id).where(t.c.strategy_id == strategy_id).distinct()
            ).scalars()
        )
        retried = conn.execute(
            sa.select(t.c.previous_attempts).where(t.c.strategy_id == strategy_id, t.c.attempts > 1)
        ).scalars()
        for attempts in retried:
            runs.update(a.get("run_id") for a in attempts or [] if a.get("run_id"))
    return runs


def order_record_rows(url: str, strategy_id: str, start: dt.date, end: dt.date) -> list[dict]:
    engine = engine_for(url)
    if not _has(engine, order_records):
        return []
    t = order_records
    query = sa.select(t).where(t.c.strategy_id == strategy_id, t.c.session_date.between(start, end))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query.order_by(t.c.order_ref))]


def book_orders(
    url: str, account: str, start: dt.date, end: dt.date
) -> dict[str, list[dict[str, Any]]]:
    """The simulator's orders of ``account`` for sessions ``start`` .. ``end``, by order_ref."""
    engine = engine_for(url)
    if not _has(engine, orders):
        return {}
    query = (
        sa.select(orders)
        .where(orders.c.account == account, orders.c.session_date.between(start, end))
        .order_by(orders.c.id)
    )
    book: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for row in conn.execute(query):
            book.setdefault(row.order_ref, []).append(dict(row._mapping))
    return book


def account_exists(url: str, account: str) -> bool:
    engine = engine_for(url)
    if not _has(engine, paper_accounts):
        return False
    query = sa.select(paper_accounts.c.account).where(paper_accounts.c.account == account)
    with engine.connect() as conn:
        return conn.execute(query).first() is not None


def snapshot_pairs(
    url: str, account: str, start: dt.date, end: dt.date, allow_short: bool
) -> tuple[dict[dt.date, dict], dict[dt.date, dict]]:
    """(stored, recomputed from fills and closes) snapshots of ``account`` within the range."""
    from ibkr_assets.brokers.paper import PaperBroker

    if not account_exists(url, account):
        return {}, {}
    broker = PaperBroker(url, account=account, allow_short=allow_short, mode="backtest")
    stored = {s.date: s.model_dump() for s in broker.snapshots() if start <= s.date <= end}
    again = {d: s.model_dump() for d, s in broker.snapshots_as_of(stored).items()}
    return stored, again


def reader(store: ObjectStore):
    """``read(key) -> bytes | None`` (None: no such object)."""

    def read(key: str) -> bytes | None:
        try:
            return store.get(key)
        except ObjectStoreError:
            return None

    return read


def base_uri(store: ObjectStore) -> str:
    """The URI prefix of every key in ``store`` (``file:///root/``, ``s3://bucket/``)."""
    return store.uri("x")[:-1]


def referenced_keys(rows: Iterable[dict], base: str) -> set[str]:
    """The keys rows point at: each object's version and its latest copy."""
    keys = set()
    for row in rows:
        ref = (row.get("output_data") or {}).get("object") or {}
        for name in ("uri", "latest_uri"):
            uri = ref.get(name)
            if uri and uri.startswith(base):
                keys.add(uri[len(base) :])
    return keys


def strategy_prefixes(strategy_id: str) -> list[str]:
    """The folders that hold only this strategy's objects (the LLM cache is shared)."""
    return [f"trading-data/{strategy_id}/", f"ml-experiments/{strategy_id}/",
            f"manifests/{strategy_id}/"]  # fmt: skip


def read_manifest(store: ObjectStore, ref: dict) -> dict | None:
    """A step's object-versions manifest, verified against the sha256 its event records."""
    from ibkr_assets.storage.object_store import get_verified

    try:
        return json.loads(get_verified(store, ref["version_key"], ref["sha256"]))
    except (ObjectStoreError, KeyError, ValueError):
        return None
