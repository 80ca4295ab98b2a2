"""Dataset names by the OpenLineage naming spec, through the client's own naming classes.

An object at ``s3://bucket/key`` is namespace ``s3://bucket``, name ``key``; an object of the
local store at ``file:///path`` is namespace ``file``, name ``/path``; a table of the PostgreSQL
database is namespace ``postgres://host:port``, name ``database.schema.table``.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from openlineage.client.naming.dataset import S3, LocalFileSystem, Postgres

# The relational tables a step writes besides its object (PostgreSQL deployments only).
STEP_TABLES: dict[str, tuple[str, ...]] = {
    "order": ("order_records",),
    "portfolio_snapshot": ("portfolio_snapshots",),
}


def object_dataset(uri: str) -> tuple[str, str]:
    """``(namespace, name)`` of a stored object's URI."""
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        naming = S3(bucket_name=parts.netloc, object_key=unquote(parts.path.lstrip("/")))
    elif parts.scheme == "file":
        naming = LocalFileSystem(path=unquote(parts.path))
    else:
        raise ValueError(f"object URI {uri!r} is neither s3:// nor file://")
    return naming.get_namespace(), naming.get_name()


def table_datasets(database_url: str | None, step: str) -> list[tuple[str, str]]:
    """``(namespace, name)`` of each table ``step`` writes, when the database is PostgreSQL.

    The embedded SQLite database has no name in the naming spec, so it names none."""
    tables = STEP_TABLES.get(step, ())
    if not database_url or not tables:
        return []
    parts = urlsplit(database_url)
    if not parts.scheme.startswith("postgres"):
        return []
    host, port = parts.hostname or "localhost", str(parts.port or 5432)
    database = unquote(parts.path.lstrip("/")) or "postgres"
    return [
        (n.get_namespace(), n.get_name())
        for n in (Postgres(host, port, database, "public", t) for t in tables)
    ]
