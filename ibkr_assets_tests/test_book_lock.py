"""One writer per strategy's book: a second process waits, gives up with a clear message, and
gets the book as soon as the holder ends, also when the holder is killed."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from ibkr_assets.storage.book_lock import BookBusyError, book_lock


def _hold(url: str, strategy: str, ready, seconds: float) -> None:
    with book_lock(url, strategy, wait_seconds=5):
        ready.set()
        time.sleep(seconds)


def _holder(url: str, strategy: str, seconds: float = 60.0):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    process = ctx.Process(target=_hold, args=(url, strategy, ready, seconds))
    process.start()
    assert ready.wait(30), "the holder never got the book"
    return process


def test_a_second_writer_is_refused_until_the_holder_is_killed(database_url: str) -> None:
    holder = _holder(database_url, "momentum")
    try:
        started = time.monotonic()
        with pytest.raises(BookBusyError, match="strategy 'momentum': another process"):
            with book_lock(database_url, "momentum", wait_seconds=0.5):
                pass
        assert time.monotonic() - started >= 0.5
        with book_lock(database_url, "value_swing", wait_seconds=0):  # another book is free
            pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # killed mid-step: the lock dies with it
        holder.join(10)
    with book_lock(database_url, "momentum", wait_seconds=5):
        pass


def test_a_waiting_writer_gets_the_book_when_the_holder_finishes(database_url: str) -> None:
    holder = _holder(database_url, "momentum", seconds=1.0)
    started = time.monotonic()
    with book_lock(database_url, "momentum", wait_seconds=30):
        waited = time.monotonic() - started
    holder.join(10)
    assert holder.exitcode == 0 and 0.3 < waited < 30


def test_dagster_runs_one_book_step_at_a_time_per_strategy(deployment) -> None:
    """The order and portfolio steps share the strategy's pool, limited to 1 in every shipped
    instance configuration (runs Dagster launches queue there before they reach the lock)."""
    from pathlib import Path

    import yaml

    from ibkr_assets.dagster_home import instance_config
    from ibkr_assets.definitions import build_definitions

    deployment()
    pools = {
        key.path[-1]: assets.node_def.pool
        for assets in build_definitions().assets
        for key in assets.keys
    }
    assert pools["order"] == pools["portfolio_snapshot"] == "momentum_book"
    assert pools["market_data"] is None and pools["llm_analysis"] is None
    repo = Path(__file__).resolve().parents[1]
    configs = [instance_config("/tmp/x")] + [
        yaml.safe_load((repo / name).read_text())
        for name in ("dagster.yaml", "docker/dagster.yaml")
    ]
    assert [c["concurrency"]["pools"]["default_limit"] for c in configs] == [1, 1, 1]
