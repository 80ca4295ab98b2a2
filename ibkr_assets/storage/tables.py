"""The relational schema (SQLAlchemy Core), the source of truth that ``sql/*.sql`` mirrors.

``test_sql_ddl_matches_tables`` fails when the two drift apart, so change both together.
JSON columns are JSONB on PostgreSQL and JSON text on SQLite; ``none_as_null`` stores a Python
``None`` as SQL NULL rather than the JSON value ``null``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from ibkr_assets.storage.records import ARTIFACT_TYPES, LINEAGE_STATUSES

metadata = sa.MetaData()


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


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

LINEAGE_TABLES: tuple[sa.Table, ...] = (workflow_lineage, artifacts)
