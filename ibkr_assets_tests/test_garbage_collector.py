"""How the project tunes Python's garbage collector, and that it always undoes it."""

import gc

import pandas as pd
import pytest

from ibkr_assets import cli
from ibkr_assets.charts.render import ChartSpec, render_many
from ibkr_assets.domain.indicators import compute_indicators
from ibkr_assets.runs import collector_spares_the_loaded_heap
from ibkr_assets.sources.sample import SampleBarSource


@pytest.fixture(autouse=True)
def _unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_a_run_freezes_the_loaded_heap_and_restores_the_collector():
    before = gc.get_threshold()
    with collector_spares_the_loaded_heap(first_generation=12_345):
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (12_345, *before[1:])
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_collector_is_restored_when_the_run_raises():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), collector_spares_the_loaded_heap():
        raise RuntimeError("step failed")
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, 0)


def _chart_jobs(count: int):
    source = SampleBarSource("XNYS")
    day = pd.Timestamp("2025-06-30").date()
    frame = compute_indicators(source.fetch_bars("AAPL", day, 200))
    spec = ChartSpec(symbol="AAPL", as_of=day, timeframe="daily", bars_shown=60)
    return [(frame, spec)] * count


def test_the_chart_pool_leaves_a_callers_freeze_in_place():
    jobs = _chart_jobs(2)
    render_many(jobs, workers=2)
    assert gc.get_freeze_count() == 0  # it unfreezes what it froze
    with collector_spares_the_loaded_heap():
        frozen = gc.get_freeze_count()
        charts = render_many(jobs, workers=2)
        # not unfrozen under the run's feet (that drops the count to 0); frozen objects that
        # other threads of a long test session free meanwhile lower it a little
        assert gc.get_freeze_count() > 0.9 * frozen
    assert charts[0].png == charts[1].png


def test_the_program_exits_with_mains_code_and_a_frozen_heap(monkeypatch):
    monkeypatch.setattr(cli, "main", lambda: 3)
    with pytest.raises(SystemExit) as exited:
        cli.run()
    assert exited.value.code == 3
    assert gc.get_freeze_count() > 0
