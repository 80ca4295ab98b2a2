"""Alembic migrations of ``storage.tables.metadata``; ``storage.schema.ensure_schema`` runs them."""

# Our own name, not Alembic's default ``alembic_version``: Dagster's and MLflow's stores keep theirs
# under that name, and a deployment may put their tables in the same database as ours.
VERSION_TABLE = "ibkr_assets_alembic_version"
