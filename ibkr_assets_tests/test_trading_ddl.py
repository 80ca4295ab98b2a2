"""sql/004 and 005 against the trading tables, compared on PostgreSQL after both are applied."""

from __future__ import annotations

import sqlalchemy as sa

from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.migrations import VERSION_TABLE
from ibkr_assets.storage.order_records import order_records
from ibkr_assets.storage.tables import metadata
from ibkr_assets.storage.trading_tables import TRADING_TABLES, create_trading_schema
from ibkr_assets_tests.test_lineage_store import ddl_shapes, schemas  # noqa: F401


def test_trading_sql_matches_trading_tables(postgres_url: str, schemas: list[str]) -> None:  # noqa: F811
    sql_shape, metadata_shape = ddl_shapes(
        postgres_url,
        schemas,
        ["004_trading.sql", "005_order_records.sql"],
        [*TRADING_TABLES, order_records],
    )
    assert set(sql_shape) == {t.name for t in TRADING_TABLES} | {"order_records"}
    assert sql_shape == metadata_shape
    orders = sql_shape["orders"]
    assert ("uq_orders_ref_role", ("account", "order_ref", "role")) in orders["unique"]
    assert {name for name, _ in orders["checks"]} >= {"ck_orders_status", "ck_orders_role"}
    assert orders["columns"]["limit_price"][0] == "NUMERIC(18, 6)"


def test_create_trading_schema_is_safe_to_repeat(sqlite_url: str) -> None:
    """The trading tables come with every other table: one database, one schema version."""
    create_trading_schema(sqlite_url)
    create_trading_schema(sqlite_url)
    tables = set(sa.inspect(engine_for(sqlite_url)).get_table_names())
    assert {t.name for t in TRADING_TABLES} <= tables
    assert tables == {*metadata.tables, VERSION_TABLE}
