"""The record is the truth: reruns, overlapping ranges and the kill switch never rewrite history,
and every way of getting there converges to the book of one uninterrupted run.

Each scenario runs real single-run backfills (sample data, rules analyst, paper simulator) in a
home of its own (the replay rerun reruns the reference's home) and compares what a user would
audit: the orders and fills in the simulator, every portfolio snapshot row, and the sha256 of
every order object. The ranges are the fewest sessions and symbols that still hold each scenario.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets.storage.trading_tables import orders
from ibkr_assets_tests import cli_runner
from ibkr_assets_tests.book import Home, uninterrupted_home
from ibkr_assets_tests.helpers import seed_mlflow_store

pytestmark = pytest.mark.slow
run_cli = cli_runner.run_cli  # a fixture

# The smallest range that holds a whole book (sample data, rules analyst): on START both symbols
# signal BUY and share the cash; on MIDDLE both buys fill (NVDA's below its limit); on END MSFT's
# stop fills and cancels its take-profit, while NVDA is still held.
SYMBOLS = ["MSFT", "NVDA"]
START, MIDDLE, END = dt.date(2025, 3, 19), dt.date(2025, 3, 20), dt.date(2025, 3, 21)


@pytest.fixture
def homes(tmp_path, deployment, monkeypatch):
    deployment()
    made: list[Home] = []

    def make(name: str) -> Home:
        made.append(Home(tmp_path / name, monkeypatch, SYMBOLS))
        return made[-1]

    yield make
    for home in reversed(made):  # last opened, first closed: see Home.close
        home.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Iterator[tuple[Home, dict]]:
    """One uninterrupted backfill of START .. END in a home of its own, and its book: the
    reference for every scenario. The home stays open for the module: the replay test reruns
    it (the book was taken before)."""
    root = tmp_path_factory.mktemp("uninterrupted")
    home, book = uninterrupted_home(root, START, END, symbols=SYMBOLS)
    try:
        filled = {(side, ref.split(":")[2]) for ref, _, side, *_, status, _ in book["orders"]
                  if status == "filled"}  # fmt: skip
        # what the comment on START .. END promises: both buys, and a sell closing one of them
        assert filled == {("BUY", "MSFT"), ("BUY", "NVDA"), ("SELL", "MSFT")}, book["orders"]
        assert [p["symbol"] for p in book["snapshots"][END]["positions"]] == ["NVDA"]
        yield home, book
    finally:
        home.close()


@pytest.fixture
def uninterrupted(reference) -> dict:
    """The book of one uninterrupted backfill of START .. END."""
    return reference[1]


def test_a_rerun_in_replay_mode_changes_nothing_recorded(reference, deployment, monkeypatch):
    """A rerun of the reference range leaves every past snapshot row untouched (timestamps
    included) and decides against the same book; replaying the analyses from the cache stores
    the very same bytes for every step (times and per-execution facts such as cache hits live in
    rows, never in objects)."""
    deployment()
    home, uninterrupted = reference
    home.monkeypatch = monkeypatch  # the rerun's variables are undone after this test
    rows, objects = home.snapshot_rows(), _objects_by_step(home)
    first_inputs = {r["partition_key"]: r["input_data"] for r in home.order_rows()}

    home.backfill(START, END, IBKR_ASSETS_LLM_CACHE_MODE="replay")

    assert home.snapshot_rows() == rows  # byte for byte, updated_at included
    assert set(objects) >= {"market_data", "indicators", "daily_chart", "llm_analysis",
                            "trading_signal", "order", "portfolio_snapshot"}  # fmt: skip
    assert _objects_by_step(home) == objects
    lineage = LineageStore(home.url).lineage_rows()
    assert any(
        r["output_data"].get("cache_hit") for r in lineage if r["step_name"] == "llm_analysis"
    )
    reruns = home.order_rows()[
        len(first_inputs) :
    ]  # the rerun's rows, decided against the same book
    assert len(reruns) == len(first_inputs)
    for row in reruns:
        assert row["input_data"] == first_inputs[row["partition_key"]]
        assert row["output_data"]["outcome"] in ("existing", "none")
    assert home.book() == uninterrupted


def test_overlapping_ranges_converge_to_the_uninterrupted_book(homes, uninterrupted):
    """The second range starts inside the first (MIDDLE, the day the buys fill, runs twice) and
    leaves the first range's snapshot rows untouched."""
    home = homes("overlap")
    home.backfill(START, MIDDLE)
    early = {d: r for d, r in home.snapshot_rows().items() if d <= MIDDLE}
    assert set(early) == {START, MIDDLE}

    home.backfill(MIDDLE, END)

    assert {d: r for d, r in home.snapshot_rows().items() if d <= MIDDLE} == early
    assert home.book() == uninterrupted


def test_kill_switch_advances_nothing_and_the_range_decides_after_it_is_off(homes, uninterrupted):
    """With the switch on, START's two BUY signals are blocked and the day advances nothing;
    with it off, the range decides them as if the switch had never been on."""
    home = homes("kill-switch")
    home.backfill(START, START, IBKR_ASSETS_KILL_SWITCH="1")
    blocked = home.order_rows()
    assert len(blocked) == len(SYMBOLS) and {r["status"] for r in blocked} == {"blocked"}
    assert all(r["error"].startswith("kill switch active") for r in blocked)
    assert home.book()["orders"] == [] and home.book()["snapshots"] == {}

    home.backfill(START, END)
    assert home.book() == uninterrupted


def test_a_market_closed_day_values_positions_at_the_last_close(homes):
    """Both symbols signal BUY on Thursday, fill on Friday, and are held over Memorial Day."""
    home = homes("holiday")
    memorial_day = dt.date(2025, 5, 26)
    home.backfill(dt.date(2025, 5, 22), memorial_day)
    snaps = home.book()["snapshots"]
    before, closed = snaps[dt.date(2025, 5, 23)], snaps[memorial_day]
    same = {k: v for k, v in closed.items() if k != "snapshot_date"}
    assert same == {k: v for k, v in before.items() if k != "snapshot_date"}
    assert closed["positions"], "positions must be held over the holiday, or it proves nothing"
    held = [s for s in snaps.values() if s["positions"]]
    assert all(p["price"] != p["avg_cost"] for s in held for p in s["positions"])


def test_two_backfills_of_one_strategy_at_once_place_each_order_once(tmp_path):
    """Two commands started together (START: both symbols signal BUY): one holds the book, the
    other waits for it, finds the session decided and places nothing; both succeed, and only one
    says ``placed``."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("IBKR_ASSETS_", "DAGSTER_"))}
    env |= {"IBKR_ASSETS_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dh")}
    (tmp_path / "dh").mkdir()
    seed_mlflow_store(tmp_path / "home")
    command = [str(Path(sys.executable).parent / "ibkr-assets"), "backfill", "--no-progress",
               "--start", START.isoformat(), "--end", START.isoformat(), "--symbols", ",".join(SYMBOLS)]  # fmt: skip
    # output to files, not pipes: a helper process a command leaves behind (Dagster's log
    # capture) must not keep the test waiting for the end of a pipe
    logs = [tmp_path / f"backfill-{i}.log" for i in range(2)]
    both = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log.open("w"),
                             stderr=subprocess.STDOUT) for log in logs]  # fmt: skip
    for process in both:
        process.wait(timeout=600)
    outputs = [log.read_text() for log in logs]
    assert [p.returncode for p in both] == [0, 0], outputs[0][-1500:] + outputs[1][-1500:]

    url = f"sqlite:///{tmp_path / 'home' / 'lineage.db'}"
    rows = LineageStore(url).lineage_rows(step_name="order")
    placed = [r for r in rows if r["output_data"].get("outcome") == "placed"]
    refs = [r["output_data"]["order_ref"] for r in placed]
    assert len(set(refs)) == len(SYMBOLS), "both BUYs must be placed, or the test proves nothing"
    assert len(refs) == len(set(refs))  # each order placed by one execution only
    with engine_for(url).connect() as conn:
        roles = conn.execute(sa.select(orders.c.order_ref, orders.c.role)).all()
    assert len(roles) == len(set(roles)) and {r for r, _ in roles} == set(refs)


def _objects_by_step(home: Home) -> dict[str, dict[str, str]]:
    """step -> partition -> sha256 of its latest execution's object."""
    out: dict[str, dict[str, str]] = {}
    for row in sorted(LineageStore(home.url).lineage_rows(), key=lambda r: r["id"]):
        ref = row["output_data"].get("object")
        if ref:
            out.setdefault(row["step_name"], {})[row["partition_key"]] = ref["sha256"]
    return out


def test_a_backfill_killed_in_the_order_step_converges_after_a_rerun(
    tmp_path, monkeypatch, deployment, run_cli, uninterrupted
):
    """SIGKILL a command (a process of its own) once its order step has recorded its first
    decision; the same command rerun (in this process, on the same home and Dagster instance)
    marks the dead run failed, finds what was decided (or sent) before the kill, and ends with
    exactly the uninterrupted book."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    deployment()  # the home: tmp_path / "home"; run_cli's instance: tmp_path / "dagster_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IBKR_ASSETS_", "DAGSTER_"))}
    env |= {"IBKR_ASSETS_HOME": str(tmp_path / "home"),
            "DAGSTER_HOME": str(tmp_path / "dagster_home")}  # fmt: skip
    args = ["backfill", "--no-progress", "--start", START.isoformat(), "--end", END.isoformat(),
            "--symbols", ",".join(SYMBOLS)]  # fmt: skip
    command = [str(Path(sys.executable).parent / "ibkr-assets"), *args]
    killed = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    database, deadline = tmp_path / "home" / "lineage.db", time.monotonic() + 300
    while killed.poll() is None and time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as conn:
                decided = conn.execute("SELECT count(*) FROM order_records").fetchone()[0]
        except sqlite3.OperationalError:  # not created yet
            decided = 0
        if decided:
            os.kill(killed.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    killed.wait(30)
    assert killed.returncode == -signal.SIGKILL, "the order step was never reached"

    code, out, err = run_cli(*args)
    assert code == 0, (out + err)[-3000:]
    assert f"process {killed.pid} " in out  # the killed run was marked failed
    home = Home(tmp_path / "home", monkeypatch, SYMBOLS)
    try:
        assert home.book() == uninterrupted
    finally:
        home.close()
