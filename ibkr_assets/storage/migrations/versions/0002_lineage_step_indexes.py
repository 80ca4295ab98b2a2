"""The viewer's step statistics read a covering index and a step's errors a partial index.

``ix_workflow_lineage_step_recorded`` is replaced by ``ix_workflow_lineage_step_stats``
(PostgreSQL includes strategy_id, status and duration_ms) and ``ix_workflow_lineage_errors``
(the error rows only). Guarded, so a database made by a newer ``sql/`` upgrades too.

Revision ID: 0002_lineage_step_indexes
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_lineage_step_indexes"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

_ERRORS = sa.text("status = 'error'")


def upgrade() -> None:
    op.drop_index("ix_workflow_lineage_step_recorded", "workflow_lineage", if_exists=True)
    op.create_index(
        "ix_workflow_lineage_step_stats",
        "workflow_lineage",
        ["step_name", "recorded_at"],
        postgresql_include=["strategy_id", "status", "duration_ms"],
        if_not_exists=True,
    )
    op.create_index(
        "ix_workflow_lineage_errors",
        "workflow_lineage",
        ["step_name", "recorded_at"],
        postgresql_where=_ERRORS,
        sqlite_where=_ERRORS,
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_lineage_errors", "workflow_lineage", if_exists=True)
    op.drop_index("ix_workflow_lineage_step_stats", "workflow_lineage", if_exists=True)
    op.create_index(
        "ix_workflow_lineage_step_recorded",
        "workflow_lineage",
        ["step_name", "recorded_at"],
        if_not_exists=True,
    )
