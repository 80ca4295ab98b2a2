"""Migration scripts (Alembic reads every module here but this one)."""
