"""Baseline: the schema of the previous release, as its ``sql/*.sql`` and tables created it.

A frozen copy (never edit it to follow ``tables.py``). Creating only the tables that are missing
makes it safe on a database from before migrations, whose tables were created one store at a
time (a home that never traded has no trading tables): such a database is upgraded from here.

Revision ID: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

_LINEAGE_STATUSES = ("success", "error", "market_closed", "blocked")
_ARTIFACT_TYPES = ("market_data", "chart", "llm", "signal", "order", "portfolio")
_ORDER_STATUSES = (
    "pending_submit", "submitted", "partially_filled", "filled", "cancelled", "rejected",
)  # fmt: skip
_SIDES = ("BUY", "SELL")
_ORDER_TYPES = ("MKT", "LMT", "STP")
_ROLES = ("parent", "take_profit", "stop_loss", "close")
_RECORD_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _numeric() -> sa.Numeric:
    return sa.Numeric(18, 6, asdecimal=False)


def _in(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(sa.column(column).in_(values), name=name)


def upgrade() -> None:
    baseline_metadata().create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    baseline_metadata().drop_all(op.get_bind(), checkfirst=True)


def baseline_metadata() -> sa.MetaData:
    """The baseline's tables, indexes and constraints."""
    md = sa.MetaData()
    sa.Table(
        "workflow_lineage",
        md,
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
        sa.UniqueConstraint(
            "execution_id",
            "strategy_id",
            "step_name",
            "partition_key",
            name="uq_workflow_lineage_step",
        ),
        sa.CheckConstraint(
            sa.column("status").in_(_LINEAGE_STATUSES), name="ck_workflow_lineage_status"
        ),
        sa.Index("ix_workflow_lineage_workflow_execution", "workflow_id", "execution_id"),
        sa.Index("ix_workflow_lineage_step_name", "step_name"),
        sa.Index("ix_workflow_lineage_recorded_at", "recorded_at"),
        sa.Index("ix_workflow_lineage_symbol_date", "symbol", "partition_date"),
        sa.Index("ix_workflow_lineage_partition_key", "partition_key"),
        sa.Index("ix_workflow_lineage_strategy_execution", "strategy_id", "execution_id", "id"),
        sa.Index("ix_workflow_lineage_step_recorded", "step_name", "recorded_at"),
    )

    sa.Table(
        "artifacts",
        md,
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
        sa.UniqueConstraint(
            "execution_id",
            "strategy_id",
            "step_name",
            "partition_key",
            "type",
            "name",
            name="uq_artifacts_key",
        ),
        sa.CheckConstraint(sa.column("type").in_(_ARTIFACT_TYPES), name="ck_artifacts_type"),
        sa.Index("ix_artifacts_type_symbol", "type", "symbol"),
        sa.Index("ix_artifacts_workflow_execution", "workflow_id", "execution_id"),
        sa.Index("ix_artifacts_mlflow_run_id", "mlflow_run_id"),
        sa.Index("ix_artifacts_strategy_partition", "strategy_id", "partition_key"),
    )

    sa.Table(
        "stock_data",
        md,
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

    sa.Table(
        "paper_accounts",
        md,
        sa.Column("account", sa.String(100), primary_key=True),
        sa.Column("starting_cash", _numeric(), nullable=False),
        sa.Column("cash", _numeric(), nullable=False),
        sa.Column("realized_pnl", _numeric(), nullable=False, server_default=sa.text("0")),
        sa.Column("commissions", _numeric(), nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", _timestamp(), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", _timestamp(), nullable=False, server_default=sa.func.now()),
    )

    sa.Table(
        "orders",
        md,
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
        _in("status", _ORDER_STATUSES, "ck_orders_status"),
        _in("side", _SIDES, "ck_orders_side"),
        _in("order_type", _ORDER_TYPES, "ck_orders_order_type"),
        _in("role", _ROLES, "ck_orders_role"),
        sa.CheckConstraint("quantity > 0", name="ck_orders_quantity"),
        sa.Index("ix_orders_account_symbol_status", "account", "symbol", "status"),
    )

    sa.Table(
        "order_events",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(100), nullable=False),
        sa.Column("broker_order_id", sa.String(100), nullable=False),
        sa.Column("order_ref", sa.String(255), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("filled_quantity", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("at", _timestamp(), nullable=False, server_default=sa.func.now()),
        sa.Column("detail", _json()),
        _in("status", _ORDER_STATUSES, "ck_order_events_status"),
        sa.Index("ix_order_events_order", "account", "broker_order_id"),
        sa.Index("ix_order_events_order_ref", "order_ref"),
    )

    sa.Table(
        "fills",
        md,
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

    sa.Table(
        "positions",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(100), nullable=False),
        sa.Column("symbol", sa.String(50), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("avg_cost", _numeric(), nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("account", "symbol", name="uq_positions_account_symbol"),
    )

    sa.Table(
        "paper_sync",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(100), nullable=False),
        sa.Column("symbol", sa.String(50), nullable=False),
        sa.Column("last_bar_date", sa.Date, nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("account", "symbol", name="uq_paper_sync_account_symbol"),
    )

    sa.Table(
        "paper_closes",
        md,
        sa.Column("account", sa.String(100), primary_key=True),
        sa.Column("symbol", sa.String(50), primary_key=True),
        sa.Column("session_date", sa.Date, primary_key=True),
        sa.Column("close", _numeric(), nullable=False),
    )

    sa.Table(
        "portfolio_snapshots",
        md,
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

    sa.Table(
        "order_records",
        md,
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

    sa.Table(
        "run_failures",
        md,
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

    sa.Table(
        "symbols",
        md,
        sa.Column("symbol", sa.String(20), primary_key=True),
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

    sa.Table(
        "verification_runs",
        md,
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
    return md
