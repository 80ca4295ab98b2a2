"""Are the database, the object store and MLflow reachable? One short probe each."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import sqlalchemy as sa

from ibkr_assets.redaction import redact_text
from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.object_store import LocalObjectStore, ObjectStore
from ibkr_assets.verification.checks import Discrepancy

TIMEOUT_S = 5.0


def reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def check_database(url: str) -> Discrepancy | None:
    try:
        with engine_for(url).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        return Discrepancy(
            "services", f"database {redact_text(url)}", f"unreachable: {reason(exc)}"
        )
    return None


def check_object_store(store: ObjectStore) -> Discrepancy | None:
    where = f"object store {store.uri('x')[:-1]}"
    try:
        if isinstance(store, LocalObjectStore):
            if not store.root.is_dir():
                return Discrepancy("services", where, "the folder does not exist")
        else:
            store.exists("manifests/.verify-probe")  # a HEAD request: reachable and permitted
    except Exception as exc:
        return Discrepancy("services", where, f"unreachable: {reason(exc)}")
    return None


def check_mlflow(tracking_uri: str) -> Discrepancy | None:
    """A server answers ``/health``; a database store answers a query; a folder exists."""
    where = f"MLflow {redact_text(tracking_uri)}"
    try:
        if tracking_uri.startswith(("http://", "https://")):
            url = tracking_uri.rstrip("/") + "/health"
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:  # noqa: S310
                if answer.status != 200:
                    return Discrepancy("services", where, f"/health answered {answer.status}")
        elif "://" in tracking_uri and not tracking_uri.startswith("file:"):
            database = sa.make_url(tracking_uri).database
            if tracking_uri.startswith("sqlite") and not (database and Path(database).is_file()):
                return Discrepancy("services", where, "the tracking database does not exist")
            with engine_for(tracking_uri).connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        else:
            folder = Path(tracking_uri.removeprefix("file://"))
            if not folder.is_dir():
                return Discrepancy("services", where, "the tracking folder does not exist")
    except (OSError, urllib.error.URLError, sa.exc.SQLAlchemyError) as exc:
        return Discrepancy("services", where, f"unreachable: {reason(exc)}")
    return None
