"""A killed run does not stay STARTED: run monitoring in every shipped instance configuration,
and the command's own check of the runs whose process is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from ibkr_assets.dagster_home import instance_config, write_instance_config
from ibkr_assets.dead_runs import PID_TAG, fail_dead_runs
from ibkr_assets_tests import cli_runner

pytestmark = pytest.mark.slow  # processes killed and started

run_cli = cli_runner.run_cli  # a fixture

REPO = Path(__file__).resolve().parents[1]

# One in-process run through ibkr_assets.runs (as the backfill and demo commands run theirs)
# whose only step waits until the process is killed.
SLEEPER = """
import time
import dagster as dg
from ibkr_assets.runs import _execute

@dg.op
def wait_to_be_killed():
    time.sleep(120)

@dg.job
def sleeper():
    wait_to_be_killed()

with dg.DagsterInstance.get() as instance:
    _execute(sleeper, instance, [], {"test": "dead_runs"}, None)
"""


def _start_sleepers(home: Path, count: int) -> list[subprocess.Popen]:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return [
        subprocess.Popen([sys.executable, "-c", SLEEPER], env=env, stdout=subprocess.DEVNULL)
        for _ in range(count)
    ]


def _started_runs(instance: dg.DagsterInstance, count: int) -> dict[int, dg.DagsterRun]:
    """pid -> run, once ``count`` runs are STARTED and inside their step."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        inside = [
            r
            for r in runs
            if instance.get_records_for_run(
                r.run_id, of_type=dg.DagsterEventType.STEP_START
            ).records
        ]
        if len(inside) == count:
            return {int(r.tags[PID_TAG]): r for r in inside}
        time.sleep(0.2)
    raise AssertionError(f"{count} runs did not start in time")


def test_a_killed_run_is_marked_failed_and_a_live_one_is_left_alone(tmp_path):
    home = tmp_path / "dagster_home"
    write_instance_config(home)
    killed, alive = _start_sleepers(home, 2)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = _started_runs(instance, 2)
            os.kill(killed.pid, signal.SIGKILL)
            killed.wait(30)
            dead_run, live_run = runs[killed.pid], runs[alive.pid]
            assert instance.get_run_by_id(dead_run.run_id).status == dg.DagsterRunStatus.STARTED

            messages = fail_dead_runs(instance, echo=None)

            assert len(messages) == 1
            assert dead_run.run_id in messages[0] and f"process {killed.pid} " in messages[0]
            assert instance.get_run_by_id(dead_run.run_id).status == dg.DagsterRunStatus.FAILURE
            (failure,) = instance.get_records_for_run(
                dead_run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
            ).records
            assert f"process {killed.pid} " in failure.event_log_entry.dagster_event.message
            assert instance.get_run_by_id(live_run.run_id).status == dg.DagsterRunStatus.STARTED
            assert fail_dead_runs(instance, echo=None) == [], "a failed run is not reported again"
    finally:
        for process in (killed, alive):
            process.kill()
            process.wait(30)


def _loads_with_monitoring(config: dict, home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_resume_run_attempts == 0


def test_every_shipped_instance_configuration_monitors_runs(tmp_path):
    embedded = instance_config(str(tmp_path / "storage"))
    _loads_with_monitoring(embedded, tmp_path / "embedded")

    repository = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert repository["run_monitoring"] == embedded["run_monitoring"]
    # docker/ stores in PostgreSQL; its monitoring with its run launcher, on SQLite here.
    docker = yaml.safe_load((REPO / "docker" / "dagster.yaml").read_text())
    assert docker["run_monitoring"] == embedded["run_monitoring"]
    with_launcher = {**embedded, "run_launcher": docker["run_launcher"]}
    _loads_with_monitoring(with_launcher, tmp_path / "docker")


def test_the_backfill_command_fails_the_runs_a_killed_command_left_started(
    deployment, tmp_path, run_cli
):
    from ibkr_assets.dead_runs import HOST_TAG

    deployment()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process that no longer exists
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        left = dg.DagsterRun(job_name="momentum_workflow_job", status=dg.DagsterRunStatus.STARTED,
                             tags={HOST_TAG: __import__("socket").gethostname(), PID_TAG: str(gone.pid)})  # fmt: skip
        instance.add_run(left)
    code, out, err = run_cli(
        "backfill", "--no-progress", "--start", "2025-03-14", "--end", "2025-03-14",
        "--symbols", "AAPL",
    )  # fmt: skip
    assert code == 0, out + err
    assert left.run_id in out and str(gone.pid) in out
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        assert instance.get_run_by_id(left.run_id).status == dg.DagsterRunStatus.FAILURE
