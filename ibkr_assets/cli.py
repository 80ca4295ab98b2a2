"""``ibkr-assets``: the project's command line.

``ibkr-assets demo`` materializes every strategy's whole graph (market data to portfolio) over
the last few trading sessions on the embedded default (no services), then prints the signals,
the portfolio and where the results, lineage rows and artifacts are. ``ibkr-assets backfill``
does the same for a date range of one strategy, as one fast run with a progress bar.
``ibkr-assets verify`` checks that a strategy's record for a date range is true.
``ibkr-assets serve`` serves the read-only lineage and decision viewer.

Longer than most modules: four commands share their argument checks and the summaries they
print; the work itself lives in the modules they call.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import logging
import os
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from ibkr_assets.dagster_home import write_instance_config
from ibkr_assets.performance_report import print_performance

NEW_YORK = ZoneInfo("America/New_York")


def last_closed_sessions(
    count: int, calendar: str, now: dt.datetime | None = None
) -> list[dt.date]:
    """The ``count`` most recent sessions whose close (16:00 New York) has passed."""
    from ibkr_assets.domain.calendar import last_session_on_or_before, sessions_between

    now = (now or dt.datetime.now(NEW_YORK)).astimezone(NEW_YORK)
    day = now.date() if now.time() >= dt.time(16, 0) else now.date() - dt.timedelta(days=1)
    end = last_session_on_or_before(day, calendar)
    return sessions_between(end - dt.timedelta(days=count * 2 + 10), end, calendar)[-count:]


def _use_dagster_instance() -> Path:
    """The instance folder this command's runs go to (``DAGSTER_HOME``, else the repository's
    ``dagster.yaml`` here, else ``./.dagster_home`` with the embedded configuration)."""
    # Dagster then hands a step's asset events to the event log as one batch, which the embedded
    # deployment's storage writes in one transaction; Dagster reads this from the environment only.
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = Path.cwd() if (Path.cwd() / "dagster.yaml").is_file() else Path.cwd() / ".dagster_home"
    from ibkr_assets.settings import load_settings

    write_instance_config(home, load_settings().dagster_event_log)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _open_instance():
    """The Dagster instance, its storage created while holding a lock in its folder: two
    commands started together on a new ``DAGSTER_HOME`` would otherwise both create its tables."""
    import fcntl

    import dagster as dg

    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".ibkr_assets.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)  # every storage is open (and created) before the lock goes
    return instance


QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _quiet_dagster_warnings() -> None:
    """Hide Dagster's beta/preview notices from the command's output (they are not for users)."""
    import warnings

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def demo(args: argparse.Namespace) -> int:
    home = _use_dagster_instance()
    _quiet_dagster_warnings()

    from ibkr_assets.definitions import build_definitions
    from ibkr_assets.runs import failed_partitions, run_workflow
    from ibkr_assets.settings import load_settings

    settings = load_settings()
    defs = build_definitions()
    chosen = _chosen_strategies(args.strategy, args.symbols, all_by_default=True)
    if isinstance(chosen, str):
        print(f"error: {chosen}", file=sys.stderr)
        return 2
    plans = []
    for strategy, symbols in chosen:
        days = last_closed_sessions(args.days, strategy.schedule.calendar)
        unknown = _unknown_symbols(strategy, symbols, days[-1])
        if unknown:
            for message in unknown:
                print(f"error: {message}", file=sys.stderr)
            return 2
        plans.append((strategy, symbols, days))
    instance = _open_instance()
    print(f"Dagster instance: {home}")
    from ibkr_assets.dead_runs import fail_dead_runs

    fail_dead_runs(instance)  # runs a killed command left STARTED are marked failed
    ok = True
    for strategy, symbols, days in plans:
        print(
            f"\nStrategy '{strategy.id}': the trading workflow (market data to order, then the "
            f"portfolio) for {', '.join(symbols)}"
        )
        print(
            f"over {len(days)} sessions {days[0]} .. {days[-1]} "
            f"(source: {strategy.market_data.source})\n"
        )
        outcomes = run_workflow(
            defs, instance, strategy.id, symbols, days[0], days[-1], run_config=QUIET_RUN_CONFIG
        )
        _print_outcomes(outcomes)
        rows = _lineage_rows(settings, [o.run_id for o in outcomes])
        failed = failed_partitions(outcomes, rows or [])
        _print_failures(failed)
        ok = ok and not failed and all(o.success for o in outcomes)
        if rows is not None:
            _print_results(settings, strategy, rows, failed)
    _print_locations(settings)
    return 0 if ok else 1


def _print_outcomes(outcomes) -> None:
    """One line per run, then one line per failed step: its root cause."""
    for outcome in outcomes:
        what = ", ".join(outcome.symbols) if outcome.symbols else "portfolio"
        print(
            f"  {outcome.job} [{what}]: run {outcome.run_id} {'ok' if outcome.success else 'FAILED'}"
        )
        for error in outcome.errors:
            print(f"    {error}")


def _lineage_rows(settings, run_ids: list[str]) -> list[dict] | None:
    """The lineage rows of these runs, or None (and a one-line reason) when they cannot be read."""
    from ibkr_assets.errors import describe_exception
    from ibkr_assets.redaction import redact_text
    from ibkr_assets.storage.lineage_store import LineageStore

    try:
        store = LineageStore(settings.lineage_url)
        return [r for run_id in run_ids for r in store.lineage_rows(execution_id=run_id)]
    except Exception as exc:  # the database may be down: say so, in one line
        print(
            f"\nLineage rows not readable from {redact_text(settings.lineage_url)}: "
            f"{describe_exception(exc)}"
        )
        return None


def _print_failures(grouped: dict[str, list[str]], shown: int = 6) -> int:
    """Failed partitions grouped by cause (``failed_partitions``), one line per cause and one
    for its partitions; returns how many failed."""
    if grouped:
        print("\nFailed partitions, by cause:")
    for cause, keys in grouped.items():
        more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
        print(f"  {cause}")
        print(f"    {len(keys)} partition(s): {', '.join(keys[:shown])}{more}")
    return sum(len(keys) for keys in grouped.values())


def _chosen_strategies(strategy_id: str | None, symbols_arg: str | None, all_by_default: bool):
    """``[(strategy, symbols)]`` for ``--strategy``/``--symbols``, or an error message."""
    from ibkr_assets.strategies.config import load_strategies

    strategies = load_strategies()
    ids = ", ".join(s.id for s in strategies)
    if strategy_id is not None:
        strategies = [s for s in strategies if s.id == strategy_id]
        if not strategies:
            return f"--strategy {strategy_id!r} is not in the strategies file (strategies: {ids})"
    elif len(strategies) > 1 and not all_by_default:
        return f"the strategies file has several strategies: choose one with --strategy ({ids})"
    if symbols_arg is None:
        return [(s, list(s.symbols)) for s in strategies]
    if len(strategies) > 1:
        return f"--symbols needs --strategy (strategies: {ids})"
    (strategy,) = strategies
    wanted = [s.strip().upper() for s in symbols_arg.split(",") if s.strip()]
    outside = [s for s in wanted if s not in strategy.symbols]
    if not wanted or outside:
        return (
            f"--symbols {', '.join(outside) or '(none)'}: not symbols of strategy "
            f"{strategy.id!r} ({', '.join(strategy.symbols)}); add them to the strategies file first"
        )
    return [(strategy, wanted)]


def backfill(args: argparse.Namespace) -> int:
    """Materialize a date range for some or all symbols as one fast run, with a progress bar."""
    home = _use_dagster_instance()
    _quiet_dagster_warnings()
    import threading
    import uuid

    from tqdm import tqdm

    from ibkr_assets.definitions import build_definitions
    from ibkr_assets.domain.calendar import sessions_between
    from ibkr_assets.partitions import MAX_PARTITIONS, start_date
    from ibkr_assets.runs import run_workflow
    from ibkr_assets.settings import load_settings

    settings = load_settings()
    defs = build_definitions()
    start, end = dt.date.fromisoformat(args.start), dt.date.fromisoformat(args.end)
    chosen = _chosen_strategies(args.strategy, args.symbols, all_by_default=False)
    if isinstance(chosen, str):
        print(f"error: {chosen}", file=sys.stderr)
        return 2
    ((strategy, symbols),) = chosen
    problems = []
    if end < start:
        problems.append(f"--end {end} is before --start {start}")
    if start < dt.date.fromisoformat(start_date()):
        problems.append(
            f"--start {start} is before the first partition {start_date()} (IBKR_ASSETS_START_DATE)"
        )
    if end > dt.date.today():
        problems.append(f"--end {end} is in the future")
    weekdays = sum(
        1 for i in range((end - start).days + 1) if (start + dt.timedelta(i)).weekday() < 5
    )
    if weekdays * len(symbols) > MAX_PARTITIONS:
        problems.append(
            f"{weekdays} days x {len(symbols)} symbols exceeds {MAX_PARTITIONS:,} partitions"
        )
    if not problems:
        problems += _unknown_symbols(strategy, symbols, end)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    sessions = sessions_between(start, end, strategy.schedule.calendar)
    # date partitions are weekdays: start and end must be weekdays for a range of partition keys
    while start.weekday() >= 5:
        start += dt.timedelta(days=1)
    while end.weekday() >= 5:
        end -= dt.timedelta(days=1)
    instance = _open_instance()
    token = uuid.uuid4().hex[:12]
    total = weekdays * len(symbols) * 7 + weekdays  # 7 per-symbol assets, one portfolio per date
    print(f"Dagster instance: {home}")
    from ibkr_assets.dead_runs import fail_dead_runs

    fail_dead_runs(instance)  # runs a killed command left STARTED are marked failed
    print(
        f"Backfilling strategy '{strategy.id}' ({', '.join(symbols)}) from {start} to {end}: {weekdays} days "
        f"({len(sessions)} sessions) x {len(symbols)} symbols as one run, then the portfolio"
    )
    done: dict = {}

    def work() -> None:
        try:
            done["outcomes"] = run_workflow(
                defs,
                instance,
                strategy.id,
                symbols,
                start,
                end,
                run_config=QUIET_RUN_CONFIG,
                tags={"ibkr_assets/backfill": token},
            )
        except Exception as exc:  # raised again below, in the command's thread
            done["error"] = exc

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    if args.no_progress:
        worker.join()
    else:
        counted = _MaterializationCount(instance, token)
        with tqdm(total=total, unit="materialization") as bar:
            while worker.is_alive():
                worker.join(timeout=1.0)
                bar.update(counted() - bar.n)
            bar.update(counted() - bar.n)
    if "error" in done:
        raise done["error"]
    outcomes = done["outcomes"]
    _print_outcomes(outcomes)
    failed = _print_summary(settings, outcomes)
    return 0 if not failed and all(o.success for o in outcomes) else 1


class _MaterializationCount:
    """The materializations a backfill's runs have written so far. Each call reads only the
    events stored since the last one (a cursor per run): the progress bar polls while the run
    works in the same process, and re-reading every event each time slowed the run down."""

    def __init__(self, instance, token: str) -> None:
        self.instance, self.token = instance, token
        self.cursors: dict[str, str] = {}
        self.count = 0

    def __call__(self) -> int:
        import dagster as dg

        runs = self.instance.get_runs(
            filters=dg.RunsFilter(tags={"ibkr_assets/backfill": self.token})
        )
        for run in runs:
            new = self.instance.get_records_for_run(
                run.run_id,
                cursor=self.cursors.get(run.run_id),
                of_type=dg.DagsterEventType.ASSET_MATERIALIZATION,
            )
            self.count += len(new.records)
            self.cursors[run.run_id] = new.cursor
        return self.count


def _print_summary(settings, outcomes) -> int:
    """Counts, failures by cause, signals, orders and the last portfolio; returns the number
    of failed partitions (per-symbol and portfolio dates)."""
    from ibkr_assets.redaction import redact_text
    from ibkr_assets.runs import failed_partitions

    run_ids = [o.run_id for o in outcomes]
    rows = _lineage_rows(settings, run_ids) or []
    grouped = failed_partitions(outcomes, rows)
    failed = {k for keys in grouped.values() for k in keys}
    planned = {k for o in outcomes for k in o.partition_keys if "|" in k}
    closed = sum(
        1 for r in rows if r["step_name"] == "market_data" and r["status"] == "market_closed"
    )
    print(f"\nPartitions: {len(planned - failed)} done, {len(planned & failed)} failed"
          f" ({closed} market closed)")  # fmt: skip
    failures = _print_failures(grouped)
    signals = _counts(rows, "trading_signal", "action")
    orders = _counts(rows, "order", "outcome")
    if signals:
        print(f"Signals: {signals}")
    if orders:
        print(f"Orders: {orders}")
    blocked = kill_switch_blocks(rows)
    if blocked:
        print(f"Kill switch: blocked {blocked} order(s)")
    snaps = [r for r in rows if _stored_snapshot(r, failed)]
    if snaps:
        last = max(snaps, key=lambda r: r["partition_key"])["output_data"]
        print(
            f"Portfolio {last['date']}: equity {last['equity']:,.2f}, realized P&L {last['realized_pnl']:,.2f}, "
            f"unrealized {last['unrealized_pnl']:,.2f}, {len(last['positions'])} position(s)"
        )
        for strategy_id in sorted({r["strategy_id"] for r in snaps}):
            print_performance(
                settings.lineage_url, strategy_id, [r["partition_key"] for r in snaps]
            )
    print(
        f"Lineage: {redact_text(settings.lineage_url)} (workflow_lineage, artifacts; execution ids {', '.join(run_ids)})"
    )
    return failures


def _stored_snapshot(row: dict, failed: set[str]) -> bool:
    """A successful portfolio row of a date whose run did not fail it."""
    return (
        row["step_name"] == "portfolio_snapshot"
        and row["status"] == "success"
        and row["partition_key"] not in failed
    )


def _counts(rows: list[dict], step: str, field: str) -> str:
    """``"BUY 2, HOLD 5"``: how often each value of ``output_data[field]`` occurs in ``step``'s
    rows (None left out: market-closed and failed partitions have none)."""
    from collections import Counter

    found = Counter((r.get("output_data") or {}).get(field) for r in rows if r["step_name"] == step)
    return ", ".join(f"{k} {v}" for k, v in sorted((k, v) for k, v in found.items() if k))


def kill_switch_blocks(rows: list[dict]) -> int:
    """How many ``order`` rows the kill switch decided: status ``blocked`` or not, the row's
    error or its output's reason starts with "kill switch"."""
    return sum(
        1
        for r in rows
        if r["step_name"] == "order"
        and any(
            str(text or "").lower().startswith("kill switch")
            for text in (r.get("error"), (r.get("output_data") or {}).get("reason"))
        )
    )


def _unknown_symbols(strategy, symbols: list[str], day: dt.date) -> list[str]:
    """Messages for symbols that do not resolve; they never become partitions. Resolved ones
    are cached in the ``symbols`` table (with the IBKR contract id when the source is IBKR).

    A symbol whose data the source has but cannot parse (a CSV file missing a column, an empty
    file) is known: its partitions fail in the run with that cause, the others still run.
    """
    from ibkr_assets.domain.bars import BarFormatError
    from ibkr_assets.resources import build_resources
    from ibkr_assets.settings import load_settings
    from ibkr_assets.symbols import resolve_strategy_symbols

    settings = load_settings()
    # Outside a run, resources get their EnvVar values (database URLs) resolved here.
    deployment = build_resources(settings)["market_data_source"].process_config_and_initialize()
    source = deployment.source_for(strategy)
    errors: dict[str, str] = {}
    for symbol in symbols:  # one by one, so one bad file does not hide the others' answers
        try:
            errors.update(resolve_strategy_symbols(settings, strategy, source, [symbol])[1])
        except BarFormatError:
            continue
    return [f"strategy {strategy.id!r}: {message}" for message in errors.values()]


def _print_results(settings, strategy, rows: list[dict], failed: dict[str, list[str]]) -> None:
    """The signals table and the last portfolio of these rows (``failed``: causes' partitions)."""
    from ibkr_assets.storage.lineage_store import LineageStore

    store = LineageStore(settings.lineage_url)
    run_ids = {r["execution_id"] for r in rows}
    artifacts = [a for run_id in run_ids for a in store.artifact_rows(execution_id=run_id)]
    cause_of = {key: cause for cause, keys in failed.items() for key in keys}
    by_partition: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_partition.setdefault(row["partition_key"], {})[row["step_name"]] = row
    print(f"\nSignals ({strategy.analyst.provider} analyst):")
    print(
        f"  {'partition':<18} {'close':>9} {'rsi_14':>7} {'signal':<13} {'conf':>4} {'R:R':>5}  note"
    )
    for key in sorted(k for k in {*by_partition, *cause_of} if "|" in k):
        steps = by_partition.get(key, {})
        latest = steps.get("indicators", {}).get("output_data", {}).get("latest") or {}
        market = steps.get("market_data", {}).get("output_data", {})
        signal = steps.get("trading_signal", {})
        out = signal.get("output_data", {})
        reasoning = (out.get("reasoning") or "").split(": ", 1)[-1]
        order_out = steps.get("order", {}).get("output_data", {})
        if out.get("is_actionable") and order_out.get("outcome") == "none":
            reasoning = order_out.get("reason", reasoning)
        note = "; ".join(out.get("rejections") or []) or out.get("reason") or reasoning
        if not signal or key in cause_of:
            note = cause_of.get(key, "not reached")
        action = out.get("action") or signal.get("status", "-")
        placed = steps.get("order", {}).get("output_data", {})
        order_text = (
            placed.get("outcome", "-")
            if placed.get("outcome") != "placed"
            else f"{placed['decision']}"
        )
        print(
            f"  {key:<18} {_fmt(market.get('latest_price')):>9} {_fmt(latest.get('rsi_14')):>7} "
            f"{action:<13} {out.get('confidence', '-'):>4} {_fmt(out.get('risk_reward')):>5} {order_text:<8} {note[:80]}"
        )
    snaps = [r for r in rows if _stored_snapshot(r, set(cause_of))]
    if snaps:
        last = max(snaps, key=lambda r: r["partition_key"])["output_data"]
        held = ", ".join(f"{p['symbol']} {p['quantity']}" for p in last["positions"]) or "none"
        print(
            f"\nPortfolio {last['date']} ({strategy.broker.kind} broker; past sessions use the simulator): "
            f"equity {last['equity']:,.2f} = cash {last['cash']:,.2f} + positions {last['market_value']:,.2f}; "
            f"realized P&L {last['realized_pnl']:,.2f}, unrealized {last['unrealized_pnl']:,.2f}; held: {held}"
        )
        print_performance(settings.lineage_url, strategy.id, [r["partition_key"] for r in snaps])
    print(
        f"  {len(rows)} workflow_lineage rows and {len(artifacts)} artifacts rows from these runs"
    )
    blocked = kill_switch_blocks(rows)
    if blocked:
        print(f"Kill switch: blocked {blocked} order(s)")


def _print_locations(settings) -> None:
    from ibkr_assets.redaction import redact_text

    where = (
        settings.object_root_path
        if settings.object_store == "local"
        else f"s3://{settings.s3_bucket}"
    )
    print(
        "\nObjects (trading-data/{strategy}/{symbol}/..., "
        f"ml-experiments/{{strategy}}/trading_workflow_{{symbol}}/...): {where}"
    )
    print(f"Lineage database: {redact_text(settings.lineage_url)}")
    print(
        f"MLflow tracking store: {redact_text(settings.tracking_uri)}  "
        "(experiments {strategy}/trading_workflow_{symbol})"
    )
    print(f"  open it with: mlflow ui --backend-store-uri {redact_text(settings.tracking_uri)}")
    home = os.environ.get("DAGSTER_HOME", ".")
    print(
        f"Browse runs, partitions and the lineage graph: DAGSTER_HOME={home} dagster dev"
        "  (http://127.0.0.1:3000)"
    )


def verify(args: argparse.Namespace) -> int:
    """Check the record of one strategy and date range; 0 when it holds, 1 on any discrepancy."""
    _use_dagster_instance()
    _quiet_dagster_warnings()

    from ibkr_assets.settings import load_settings
    from ibkr_assets.verification.report import format_table
    from ibkr_assets.verification.run import verify as run_verify

    settings = load_settings()
    try:
        start, end = dt.date.fromisoformat(args.start), dt.date.fromisoformat(args.end)
    except ValueError:
        print(f"error: --start/--end must be dates like 2025-03-03: {args.start}, {args.end}",
              file=sys.stderr)  # fmt: skip
        return 2
    chosen = _chosen_strategies(args.strategy, None, all_by_default=False)
    if isinstance(chosen, str):
        print(f"error: {chosen}", file=sys.stderr)
        return 2
    if end < start:
        print(f"error: --end {end} is before --start {start}", file=sys.stderr)
        return 2
    ((strategy, _),) = chosen
    instance = _open_instance()
    result = run_verify(
        settings, strategy, start, end, instance=instance, delete_orphans=args.delete_orphans
    )
    print(format_table(result))
    return 0 if result.ok else 1


def serve(args: argparse.Namespace) -> int:
    """Serve the read-only viewer (JSON API, OpenAPI at /docs) until interrupted."""
    from ibkr_assets.settings import load_settings
    from ibkr_assets.viewer.server import ServeRefused, check_bind
    from ibkr_assets.viewer.server import serve as run_server

    settings = load_settings()
    try:
        check_bind(args.host, settings)
    except ServeRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    token = "required" if settings.viewer_token else "none (loopback only)"
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"Viewer (read-only): http://{host}:{args.port}  API docs: /docs  token: {token}")
    run_server(settings, args.host, args.port)
    return 0


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ibkr-assets", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser(
        "demo", help="run the main job on the embedded default and print results"
    )
    p_demo.add_argument("--strategy", help="a strategy id (default: every strategy in the file)")
    p_demo.add_argument(
        "--symbols", help="comma-separated symbols of --strategy (default: all its symbols)"
    )
    p_demo.add_argument(
        "--days", type=int, default=5, help="trading sessions to materialize (default 5)"
    )
    p_demo.set_defaults(func=demo)
    p_back = sub.add_parser(
        "backfill",
        help="materialize a date range as one fast run (past sessions use the simulator)",
    )
    p_back.add_argument("--start", required=True, help="first date, YYYY-MM-DD")
    p_back.add_argument("--end", required=True, help="last date, YYYY-MM-DD")
    p_back.add_argument(
        "--strategy", help="a strategy id (needed when the strategies file has several)"
    )
    p_back.add_argument(
        "--symbols", help="comma-separated symbols of the strategy (default: all its symbols)"
    )
    p_back.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_back.set_defaults(func=backfill)
    p_verify = sub.add_parser(
        "verify",
        help="check a strategy's lineage, objects, Dagster events, orders and portfolio agree",
    )
    p_verify.add_argument("--start", required=True, help="first session, YYYY-MM-DD")
    p_verify.add_argument("--end", required=True, help="last session, YYYY-MM-DD")
    p_verify.add_argument(
        "--strategy", help="a strategy id (needed when the strategies file has several)"
    )
    p_verify.add_argument(
        "--delete-orphans",
        action="store_true",
        help="delete the objects no lineage row references (listed either way)",
    )
    p_verify.set_defaults(func=verify)
    p_serve = sub.add_parser("serve", help="serve the read-only lineage and decision viewer")
    p_serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p_serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p_serve.set_defaults(func=serve)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # one clear line, never a traceback
        from ibkr_assets.settings import ConfigError
        from ibkr_assets.strategies.config import StrategyConfigError

        if isinstance(exc, (ConfigError, StrategyConfigError)):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        from ibkr_assets.errors import describe_exception

        print(f"error: {describe_exception(exc)}", file=sys.stderr)
        return 1


def run() -> None:
    """The ``ibkr-assets`` program: ``main``, then exit without a last garbage collection.

    At exit Python's collector would walk and free the whole heap of the run (a second or two
    after a range run); frozen, it is left for the operating system to reclaim at once.
    """
    code = main()
    gc.freeze()
    raise SystemExit(code)


if __name__ == "__main__":
    run()
