"""``run_failures``: one row per failed step of a failed run, and the sensor that writes them.

Dagster keeps failures in its own event log; this table puts them next to the lineage rows
(same database, same partition keys) so the lineage viewer and alerting queries can join them.
A run that failed outside any step (a resource that could not start, a cancelled run) gets one
run-level row whose ``step_key`` is ``''`` rather than NULL, so ``(run_id, step_key)`` stays a
real unique key and re-evaluating the same run updates rows instead of adding them.

The optional webhook receives one JSON POST per failed run. It is best-effort: an unreachable
or failing webhook is written down in ``webhook_status`` and never fails the sensor.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ibkr_assets.redaction import mask, redact_text
from ibkr_assets.storage.engines import database_errors, engine_for, transaction
from ibkr_assets.storage.schema import ensure_schema
from ibkr_assets.storage.tables import run_failures

RUN_LEVEL = ""  # step_key of a failure that belongs to no step
_KEY = ("run_id", "step_key")
_PAYLOAD_ERROR_CHARS = 2000


class RunFailureStoreError(RuntimeError):
    """The database refused or could not be reached; the message never shows a password."""


class RunFailureStore:
    """Reads and writes ``run_failures`` (SQLite or PostgreSQL) through the shared engine."""

    def __init__(self, url: str) -> None:
        self._safe_url = redact_text(url)
        self.engine = engine_for(url)

    def __repr__(self) -> str:
        return f"RunFailureStore({self._safe_url!r})"

    def create_schema(self) -> None:
        """Create the table and its indexes if they do not exist yet (safe to repeat)."""
        what = f"run_failures create_schema failed on {self._safe_url}"
        with database_errors(RunFailureStoreError, what):
            ensure_schema(self.engine)

    def record(
        self,
        *,
        run_id: str,
        job_name: str,
        error: str,
        error_class: str,
        step_key: str | None = None,
        partition_key: str | None = None,
        strategy_id: str | None = None,
        occurred_at: dt.datetime | None = None,
    ) -> int:
        """Upsert the failure of ``step_key`` (None: the run itself) in ``run_id``; returns its id.

        Recording the same failure again updates the row; whether the webhook was told
        (``notified``, ``webhook_status``) is kept.
        """
        values = _clipped(
            {
                "run_id": run_id,
                "step_key": step_key or RUN_LEVEL,
                "job_name": job_name,
                "partition_key": partition_key,
                "error": error,
                "error_class": error_class,
                "strategy_id": strategy_id,
                "occurred_at": occurred_at or dt.datetime.now(dt.timezone.utc),
            }
        )
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(run_failures).values(**values)
        statement = insert.on_conflict_do_update(
            index_elements=list(_KEY),
            set_={k: insert.excluded[k] for k in values if k not in _KEY},
        ).returning(run_failures.c.id)
        with self._transaction("write") as conn:
            return conn.execute(statement).scalar_one()

    def mark_notified(self, run_id: str, webhook_status: str) -> None:
        """Store the webhook's answer on every row of ``run_id``; a 2xx answer means notified."""
        statement = (
            run_failures.update()
            .where(run_failures.c.run_id == run_id)
            .values(webhook_status=webhook_status, notified=webhook_status.startswith("2"))
        )
        with self._transaction("write") as conn:
            conn.execute(statement)

    def for_run(self, run_id: str) -> list[dict[str, Any]]:
        """Every failure row of ``run_id``, in the order they were first recorded."""
        query = (
            sa.select(run_failures)
            .where(run_failures.c.run_id == run_id)
            .order_by(run_failures.c.id)
        )
        return self._rows(query)

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The ``limit`` most recent failures, newest first."""
        query = (
            sa.select(run_failures)
            .order_by(run_failures.c.occurred_at.desc(), run_failures.c.id.desc())
            .limit(limit)
        )
        return self._rows(query)

    def _rows(self, query: sa.Select) -> list[dict[str, Any]]:
        with self._transaction("read") as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        for row in rows:  # SQLite hands back naive datetimes; we only ever write UTC
            if row["occurred_at"].tzinfo is None:
                row["occurred_at"] = row["occurred_at"].replace(tzinfo=dt.timezone.utc)
        return rows

    def _transaction(self, action: str):
        return transaction(
            self.engine, RunFailureStoreError, f"run_failures {action} failed on {self._safe_url}"
        )


def _clipped(values: dict[str, Any]) -> dict[str, Any]:
    """Cut strings to their column's length: a failure too long to store must still be stored."""
    for name, value in values.items():
        length = getattr(run_failures.c[name].type, "length", None)
        if isinstance(value, str) and length is not None and len(value) > length:
            values[name] = value[: length - 1] + "…"
    return values


# --- webhook ------------------------------------------------------------------------------


def safe_webhook_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: fit for logs, whatever holds the token.

    Userinfo and query are dropped, and so is the path, since services such as Slack put the
    token there.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable webhook URL>"
    return f"{parts.scheme}://{host}{port}" if parts.scheme and host else "<invalid webhook URL>"


def notify_webhook(url: str, payload: Mapping[str, Any], timeout_s: float = 5) -> str:
    """POST ``payload`` as JSON to ``url``; returns the HTTP status ("200") or "error: ...".

    Never raises: an alert channel that is down must not stop the failure being recorded.
    Credentials in the URL's userinfo are sent as HTTP Basic auth, not left in the URL.
    """
    secrets: list[str] = [url]
    try:
        parts = urlsplit(url)
        secrets += [s for s in (parts.password, parts.query, parts.path) if s and len(s) > 1]
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "error: the webhook URL must be an http:// or https:// URL"
        headers = {"Content-Type": "application/json", "User-Agent": "ibkr-assets"}
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            netloc = f"{host}:{parts.port}" if parts.port else host
            url = urlunsplit(parts._replace(netloc=netloc))
        body = json.dumps(payload, default=str).encode()
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return str(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return str(exc.code)
    except OSError as exc:  # URLError, refused, timed out, TLS: the reason names no secret
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return mask(f"error: {type(exc).__name__}: {reason}", secrets)[:300]
    except Exception as exc:  # best-effort; such messages may quote the URL
        return f"error: {type(exc).__name__} (check the webhook URL)"


# --- the sensor ---------------------------------------------------------------------------


def partition_key_from_tags(tags: Mapping[str, str]) -> str | None:
    """The run's partition (``dagster/partition``) or range (``start...end``), if any."""
    if tags.get("dagster/partition"):
        return tags["dagster/partition"]
    start = tags.get("dagster/asset_partition_range_start")
    end = tags.get("dagster/asset_partition_range_end")
    if start and end:
        return start if start == end else f"{start}...{end}"
    return None


def failures_of(context: dg.RunFailureSensorContext) -> list[dict[str, Any]]:
    """``RunFailureStore.record`` arguments for each failed step (or the run) of the run."""
    run = context.dagster_run
    record = context.instance.get_run_record_by_id(run.run_id)
    end_time = record.end_time if record is not None else None
    common = {
        "run_id": run.run_id,
        "job_name": run.job_name,
        "partition_key": partition_key_from_tags(run.tags),
        "strategy_id": run.tags.get("strategy"),
        "occurred_at": (
            dt.datetime.fromtimestamp(end_time, dt.timezone.utc)
            if end_time
            else dt.datetime.now(dt.timezone.utc)
        ),
    }
    failures = [
        {
            **common,
            "strategy_id": common["strategy_id"] or strategy_of_step(event.step_key),
            "step_key": event.step_key,
            **_error(event),
        }
        for event in context.get_step_failure_events()
    ]
    return failures or [{**common, "step_key": None, **_error(context.failure_event)}]


def strategy_of_step(step_key: str | None) -> str | None:
    """``"momentum__order"`` -> ``"momentum"``: a strategy's steps are ``STRATEGY__STEP``, so a
    run that mixes strategies (automation, a UI selection) still names each failure's."""
    if not step_key or "__" not in step_key:
        return None
    return step_key.rsplit("__", 1)[0]


def _error(event: dg.DagsterEvent) -> dict[str, str]:
    """The error's message and those of its causes (no stack: Dagster keeps that)."""
    data = event.event_specific_data
    error = getattr(data, "error", None)
    if error is None:
        reason = getattr(data, "failure_reason", None)
        name = getattr(reason, "value", None) or "unknown"
        return {"error": event.message or "the run failed", "error_class": f"RunFailure:{name}"}
    messages, cause, error_class = [], error, error.cls_name or "unknown"
    while cause is not None:
        messages.append(cause.message.strip())
        cause = cause.cause
    return {"error": "\ncaused by: ".join(messages), "error_class": error_class}


def webhook_payload(failures: list[dict[str, Any]]) -> dict[str, Any]:
    """One JSON object per failed run; ``text`` makes it readable by chat incoming webhooks."""
    first = failures[0]
    steps = [
        {
            "step_key": f["step_key"],
            "error_class": f["error_class"],
            "error": f["error"][:_PAYLOAD_ERROR_CHARS],
        }
        for f in failures
    ]
    where = f" (partition {first['partition_key']})" if first["partition_key"] else ""
    summary = "; ".join(f"{s['step_key'] or 'run'}: {_one_line(s)}" for s in steps)
    return {
        "event": "run_failure",
        "run_id": first["run_id"],
        "job_name": first["job_name"],
        "partition_key": first["partition_key"],
        "strategy_id": first["strategy_id"],
        "occurred_at": first["occurred_at"].isoformat(),
        "failures": steps,
        "text": f"{first['job_name']} run {first['run_id'][:8]} failed{where}: {summary}",
    }


def _one_line(step: Mapping[str, str], limit: int = 300) -> str:
    """The error on one line, without the ``package.module.Class:`` prefix it starts with."""
    text = " ".join(step["error"].split())
    head, sep, rest = text.partition(": ")
    if sep and " " not in head and head.endswith(step["error_class"]):
        text = rest
    return text if len(text) <= limit else text[: limit - 1] + "…"


@functools.lru_cache(maxsize=8)
def _store_for(url: str) -> RunFailureStore:
    store = RunFailureStore(url)
    store.create_schema()
    return store


def build_run_failure_sensor(
    database_url_getter: Callable[[], str],
    webhook_url_getter: Callable[[], str | None],
) -> dg.SensorDefinition:
    """The ``run_failure_sensor``: records every failed run of this code location.

    Both URLs are read through the getters at each evaluation, never at import, so loading the
    definitions needs neither the database nor the webhook.
    """

    @dg.run_failure_sensor(
        name="run_failure_sensor",
        description=(
            "Records each failed run (run, partition, step, error) in the run_failures table "
            "and posts it to the alert webhook when one is configured."
        ),
        default_status=dg.DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=False,
    )
    def run_failure_sensor(context: dg.RunFailureSensorContext) -> None:
        failures = failures_of(context)
        store = _store_for(database_url_getter())
        for failure in failures:
            store.record(**failure)
        run_id = context.dagster_run.run_id
        steps = ", ".join(f["step_key"] or "(run)" for f in failures)
        context.log.info(f"recorded the failure of run {run_id} ({steps}) in {store!r}")

        webhook = webhook_url_getter()
        if not webhook:
            return
        if all(row["notified"] for row in store.for_run(run_id)):
            context.log.info(f"run {run_id}: the webhook was already notified")
            return
        status = notify_webhook(webhook, webhook_payload(failures))
        store.mark_notified(run_id, status)
        log = context.log.info if status.startswith("2") else context.log.warning
        log(f"run {run_id}: webhook {safe_webhook_url(webhook)} answered {status}")

    return run_failure_sensor
