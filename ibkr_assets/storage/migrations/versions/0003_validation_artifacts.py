"""Artifact rows of type ``validation``: each partition's quality-gate report.

``ck_artifacts_type`` allows the new type (SQLite copies the table to change a check).

Revision ID: 0003_validation_artifacts
Revises: 0002_lineage_step_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_validation_artifacts"
down_revision = "0002_lineage_step_indexes"
branch_labels = None
depends_on = None

_BEFORE = ("market_data", "chart", "llm", "signal", "order", "portfolio")
_AFTER = (*_BEFORE, "validation")


def _allow(types: tuple[str, ...]) -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_constraint("ck_artifacts_type", type_="check")
        batch.create_check_constraint("ck_artifacts_type", sa.column("type").in_(types))


def upgrade() -> None:
    _allow(_AFTER)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM artifacts WHERE type = 'validation'"))
    _allow(_BEFORE)
