"""Every table of the project, on one ``metadata`` (SQLAlchemy Core): the source of truth.

``sql/*.sql`` is generated from it (``python -m ibkr_assets.storage.ddl``; a test fails when the
files are stale) and ``storage/migrations/`` upgrades an existing database to it (a test upgrades
one made by the previous release's DDL). Change a table here, add a migration, regenerate sql/.

JSON columns are JSONB on PostgreSQL and JSON text on SQLite; ``none_as_null`` stores a Python
``None`` as SQL NULL rather than the JSON value ``null``. Money and prices of the trading tables
are NUMERIC(18, 6) read back as floats; the broker rounds to six places before writing so SQLite
(which does not round) holds the same values as PostgreSQL.
"""

from __future__ import annotations

from typing import get_args

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB

from ibkr_assets.domain.orders import OrderStatus, OrderType, Role, Side
from ibkr_assets.domain.symbols import SYMBOL_MAX
from ibkr_assets.storage.records import ARTIFACT_TYPES, LINEAGE_STATUSES

metadata = sa.MetaData()

ORDER_STATUSES: tuple[str, ...] = tuple(s.value for s in OrderStatus)


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _numeric() -> sa.Numeric:
    return sa.Numeric(18, 6, asdecimal=False)


def _in(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(sa.column(column).in_(values), name=name)


# order_records stores a Python None as the JSON value null (as it always has)
_RECORD_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# A row's identity. One run can hold several strategies' steps (e.g. their portfolio snapshots
# of one date, grouped by Dagster's automation), so the strategy is part of it.
LINEAGE_KEY: tuple[str, ...] = ("execution_id", "strategy_id", "step_name", "partition_key")
ARTIFACT_KEY: tuple[str, ...] = (*LINEAGE_KEY, "type", "name")

workflow_lineage = sa.Table(
    "workflow_lineage",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("workflow_id", sa.String(255), nullable=False),
    sa.Column("execution_id", sa.String(255), nullable=False),
    sa.Column("run_id", sa.String(255), nullable=False),
    sa.Column("step_name", sa.String(100), nullable=False),
    sa.Column("step_number", sa.Integer, nullable=False),
    sa.Column("partition_key", sa.String(255), nullable=False, server_default=""),
    sa.Column("symbol", sa.String(50)),
    sa.Column("partition_date", sa.Date),
    sa.Column("strategy_id", sa.String(100), nullable=False, server_default=""),
    sa.Column("code_version", sa.String(100)),
    sa.Column("input_data", _json(), nullable=False),
    sa.Column("output_data", _json(), nullable=False),
    sa.Column("metadata", _json()),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Integer),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("previous_attempts", _json(), nullable=False, server_default=sa.text("'[]'")),
    sa.Column("recorded_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", _timestamp()),
    sa.UniqueConstraint(*LINEAGE_KEY, name="uq_workflow_lineage_step"),
    sa.CheckConstraint(
        sa.column("status").in_(LINEAGE_STATUSES), name="ck_workflow_lineage_status"
    ),
    sa.Index("ix_workflow_lineage_workflow_execution", "workflow_id", "execution_id"),
    sa.Index("ix_workflow_lineage_step_name", "step_name"),
    sa.Index("ix_workflow_lineage_recorded_at", "recorded_at"),
    sa.Index("ix_workflow_lineage_symbol_date", "symbol", "partition_date"),
    sa.Index("ix_workflow_lineage_partition_key", "partition_key"),
    sa.Index("ix_workflow_lineage_strategy_execution", "strategy_id", "execution_id", "id"),
    # a step's statistics over recent days read only this index; its errors only the next one
    sa.Index(
        "ix_workflow_lineage_step_stats",
        "step_name",
        "recorded_at",
        postgresql_include=["strategy_id", "status", "duration_ms"],
    ),
    sa.Index(
        "ix_workflow_lineage_errors",
        "step_name",
        "recorded_at",
        postgresql_where=sa.text("status = 'error'"),
        sqlite_where=sa.text("status = 'error'"),
    ),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("type", sa.String(50), nullable=False),
    sa.Column("symbol", sa.String(50)),
    sa.Column("workflow_id", sa.String(255), nullable=False),
    sa.Column("execution_id", sa.String(255), nullable=False),
    sa.Column("run_id", sa.String(255), nullable=False),
    sa.Column("step_name", sa.String(100), nullable=False),
    sa.Column("partition_key", sa.String(255), nullable=False, server_default=""),
    sa.Column("strategy_id", sa.String(100), nullable=False, server_default=""),
    sa.Column("mlflow_run_id", sa.String(255)),
    sa.Column("mlflow_experiment_id", sa.String(255)),
    sa.Column("prompt", sa.Text),
    sa.Column("response", sa.Text),
    sa.Column("image_path", sa.Text),
    sa.Column("chart_data", _json()),
    sa.Column("signal_data", _json()),
    sa.Column("metadata", _json()),
    sa.Column("uri", sa.Text),
    sa.Column("sha256", sa.String(64)),
    sa.Column("prompt_length", sa.Integer),
    sa.Column("response_length", sa.Integer),
    sa.Column("model_name", sa.String(100)),
    sa.Column("confidence_score", sa.Numeric(5, 4, asdecimal=False)),
    sa.Column("created_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", _timestamp()),
    sa.UniqueConstraint(*ARTIFACT_KEY, name="uq_artifacts_key"),
    sa.CheckConstraint(sa.column("type").in_(ARTIFACT_TYPES), name="ck_artifacts_type"),
    sa.Index("ix_artifacts_type_symbol", "type", "symbol"),
    sa.Index("ix_artifacts_workflow_execution", "workflow_id", "execution_id"),
    sa.Index("ix_artifacts_mlflow_run_id", "mlflow_run_id"),
    sa.Index("ix_artifacts_strategy_partition", "strategy_id", "partition_key"),
)

# Daily bars loaded by sql/003 (or any loader); read by ``StockDataTableSource``.
stock_data = sa.Table(
    "stock_data",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("symbol", sa.String(20), nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("open", sa.Numeric(18, 6)),
    sa.Column("high", sa.Numeric(18, 6)),
    sa.Column("low", sa.Numeric(18, 6)),
    sa.Column("close", sa.Numeric(18, 6)),
    sa.Column("volume", sa.BigInteger),
    sa.Column("created_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("symbol", "date", name="uq_stock_data_symbol_date"),
)

# --- the paper broker and the portfolio --------------------------------------------------

paper_accounts = sa.Table(
    "paper_accounts",
    metadata,
    sa.Column("account", sa.String(100), primary_key=True),
    sa.Column("starting_cash", _numeric(), nullable=False),
    sa.Column("cash", _numeric(), nullable=False),
    sa.Column("realized_pnl", _numeric(), nullable=False, server_default=sa.text("0")),
    sa.Column("commissions", _numeric(), nullable=False, server_default=sa.text("0")),
    sa.Column("created_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", _timestamp(), nullable=False, server_default=sa.func.now()),
)


orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(100), nullable=False),
    sa.Column("order_ref", sa.String(255), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("broker_order_id", sa.String(100), nullable=False),
    sa.Column("symbol", sa.String(50), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("order_type", sa.String(3), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("limit_price", _numeric()),
    sa.Column("stop_price", _numeric()),
    sa.Column("parent_id", sa.String(100)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("filled_quantity", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("avg_fill_price", _numeric()),
    sa.Column("commission", _numeric(), nullable=False, server_default=sa.text("0")),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("session_date", sa.Date, nullable=False),
    sa.Column("created_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("broker_order_id", name="uq_orders_broker_order_id"),
    sa.UniqueConstraint("account", "order_ref", "role", name="uq_orders_ref_role"),
    _in("status", ORDER_STATUSES, "ck_orders_status"),
    _in("side", get_args(Side), "ck_orders_side"),
    _in("order_type", get_args(OrderType), "ck_orders_order_type"),
    _in("role", get_args(Role), "ck_orders_role"),
    sa.CheckConstraint("quantity > 0", name="ck_orders_quantity"),
    sa.Index("ix_orders_account_symbol_status", "account", "symbol", "status"),
)


order_events = sa.Table(
    "order_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(100), nullable=False),
    sa.Column("broker_order_id", sa.String(100), nullable=False),
    sa.Column("order_ref", sa.String(255), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("filled_quantity", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.Column("detail", _json()),
    _in("status", ORDER_STATUSES, "ck_order_events_status"),
    sa.Index("ix_order_events_order", "account", "broker_order_id"),
    sa.Index("ix_order_events_order_ref", "order_ref"),
)


fills = sa.Table(
    "fills",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("execution_id", sa.String(120), nullable=False),
    sa.Column("account", sa.String(100), nullable=False),
    sa.Column("broker_order_id", sa.String(100), nullable=False),
    sa.Column("order_ref", sa.String(255), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("symbol", sa.String(50), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("price", _numeric(), nullable=False),
    sa.Column("commission", _numeric(), nullable=False),
    sa.Column("session_date", sa.Date, nullable=False),
    sa.Column("filled_at", _timestamp(), nullable=False),
    sa.Column("created_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("execution_id", name="uq_fills_execution_id"),
    sa.Index("ix_fills_account_symbol", "account", "symbol"),
    sa.Index("ix_fills_order_ref", "order_ref"),
)


positions = sa.Table(
    "positions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(100), nullable=False),
    sa.Column("symbol", sa.String(50), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("avg_cost", _numeric(), nullable=False),
    sa.Column("updated_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("account", "symbol", name="uq_positions_account_symbol"),
)


paper_sync = sa.Table(
    "paper_sync",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(100), nullable=False),
    sa.Column("symbol", sa.String(50), nullable=False),
    sa.Column("last_bar_date", sa.Date, nullable=False),
    sa.Column("updated_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("account", "symbol", name="uq_paper_sync_account_symbol"),
)


paper_closes = sa.Table(
    "paper_closes",
    metadata,
    sa.Column("account", sa.String(100), primary_key=True),
    sa.Column("symbol", sa.String(50), primary_key=True),
    sa.Column("session_date", sa.Date, primary_key=True),
    sa.Column("close", _numeric(), nullable=False),
)


portfolio_snapshots = sa.Table(
    "portfolio_snapshots",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(100), nullable=False),
    sa.Column("snapshot_date", sa.Date, nullable=False),
    sa.Column("cash", _numeric(), nullable=False),
    sa.Column("market_value", _numeric(), nullable=False),
    sa.Column("equity", _numeric(), nullable=False),
    sa.Column("realized_pnl", _numeric(), nullable=False),
    sa.Column("unrealized_pnl", _numeric(), nullable=False),
    sa.Column("commissions", _numeric(), nullable=False),
    sa.Column("gross_exposure", _numeric(), nullable=False),
    sa.Column("net_exposure", _numeric(), nullable=False),
    sa.Column("exposure_pct", _numeric()),
    sa.Column("positions", _json(), nullable=False),
    sa.Column("created_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", _timestamp()),
    sa.UniqueConstraint("account", "snapshot_date", name="uq_portfolio_snapshots_account_date"),
)


# Our own note of every order decision, written before and after sending (order_records.py).
order_records = sa.Table(
    "order_records",
    metadata,
    sa.Column("order_ref", sa.String(200), primary_key=True),
    sa.Column("strategy_id", sa.String(100), nullable=False),
    sa.Column("symbol", sa.String(50), nullable=False),
    sa.Column("session_date", sa.Date, nullable=False),
    sa.Column("broker", sa.String(20), nullable=False),
    sa.Column("mode", sa.String(20), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("decision", _RECORD_JSON, nullable=False),
    sa.Column("broker_orders", _RECORD_JSON, nullable=False),
    sa.Column("run_id", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(
        "state IN ('decided', 'sending', 'sent', 'reconciled')", name="ck_order_records_state"
    ),
)


# One row per failed step of a failed run (run_failure_store.py).
run_failures = sa.Table(
    "run_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(255), nullable=False),
    sa.Column("job_name", sa.String(255), nullable=False),
    sa.Column("partition_key", sa.String(255)),
    sa.Column("step_key", sa.String(255), nullable=False, server_default=""),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("error_class", sa.String(255), nullable=False),
    sa.Column("strategy_id", sa.String(100)),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("notified", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("webhook_status", sa.Text),
    sa.UniqueConstraint("run_id", "step_key", name="uq_run_failures_run_step"),
    sa.Index("ix_run_failures_occurred_at", "occurred_at"),
    sa.Index("ix_run_failures_partition_key", "partition_key"),
    sa.Index("ix_run_failures_strategy_occurred", "strategy_id", "occurred_at"),
)


# Resolved symbols: symbol -> contract id, exchange, name (symbol_registry.py).
symbols = sa.Table(
    "symbols",
    metadata,
    sa.Column("symbol", sa.String(SYMBOL_MAX), primary_key=True),
    sa.Column("con_id", sa.BigInteger),
    sa.Column("exchange", sa.String(20), nullable=False),
    sa.Column("primary_exchange", sa.String(20), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("symbol = upper(symbol)", name="ck_symbols_upper"),
    sa.Index("ix_symbols_con_id", "con_id"),
)


# One row per verify (command or Dagster job), for people to look at (verification_runs.py).
verification_runs = sa.Table(
    "verification_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("strategy_id", sa.String(100), nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("discrepancies", sa.Integer, nullable=False),
    sa.Column("orphans_deleted", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("checks", _json(), nullable=False),
    sa.Column("details", _json(), nullable=False),
    sa.Column("triggered_by", sa.String(255), nullable=False),
    sa.Column("started_at", _timestamp(), nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Index("ix_verification_runs_strategy_started", "strategy_id", "started_at"),
)
