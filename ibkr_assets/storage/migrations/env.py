"""Alembic's environment: the one ``metadata`` of ``storage.tables``.

``storage.schema.ensure_schema`` passes its connection (already holding the schema lock) in
``config.attributes["connection"]``. Without one (``alembic`` run by hand with this folder as its
script location), the URL comes from ``sqlalchemy.url``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from ibkr_assets.storage.migrations import VERSION_TABLE
from ibkr_assets.storage.tables import metadata


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying tables
        compare_type=True,
    )


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url to the database to migrate")
    return url


def run() -> None:
    if context.is_offline_mode():
        context.configure(
            url=_url(), target_metadata=metadata, version_table=VERSION_TABLE, literal_binds=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(_url())
    with engine.connect() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
