"""The run_failure_sensor: a failed run becomes rows in ``run_failures`` and, optionally, a webhook.

The rows (one per failed step, or one run-level row) are written through ``RunFailureStore``
(``storage/run_failure_store.py``), next to the lineage rows so the lineage viewer and alerting
queries can join them.

The optional webhook receives one JSON POST per failed run. It is best-effort: an unreachable
or failing webhook is written down in ``webhook_status`` and never fails the sensor.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import dagster as dg

from ibkr_assets.redaction import mask
from ibkr_assets.storage.run_failure_store import store_for

_PAYLOAD_ERROR_CHARS = 2000


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
        store = store_for(database_url_getter())
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
