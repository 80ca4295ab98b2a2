"""Strategy performance statistics: the pure functions on hand-computable cases and edge cases,
then ``performance_for`` and the command's Performance block on a real backfill (SQLite), and
the reader on PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import math
import os
import re
import uuid

import numpy as np
import pytest
import sqlalchemy as sa

from ibkr_assets.domain.orders import Fill, Position
from ibkr_assets.domain.performance import (
    buy_and_hold_series,
    return_stats,
    round_trips,
    strategy_performance,
    trade_stats,
)
from ibkr_assets.domain.portfolio import Ledger, apply_fills, snapshot
from ibkr_assets.performance_report import performance_lines
from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.performance_inputs import load_performance_inputs, performance_for
from ibkr_assets.storage.trading_tables import (
    create_trading_schema,
    fills,
    paper_accounts,
    paper_closes,
    portfolio_snapshots,
)
from ibkr_assets_tests.helpers import seed_mlflow_store

pytestmark = pytest.mark.slow  # a backfill with the performance block

D = [dt.date(2025, 3, 3) + dt.timedelta(days=i) for i in range(10)]
PATH = [100.0, 110.0, 99.0, 104.5, 121.0, 115.0]


def _fill(symbol: str, side: str, quantity: int, price: float, commission: float) -> Fill:
    return Fill(execution_id=uuid.uuid4().hex, broker_order_id="b", order_ref="r", symbol=symbol,
                side=side, quantity=quantity, price=price, commission=commission,
                time=dt.datetime(2025, 3, 3, 16))  # fmt: skip


def _flat(day: dt.date, equity: float):
    return snapshot([], equity, {}, date=day)


def _numpy_ratios(values: list[float]) -> tuple[float, float]:
    v = np.array(values)
    r = np.diff(v) / v[:-1]
    sharpe = r.mean() / r.std(ddof=1) * np.sqrt(252)
    sortino = r.mean() / np.sqrt(np.mean(np.minimum(r, 0) ** 2)) * np.sqrt(252)
    return float(sharpe), float(sortino)


# --- return and risk ---------------------------------------------------------------------


def test_a_known_equity_path_gives_its_return_drawdown_and_ratios():
    stats = return_stats(list(zip(D, PATH, strict=False)))
    assert stats.dates == 6 and (stats.start, stats.end) == (D[0], D[5])
    assert stats.total_return == pytest.approx(0.15)
    assert stats.cagr == pytest.approx(1.15 ** (252 / 5) - 1)
    # peak 110 on D[1], low 99 on D[2] (-10%), back above 110 on D[4]; 121 -> 115 is only -4.96%
    assert stats.max_drawdown == pytest.approx(-0.10)
    assert (stats.peak_date, stats.trough_date, stats.recovery_date) == (D[1], D[2], D[4])
    assert [p.drawdown for p in stats.drawdown] == pytest.approx(
        [0, 0, -0.1, -0.05, 0, 115 / 121 - 1]
    )
    sharpe, sortino = _numpy_ratios(PATH)
    assert stats.sharpe == pytest.approx(sharpe)
    assert stats.sortino == pytest.approx(sortino)
    returns = np.diff(PATH) / np.array(PATH[:-1])
    assert stats.volatility == pytest.approx(returns.std(ddof=1) * math.sqrt(252))


def test_an_unrecovered_drawdown_has_no_recovery_date_and_the_last_peak_date():
    # the peak 120 is reached on D[1] and again on D[2]; the fall starts from D[2]
    stats = return_stats(list(zip(D, [100.0, 120.0, 120.0, 90.0, 100.0], strict=False)))
    assert stats.max_drawdown == pytest.approx(-0.25)
    assert (stats.peak_date, stats.trough_date, stats.recovery_date) == (D[2], D[3], None)


@pytest.mark.parametrize(
    "values, expected",
    [
        ([], {"dates": 0, "total_return": None, "cagr": None, "sharpe": None}),
        ([100.0], {"dates": 1, "total_return": 0.0, "cagr": None, "sharpe": None}),
        (
            [100.0, 100.0, 100.0],
            {"total_return": 0.0, "cagr": 0.0, "sharpe": None, "sortino": None, "volatility": 0.0},
        ),  # fmt: skip
        ([100.0, 101.0, 103.0], {"sortino": None, "max_drawdown": 0.0}),  # never a losing day
        ([100.0, 101.0], {"sharpe": None, "sortino": None, "volatility": None}),  # one return
        ([0.0, 5.0, 4.0], {"total_return": None, "cagr": None}),  # no base to measure from
        ([100.0, 0.0, 50.0], {"total_return": -0.5, "max_drawdown": -1.0}),  # ruin, then more
        ([1.0, 1e9], {"total_return": 1e9 - 1, "cagr": None}),  # too large to annualise
    ],
)
def test_edge_cases_are_none_never_nan(values, expected):
    stats = return_stats(list(zip(D, values, strict=False)))
    for name, value in expected.items():
        assert getattr(stats, name) == (pytest.approx(value) if value else value), name
    if not values or len(values) == 1 or len(set(values)) == 1:
        assert (stats.peak_date, stats.trough_date, stats.recovery_date) == (None, None, None)
    report = strategy_performance([_flat(d, v) for d, v in zip(D, values, strict=False)])
    text = report.to_json()  # strict JSON: a NaN or an infinity would raise here
    assert "NaN" not in text and "Infinity" not in text


# --- round trips --------------------------------------------------------------------------


def test_a_winning_and_a_losing_round_trip_with_commissions():
    dated = [
        (D[0], _fill("AAPL", "BUY", 100, 10.0, 1.0)),
        (D[0], _fill("MSFT", "BUY", 50, 20.0, 1.0)),
        (D[1], _fill("MSFT", "BUY", 50, 22.0, 1.0)),  # average cost 21
        (D[2], _fill("AAPL", "SELL", 100, 12.0, 1.0)),  # +200 - 2 commissions
        (D[3], _fill("MSFT", "SELL", 100, 19.0, 1.0)),  # -200 - 3 commissions
        (D[4], _fill("NVDA", "BUY", 10, 5.0, 1.0)),  # still open
    ]
    trips = round_trips(dated)
    assert [(t.symbol, t.entry_date, t.exit_date) for t in trips] == [
        ("AAPL", D[0], D[2]), ("MSFT", D[0], D[3]), ("NVDA", D[4], None),
    ]  # fmt: skip
    aapl, msft, nvda = trips
    assert (aapl.pnl, aapl.commissions, aapl.quantity) == (pytest.approx(198.0), 2.0, 100)
    assert aapl.return_pct == pytest.approx(198.0 / 1000 * 100)
    assert (msft.pnl, msft.entry_price, msft.exit_price) == (pytest.approx(-203.0), 21.0, 19.0)
    assert not nvda.closed and nvda.pnl == pytest.approx(-1.0)
    stats = trade_stats(trips, dated)
    assert (stats.trades, stats.wins, stats.losses, stats.fills) == (2, 1, 1, 6)
    assert stats.win_rate == 0.5
    assert (stats.avg_win, stats.avg_loss) == (pytest.approx(198.0), pytest.approx(-203.0))
    assert stats.profit_factor == pytest.approx(198.0 / 203.0)
    assert stats.traded_notional == pytest.approx(1000 + 1000 + 1100 + 1200 + 1900 + 50)
    # the portfolio's realized P&L: closed trips plus the commissions of the open one
    ledger = apply_fills(Ledger(cash=10_000.0), [f for _, f in dated])
    assert sum(t.pnl for t in trips) == pytest.approx(ledger.realized_pnl)


def test_a_fill_through_zero_closes_one_trip_and_opens_a_short_with_its_commission_split():
    dated = [
        (D[0], _fill("AAPL", "BUY", 10, 10.0, 1.0)),
        (D[1], _fill("AAPL", "SELL", 30, 11.0, 3.0)),  # closes 10 (fee 1), opens short 20 (fee 2)
        (D[2], _fill("AAPL", "BUY", 20, 9.0, 1.0)),
    ]
    long_, short = round_trips(dated)
    assert (long_.direction, long_.pnl, long_.exit_date) == ("long", pytest.approx(8.0), D[1])
    assert (short.direction, short.quantity, short.entry_date) == ("short", 20, D[1])
    assert short.pnl == pytest.approx(40.0 - 3.0)
    ledger = apply_fills(Ledger(cash=1_000.0), [f for _, f in dated], allow_short=True)
    assert long_.pnl + short.pnl == pytest.approx(ledger.realized_pnl)


def test_without_losses_the_profit_factor_and_average_loss_are_none():
    trips = round_trips(
        [(D[0], _fill("A", "BUY", 1, 10.0, 0.0)), (D[1], _fill("A", "SELL", 1, 11.0, 0.0))]
    )
    stats = trade_stats(trips)
    assert (stats.trades, stats.win_rate, stats.avg_loss, stats.profit_factor) == (
        1,
        1.0,
        None,
        None,
    )
    empty = trade_stats([])
    assert (empty.trades, empty.win_rate, empty.avg_win, empty.total_pnl) == (0, None, None, 0)


# --- buy-and-hold and the whole report ------------------------------------------------------


def test_buy_and_hold_of_two_symbols_equal_weight_at_the_first_dates_closes():
    closes = [
        (D[0], "AAPL", 10.0), (D[1], "AAPL", 11.0), (D[2], "AAPL", 12.0),
        (D[0] - dt.timedelta(days=3), "NVDA", 50.0),  # carried to the first date
        (D[1], "NVDA", 40.0), (D[2], "NVDA", 55.0),
        (D[1], "LATE", 5.0),  # no close on or before the first date: not held
    ]  # fmt: skip
    series, held = buy_and_hold_series(D[:3], closes)
    assert held == ("AAPL", "NVDA")
    # 0.05 AAPL and 0.01 NVDA: 0.5 + 0.5, 0.55 + 0.40, 0.60 + 0.55
    assert [v for _, v in series] == pytest.approx([1.0, 0.95, 1.15])
    stats = return_stats(series)
    assert stats.total_return == pytest.approx(0.15)
    assert (stats.max_drawdown, stats.trough_date, stats.recovery_date) == (
        pytest.approx(-0.05), D[1], D[2],
    )  # fmt: skip
    sharpe, _ = _numpy_ratios([1.0, 0.95, 1.15])
    assert stats.sharpe == pytest.approx(sharpe)
    only, held = buy_and_hold_series(D[:3], closes, symbols=["NVDA"])
    assert held == ("NVDA",) and [v for _, v in only] == pytest.approx([1.0, 0.8, 1.1])
    assert buy_and_hold_series(D[:3], []) == ([], ())


def test_the_report_counts_exposure_turnover_and_only_the_trips_closed_in_its_dates():
    dated = [
        (D[0], _fill("AAPL", "BUY", 10, 100.0, 1.0)),
        (D[1], _fill("AAPL", "SELL", 10, 90.0, 1.0)),  # closed before the measured dates
        (D[2], _fill("AAPL", "BUY", 10, 100.0, 1.0)),
        (D[4], _fill("AAPL", "SELL", 10, 120.0, 1.0)),
    ]
    position = Position(symbol="AAPL", quantity=10, avg_cost=100.0)
    snaps = [
        snapshot([position], 9_000.0, {"AAPL": 100.0}, date=D[2]),  # gross 10% of 10,000
        snapshot([position], 9_000.0, {"AAPL": 110.0}, date=D[3]),
        _flat(D[4], 10_198.0),
        _flat(D[5], 10_198.0),
    ]
    closes = [(d, "AAPL", p) for d, p in zip(D[2:6], [100.0, 110.0, 120.0, 120.0], strict=False)]
    report = strategy_performance(snaps, dated, closes)
    assert report.trades.trades == 1 and report.trades.wins == 1
    assert report.round_trips[0].pnl == pytest.approx(200.0 - 2.0)
    assert report.trades.fills == 2 and report.trades.traded_notional == pytest.approx(2200.0)
    assert report.days_with_position_pct == 50.0
    assert report.mean_gross_exposure_pct == pytest.approx((10.0 + 1100 / 101 + 0 + 0) / 4)
    mean_equity = (10_000 + 10_100 + 10_198 + 10_198) / 4
    assert report.turnover == pytest.approx(2200.0 / mean_equity * 252 / 4)
    assert report.buy_and_hold.total_return == pytest.approx(0.2)
    assert report.strategy.total_return == pytest.approx(0.0198)
    data = json.loads(report.to_json())
    assert data["strategy"]["start"] == "2025-03-05" and data["buy_and_hold_symbols"] == ["AAPL"]
    assert data["round_trips"][0]["exit_date"] == "2025-03-07"
    assert data["strategy"]["drawdown"][0] == {"date": "2025-03-05", "value": 10_000.0,
                                               "drawdown": 0.0}  # fmt: skip


def test_an_empty_history_reports_nothing_and_the_block_says_so():
    report = strategy_performance([], [], [])
    assert report.strategy.dates == 0 and report.trades.trades == 0
    assert (report.turnover, report.days_with_position_pct, report.buy_and_hold_symbols) == (
        None, None, (),
    )  # fmt: skip
    assert json.loads(report.to_json())["strategy"]["total_return"] is None
    assert performance_lines(report) == ["Performance: no portfolio snapshots in this range"]


def test_the_block_shows_strategy_and_buy_and_hold_side_by_side():
    snaps = [_flat(d, v) for d, v in zip(D, PATH, strict=False)]
    closes = [(d, "AAPL", 10.0 + i) for i, d in enumerate(D[:6])]
    lines = performance_lines(strategy_performance(snaps, [], closes))
    text = "\n".join(lines)
    assert lines[0].startswith(f"Performance {D[0]} .. {D[5]} (6 dates")
    assert re.search(r"total return\s+\+15\.00%\s+\+50\.00%", text)
    assert re.search(r"max drawdown\s+-10\.00%\s+\+0\.00%", text)
    assert f"strategy drawdown: peak {D[1]}, trough {D[2]}, recovered {D[4]}" in text
    assert "buy-and-hold (AAPL, equal weight) drawdown: no drawdown" in text
    assert "trades: 0 closed round trip(s), win rate -" in text


# --- the reader -----------------------------------------------------------------------------


def test_the_reader_on_a_store_that_never_traded_is_empty_and_creates_nothing(tmp_path):
    missing = tmp_path / "none.db"
    report = performance_for(f"sqlite:///{missing}", "momentum")
    assert report.strategy.dates == 0 and not missing.exists()
    other = tmp_path / "other.db"
    with engine_for(f"sqlite:///{other}").begin() as conn:
        conn.execute(sa.text("CREATE TABLE unrelated (id INTEGER)"))
    inputs = load_performance_inputs(f"sqlite:///{other}", "momentum")
    assert (inputs.snapshots, inputs.fills, inputs.closes, inputs.starting_cash) == (
        [],
        [],
        [],
        None,
    )


# --- a real backfill ----------------------------------------------------------------------

START, END = "2025-03-03", "2025-03-10"  # NVDA: bought on the 4th, sold on the 10th
SESSIONS = 6


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory) -> dict:
    """``ibkr-assets backfill`` of AAPL and NVDA over 6 sessions (NVDA's round trip closes), in
    this process: its exit code, its output and its database URL."""
    from ibkr_assets.cli import main
    from ibkr_assets.dagster_home import write_instance_config

    root = tmp_path_factory.mktemp("perf")
    with pytest.MonkeyPatch.context() as mp:
        for var in [v for v in os.environ if v.startswith("IBKR_ASSETS_")]:
            mp.delenv(var)
        mp.setenv("IBKR_ASSETS_HOME", str(root / "home"))
        seed_mlflow_store(root / "home")
        # `IBKR_ASSETS_DAGSTER_EVENT_LOG=pooled`: Dagster's tables, a transaction per batch
        write_instance_config(root / "dagster_home", "pooled")
        mp.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        mp.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
        mp.chdir(root)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["backfill", "--no-progress", "--start", START, "--end", END,
                         "--symbols", "AAPL,NVDA"])  # fmt: skip
    return {"code": code, "out": out.getvalue(), "err": err.getvalue(),
            "url": f"sqlite:///{root / 'home' / 'lineage.db'}"}  # fmt: skip


def _rows(url: str, table: sa.Table, *order: str) -> list[dict]:
    with engine_for(url).connect() as conn:
        query = sa.select(table).order_by(*(table.c[c] for c in order))
        return [dict(r) for r in conn.execute(query).mappings()]


def test_the_backfill_summary_prints_the_performance_block_after_the_portfolio(backfilled):
    out = backfilled["out"]
    assert backfilled["code"] == 0, out[-3000:] + backfilled["err"][-3000:]
    portfolio = out.index(f"Portfolio {END}: equity")
    block = out.index(f"Performance {START} .. {END} ({SESSIONS} dates")
    assert portfolio < block < out.index("Lineage: ")
    report = performance_for(
        backfilled["url"], "momentum", dt.date.fromisoformat(START), dt.date.fromisoformat(END)
    )
    s, b = report.strategy, report.buy_and_hold
    total = rf"total return\s+{re.escape(f'{100 * s.total_return:+.2f}%')}"
    assert re.search(total + rf"\s+{re.escape(f'{100 * b.total_return:+.2f}%')}", out)
    assert re.search(
        rf"Sharpe\s+{re.escape(f'{s.sharpe:,.2f}')}\s+{re.escape(f'{b.sharpe:,.2f}')}", out
    )
    assert f"trades: {report.trades.trades} closed round trip(s)" in out
    assert "buy-and-hold (AAPL, NVDA, equal weight) drawdown" in out


def test_performance_for_agrees_with_the_stored_book(backfilled):
    url = backfilled["url"]
    snaps = _rows(url, portfolio_snapshots, "snapshot_date")
    (account,) = _rows(url, paper_accounts, "account")
    fill_rows = _rows(url, fills, "session_date", "id")
    report = performance_for(
        url, "momentum", dt.date.fromisoformat(START), dt.date.fromisoformat(END)
    )
    equity = np.array([r["equity"] for r in snaps])
    assert report.strategy.dates == len(snaps) == SESSIONS
    assert snaps[0]["equity"] == account["starting_cash"]  # nothing fills on the first session
    assert report.strategy.total_return == pytest.approx(equity[-1] / account["starting_cash"] - 1)
    assert report.strategy.max_drawdown == pytest.approx(
        (equity / np.maximum.accumulate(equity) - 1).min()
    )
    assert report.strategy.sharpe == pytest.approx(_numpy_ratios(list(equity))[0])
    # closed round trips, counted independently: each time a symbol's position returns to 0
    held: dict[str, int] = {}
    closed = 0
    for row in fill_rows:
        before = held.get(row["symbol"], 0)
        held[row["symbol"]] = before + (
            row["quantity"] if row["side"] == "BUY" else -row["quantity"]
        )
        closed += before != 0 and held[row["symbol"]] == 0
    assert closed >= 1, "the sample range should close at least one trade"
    assert report.trades.trades == closed and report.trades.fills == len(fill_rows)
    # the portfolio's realized P&L: closed trips', less the commissions paid on open ones
    open_pnl = sum(t.pnl for t in report.round_trips if not t.closed)
    assert report.trades.total_pnl + open_pnl == pytest.approx(snaps[-1]["realized_pnl"], abs=1e-4)
    assert report.days_with_position_pct == pytest.approx(
        100 * np.mean([bool(r["positions"]) for r in snaps])
    )
    # buy-and-hold straight from the closes the simulator recorded
    closes = {
        (r["symbol"], r["session_date"]): r["close"]
        for r in _rows(url, paper_closes, "session_date")
    }
    first, last = snaps[0]["snapshot_date"], snaps[-1]["snapshot_date"]
    expected = np.mean([closes[(s, last)] / closes[(s, first)] for s in ("AAPL", "NVDA")]) - 1
    assert report.buy_and_hold_symbols == ("AAPL", "NVDA")
    assert report.buy_and_hold.total_return == pytest.approx(expected)
    # a sub-range is measured from its own first date
    part = performance_for(url, "momentum", dt.date(2025, 3, 5), dt.date(2025, 3, 7))
    assert part.strategy.start == dt.date(2025, 3, 5) and part.strategy.dates == 3
    assert part.strategy.total_return == pytest.approx(equity[4] / equity[2] - 1)


def test_the_reader_gives_the_same_statistics_on_postgresql(backfilled, postgres_url):
    """The account's rows copied into PostgreSQL (under an account name of its own) read back
    to the same report as on SQLite, for the whole history and a sub-range."""
    source, account = backfilled["url"], f"perf-{uuid.uuid4().hex[:8]}"
    create_trading_schema(postgres_url)
    with engine_for(postgres_url).begin() as conn:
        for table, order in ((paper_accounts, "account"), (portfolio_snapshots, "id"),
                             (fills, "id"), (paper_closes, "session_date")):  # fmt: skip
            rows = [{k: v for k, v in r.items() if k != "id"} | {"account": account}
                    for r in _rows(source, table, order)]  # fmt: skip
            if table is fills:
                for row in rows:
                    row["execution_id"] = f"{account}:{row['execution_id']}"
            conn.execute(sa.insert(table), rows)
    for span in ((None, None), (dt.date(2025, 3, 5), dt.date(2025, 3, 7))):
        expected = performance_for(source, "momentum", *span).to_dict()
        got = performance_for(postgres_url, account, *span).to_dict()
        assert got["strategy"]["dates"] > 0
        assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)
