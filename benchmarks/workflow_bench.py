"""The whole workflow over a range: one single-run backfill against one run per partition.

5 sample symbols (AAPL, MSFT, NVDA, TSLA, AMZN) x the last ``round(20 * scale)`` XNYS sessions
ending on a fixed day (2025-06-30), so runs are comparable; ``--scale 2`` doubles the days. It
runs one strategy ``bench`` of these symbols with the strategy defaults (sample bars, the rules
analyst, the paper broker) on the embedded default deployment: SQLite, the local
object store and a SQLite MLflow store. Each measurement gets its own fresh temporary
``IBKR_ASSETS_HOME`` and ``DAGSTER_HOME`` (with the ``dagster.yaml`` that ``ibkr-assets`` writes
with ``IBKR_ASSETS_DAGSTER_EVENT_LOG=pooled``, and once more with Dagster's own SQLite storage, the
default, side by side); configuration inherited from the calling environment is dropped, so the
other defaults apply.

- (a) single run: one Python process builds the definitions and calls ``run_workflow`` for the
  range (one run over every ``date|symbol`` partition, then one portfolio run), then exits as
  the ``ibkr-assets`` program does (heap frozen, so no last collection of it). The wall clock
  is taken from outside, process start, imports and exit included, as a user pays them.
- (b) one run per partition: each ``date|symbol`` partition in its own process executing
  ``bench_workflow_job``, one after another, as Dagster's default run launcher starts a
  process per run. Every such process pays interpreter start, imports and Dagster/MLflow setup
  (several seconds), so only a sample of partitions (first, last and evenly spaced between) is
  run and its mean is the per-partition estimate. This is a lower bound on what a launched run
  costs: the steps run in the run's process (Dagster's default executor would start a process
  per step), and the per-date portfolio runs that (a) includes are left out.
- (a) again with ``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true``, shown without a
  target: Dagster then writes one "materialization planned" event per asset instead of one per
  partition (about a tenth of (a)'s time), at the price Dagster documents: the partitions of a
  failed run are not marked failed.
- chart floor: the range's charts alone (a daily and a weekly chart per session partition, from
  the same 200-bar sample windows and indicators the assets use) with ``render_many`` on every
  core, in this process after an untimed warm-up render. (a) runs ``PAIRS`` times, each between
  two floor measurements, and (a) / floor is the median of the paired ratios (each (a) over the
  mean of the floors around it): the machine's speed drifts by more than the margins measured.

Before each timed workflow measurement an untimed process materializes one partition outside
the range (the session before it), so the timed runs find the deployment's stores created and
migrated, as they are after the first run of a deployment; the cost of that first run is
reported without a target. Per-partition figures divide by symbols x sessions: weekday
holidays inside the range are partitions too (market closed, nothing drawn or traded), and
their small cost in (a) is charged to the sessions.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ibkr_assets.charts.render import ChartSpec, render_chart, render_many
from ibkr_assets.dagster_home import write_instance_config
from ibkr_assets.domain.bars import BAR_COLUMNS
from ibkr_assets.domain.calendar import sessions_between
from ibkr_assets.domain.indicators import compute_indicators
from ibkr_assets.domain.resample import weekly_bars
from ibkr_assets.partitions import DEFAULT_START_DATE
from ibkr_assets.resources.charts import ChartsResource
from ibkr_assets.settings import ENV_VARS
from ibkr_assets.sources.sample import SampleBarSource
from ibkr_assets.strategies.config import MarketDataConfig

SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN"]
DAYS = 20
END = dt.date(2025, 6, 30)
CALENDAR = "XNYS"
SAMPLE = 6  # partitions run in their own process for (b)
TARGET_RATIO = 10.0  # (b) / (a), per partition
TARGET_CHART_FACTOR = 1.5  # (a) / chart floor, per partition
PAIRS = 3  # (a) runs, each between two floor measurements
# Dagster's switch for one ASSET_MATERIALIZATION_PLANNED event per asset in a single-run range
PLANNED_SUBSET_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"

_REPO = Path(__file__).resolve().parents[1]
_QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

# Shared head of both snippets: what a code location load does (import the definitions module,
# which builds them), then the instance from DAGSTER_HOME.
_PRELUDE = """
import json, sys, time, warnings
started = time.perf_counter()
import dagster as dg
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
from ibkr_assets.definitions import build_definitions
defs = build_definitions()
instance = dg.DagsterInstance.get()
quiet = json.loads(sys.argv[1])
loaded = time.perf_counter()
"""

_SINGLE_RUN = (
    _PRELUDE
    + """
import datetime as dt
from ibkr_assets.runs import run_workflow
symbols = sys.argv[2].split(",")
start, end = dt.date.fromisoformat(sys.argv[3]), dt.date.fromisoformat(sys.argv[4])
outcomes = run_workflow(defs, instance, "bench", symbols, start, end, run_config=quiet)
errors = [f"{o.job}: {e}" for o in outcomes for e in (o.errors or ([] if o.success else ["failed"]))]
print(json.dumps({"setup": loaded - started, "runs": time.perf_counter() - loaded, "errors": errors}))
import gc; gc.freeze()  # as the ibkr-assets program exits: no last collection of the whole heap
"""
)

_ONE_PARTITION = (
    _PRELUDE
    + """
from ibkr_assets.partitions import symbols_partition_name
key = sys.argv[2]
symbol = key.split("|")[1]
if symbol not in instance.get_dynamic_partitions(symbols_partition_name("bench")):
    instance.add_dynamic_partitions(symbols_partition_name("bench"), [symbol])
result = defs.resolve_job_def("bench_workflow_job").execute_in_process(
    instance=instance, partition_key=key, run_config=quiet, raise_on_error=False
)
errors = [
    f"{e.step_key}: {e.step_failure_data.error.message.strip()}"
    for e in result.all_events
    if e.is_step_failure and e.step_failure_data.error
] or ([] if result.success else ["run failed"])
print(json.dumps({"setup": loaded - started, "runs": time.perf_counter() - loaded, "errors": errors}))
"""
)


def _row(
    case: str, value: float, unit: str, target: str | None = None, ok: bool | None = None
) -> dict:
    return {
        "section": "workflow",
        "case": case,
        "value": value,
        "unit": unit,
        "target": target,
        "ok": ok,
    }


def _log(message: str) -> None:
    print(f"  workflow: {message}", file=sys.stderr, flush=True)


def _sessions(days: int) -> list[dt.date]:
    """The last ``days + 1`` sessions ending at END: the warm-up session, then the range."""
    span = dt.timedelta(days=2 * days + 14)
    sessions = sessions_between(END - span, END, CALENDAR)[-(days + 1) :]
    if len(sessions) != days + 1:
        raise AssertionError(f"expected {days + 1} {CALENDAR} sessions, got {len(sessions)}")
    return sessions


def _environment(folder: Path, first_day: dt.date, event_log: str = "pooled") -> dict[str, str]:
    """This process's environment without the project's settings, pointed at ``folder``, with
    the embedded deployment's Dagster instance on ``event_log`` (see ``instance_config``)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ENV_VARS
        and not k.startswith(("IBKR_ASSETS_", "MLFLOW_", "DAGSTER_"))
        and k != "PYTHONPATH"
    }
    write_instance_config(folder / "dagster", event_log)
    strategies = folder / "strategies.yaml"
    strategies.write_text(
        json.dumps({"strategies": [{"id": "bench", "symbols": SYMBOLS}]})  # JSON is YAML
    )
    env |= {
        "IBKR_ASSETS_STRATEGIES_FILE": str(strategies),
        "IBKR_ASSETS_HOME": str(folder / "home"),
        "DAGSTER_HOME": str(folder / "dagster"),
        "MLFLOW_LOGGING_LEVEL": "WARNING",
        "DAGSTER_EVENT_BATCH_SIZE": "1000",  # as the ibkr-assets command sets it
        "PYTHONPATH": os.pathsep.join(p for p in (str(_REPO), os.environ.get("PYTHONPATH")) if p),
    }
    if first_day < dt.date.fromisoformat(DEFAULT_START_DATE):
        env["IBKR_ASSETS_START_DATE"] = first_day.isoformat()  # date partitions must reach it
    return env


def _python(snippet: str, args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, dict]:
    """Run ``snippet`` in a new interpreter; its wall-clock seconds and its JSON report."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", snippet, json.dumps(_QUIET), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-20:])
        raise RuntimeError(f"benchmark process exited with {done.returncode}:\n{tail}")
    report = json.loads(lines[-1])
    if report["errors"]:
        raise RuntimeError("workflow failed: " + "; ".join(report["errors"][:5]))
    return seconds, report


def _sample(items: list[str], k: int) -> list[str]:
    """``k`` items: the first, the last and evenly spaced between (all of them if fewer)."""
    if len(items) <= k:
        return list(items)
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


def _single_run(
    warmup_day: dt.date,
    sessions: list[dt.date],
    extra_env: dict[str, str] | None = None,
    event_log: str = "pooled",
) -> tuple[float, float, dict]:
    with tempfile.TemporaryDirectory(prefix="workflow-bench-") as name:
        folder = Path(name)
        env = {**_environment(folder, warmup_day, event_log), **(extra_env or {})}
        _log(f"(a) warm-up: first run of a fresh deployment, {SYMBOLS[0]} {warmup_day}")
        first, _ = _python(_ONE_PARTITION, [f"{warmup_day}|{SYMBOLS[0]}"], env, folder)
        _log(f"(a) single run over {len(SYMBOLS)} symbols x {sessions[0]} .. {sessions[-1]}")
        args = [",".join(SYMBOLS), sessions[0].isoformat(), sessions[-1].isoformat()]
        seconds, report = _python(_SINGLE_RUN, args, env, folder)
        _log(f"(a) {seconds:.1f} s (setup {report['setup']:.1f} s, runs {report['runs']:.1f} s)")
    return seconds, first, report


def _per_partition(warmup_day: dt.date, keys: list[str]) -> tuple[list[float], list[dict]]:
    with tempfile.TemporaryDirectory(prefix="workflow-bench-") as name:
        folder = Path(name)
        env = _environment(folder, warmup_day)
        _log(f"(b) warm-up: first run of a fresh deployment, {SYMBOLS[0]} {warmup_day}")
        _python(_ONE_PARTITION, [f"{warmup_day}|{SYMBOLS[0]}"], env, folder)
        times, reports = [], []
        for i, key in enumerate(keys, 1):
            seconds, report = _python(_ONE_PARTITION, [key], env, folder)
            _log(f"(b) {i}/{len(keys)} {key}: {seconds:.1f} s (setup {report['setup']:.1f} s)")
            times.append(seconds)
            reports.append(report)
    return times, reports


def _chart_floor(sessions: list[dt.date]) -> tuple[float, int]:
    """Seconds to render the range's daily and weekly charts on every core."""
    source = SampleBarSource(CALENDAR)
    lookback = MarketDataConfig().lookback_bars
    charts = ChartsResource()  # the assets' defaults: 120 bars shown, 1200 x 900 px
    jobs = []
    for day in sessions:
        for symbol in SYMBOLS:
            daily = compute_indicators(source.fetch_bars(symbol, day, lookback))
            weekly = compute_indicators(weekly_bars(daily[BAR_COLUMNS]))
            for timeframe, frame in (("daily", daily), ("weekly", weekly)):
                spec = ChartSpec(
                    symbol=symbol,
                    as_of=day,
                    timeframe=timeframe,
                    bars_shown=charts.bars_shown,
                    width_px=charts.width_px,
                    height_px=charts.height_px,
                )
                jobs.append((frame, spec))
    render_chart(*jobs[0])  # warm-up: imports, fonts
    cpus = os.cpu_count() or 1
    _log(f"chart floor: {len(jobs)} charts with render_many on {cpus} processes")
    started = time.perf_counter()
    render_many(jobs, workers=cpus)
    return time.perf_counter() - started, cpus


def run(scale: float) -> list[dict]:
    days = max(1, round(DAYS * scale))
    warmup_day, *sessions = _sessions(days)
    partitions = len(SYMBOLS) * len(sessions)
    weekdays = sum(
        1
        for i in range((sessions[-1] - sessions[0]).days + 1)
        if (sessions[0] + dt.timedelta(days=i)).weekday() < 5
    )
    closed = weekdays - len(sessions)
    keys = [f"{day}|{symbol}" for day in sessions for symbol in SYMBOLS]
    sample = _sample(keys, SAMPLE)

    # (a) and the floor are compared, and this machine's speed drifts by more than the margins
    # being measured: each (a) is paired with the floors measured right before and after it,
    # and the comparison is the median of PAIRS such pairs.
    first_floor, cpus = _chart_floor(sessions)
    floor_seconds_each, singles = [first_floor], []
    for _ in range(PAIRS):
        singles.append(_single_run(warmup_day, sessions))
        floor_seconds_each.append(_chart_floor(sessions)[0])
    factors = [
        run_seconds / ((floor_seconds_each[i] + floor_seconds_each[i + 1]) / 2)
        for i, (run_seconds, _, _) in enumerate(singles)
    ]
    single_seconds, first_seconds, single_report = sorted(singles, key=lambda r: r[0])[
        len(singles) // 2
    ]
    floor_seconds = statistics.median(floor_seconds_each)
    per_times, per_reports = _per_partition(warmup_day, sample)
    _log("(a) again, with one planned event per asset instead of one per partition")
    subset_seconds, _, _ = _single_run(warmup_day, sessions, {PLANNED_SUBSET_ENV: "true"})
    _log("(a) again, on Dagster's own SQLite event log (the default configuration)")
    own_seconds, _, _ = _single_run(warmup_day, sessions, event_log="dagster")

    size = f"{len(SYMBOLS)} symbols x {len(sessions)} sessions"
    single = single_seconds / partitions
    per = statistics.mean(per_times)
    floor = floor_seconds / partitions
    ratio = per / single
    factor = statistics.median(factors)
    walls = ", ".join(f"{r[0]:.1f}" for r in singles)
    holidays = f", +{closed * len(SYMBOLS)} market-closed" if closed else ""
    setup = statistics.mean(r["setup"] for r in per_reports)
    return [
        _row(
            f"(a) single run, {size} ({partitions} partitions{holidays}) + portfolio: median "
            f"of {PAIRS} (walls {walls} s, incl. ~{single_report['setup']:.1f} s process setup)",
            single,
            "s/partition",
        ),
        _row(
            f"(b) process per partition, in-process executor: mean of {len(per_times)} sampled "
            f"of {partitions} (min {min(per_times):.1f}, max {max(per_times):.1f} s, of which "
            f"imports + definitions {setup:.1f} s); extrapolated {per * partitions:.0f} s for the range, "
            "portfolio runs not counted",
            per,
            "s/partition",
        ),
        _row(
            "(b) / (a) per partition",
            ratio,
            "x",
            f">= {TARGET_RATIO:g}x",
            ratio >= TARGET_RATIO,
        ),
        _row(
            f"chart floor: {2 * partitions} charts (daily + weekly) with render_many "
            f"on {cpus} processes, median {floor_seconds:.1f} s of "
            + ", ".join(f"{f:.1f}" for f in floor_seconds_each)
            + " (measured around each (a))",
            floor,
            "s/partition",
        ),
        _row(
            "(a) / chart floor per partition: median of "
            + ", ".join(f"{f:.2f}" for f in factors)
            + " (each (a) over the mean of the floors before and after it)",
            factor,
            "x",
            f"<= {TARGET_CHART_FACTOR:g}x",
            factor <= TARGET_CHART_FACTOR,
        ),
        _row(
            f"(a) with {PLANNED_SUBSET_ENV}=true (Dagster then does not mark the partitions of "
            f"a failed run failed), wall {subset_seconds:.1f} s; / chart floor "
            f"{subset_seconds / floor_seconds:.2f}x",
            subset_seconds / partitions,
            "s/partition",
        ),
        _row(
            f"(a) on Dagster's own SQLite storage (the default; (a) above uses the pooled event "
            f"log, IBKR_ASSETS_DAGSTER_EVENT_LOG=pooled), wall {own_seconds:.1f} s; / chart floor "
            f"{own_seconds / floor_seconds:.2f}x",
            own_seconds / partitions,
            "s/partition",
        ),
        _row(
            "first run of a fresh deployment, one partition (untimed warm-up)", first_seconds, "s"
        ),
    ]
