"""Runs whose process died: found and marked failed when the ``ibkr-assets`` command starts.

The command runs its jobs in its own process (``execute_in_process``), where Dagster's run
monitoring cannot see a killed run: no run launcher owns it, so nothing checks its worker. A run
SIGKILLed or lost with its machine stays STARTED forever. So every run the command launches is
tagged with its host and process (``run_process_tags``), and at start ``fail_dead_runs`` marks
failed each unfinished run of this host whose process no longer exists.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import dagster as dg

HOST_TAG = "ibkr_assets/host"
PID_TAG = "ibkr_assets/pid"
PROCESS_START_TAG = "ibkr_assets/process_start"  # tells a reused pid from the original process

UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def run_process_tags() -> dict[str, str]:
    """Tags naming this process, for every run it executes in-process."""
    pid = os.getpid()
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(pid),
        PROCESS_START_TAG: _process_start(pid) or "",
    }


def fail_dead_runs(
    instance: dg.DagsterInstance, echo: Callable[[str], None] | None = print
) -> list[str]:
    """Mark failed every unfinished run of this host whose process is gone; one line per run
    (also given to ``echo``). A run that was cancelling is marked canceled instead."""
    host = socket.gethostname()
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=UNFINISHED, tags={HOST_TAG: host})
    )
    messages = []
    for record in records:
        run = record.dagster_run
        pid = int(run.tags.get(PID_TAG, "0"))
        if not pid or _is_alive(pid, run.tags.get(PROCESS_START_TAG, "")):
            continue
        run = instance.get_run_by_id(run.run_id)  # it may have ended since
        if run is None or run.status not in UNFINISHED:
            continue
        was = run.status.value
        if run.status == dg.DagsterRunStatus.CANCELING:
            outcome = "marked canceled"
            instance.report_run_canceled(run, _reason(run, was, pid, host, outcome))
        else:
            outcome = "marked failed"
            instance.report_run_failed(run, _reason(run, was, pid, host, outcome))
        storage = instance.event_log_storage
        if storage.supports_global_concurrency_limits:  # the pool slots it held (the book's)
            storage.free_concurrency_slots_for_run(run.run_id)
        messages.append(_reason(run, was, pid, host, outcome))
        if echo:
            echo(messages[-1])
    return messages


def _reason(run: dg.DagsterRun, was: str, pid: int, host: str, outcome: str) -> str:
    return (
        f"run {run.run_id} ({run.job_name}) was {was} but its process {pid} on {host} is gone "
        f"(killed or crashed): {outcome}"
    )


def _is_alive(pid: int, started: str) -> bool:
    """True while process ``pid`` exists and, when ``started`` is known, is the same process."""
    if pid == os.getpid():  # this process's own run, or an old one's that had its pid
        return bool(started) and started == _process_start(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    return not started or _process_start(pid) in (None, started)


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name in () may hold spaces
