"""Alembic migrations of ``storage.tables.metadata``; ``storage.schema.ensure_schema`` runs them."""
