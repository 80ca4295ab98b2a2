"""IbkrAdapter and IbkrBarSource against FakeIB, plus checks that FakeIB stays faithful to IB."""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from ib_async import IB, Stock, util

from ibkr_assets.domain.bars import BAR_COLUMNS
from ibkr_assets.ibkr.adapter import IbkrAdapter, IbkrConfig, history_duration
from ibkr_assets.ibkr.bar_source import IbkrBarSource
from ibkr_assets.ibkr.errors import GatewayUnavailableError, UnknownContractError
from ibkr_assets.sources.base import BarSource, SourceUnavailableError, UnknownSymbolError
from ibkr_assets_tests.fakes.ib import (
    CONNECTIVITY_LOST,
    DURATION_IN_YEARS,
    PACING_VIOLATION,
    FakeIB,
    weekday_bars,
)

END = dt.date(2024, 3, 15)  # a Friday
HISTORY = weekday_bars(dt.date(2023, 1, 2), dt.date(2024, 6, 28))
AAPL_CON_ID = 265598
CONFIG = IbkrConfig(
    host="127.0.0.1",
    port=4002,
    client_id=17,
    connect_timeout=0.5,
    request_timeout=2.0,
    connect_attempts=3,
    backoff_seconds=0.01,
    backoff_max_seconds=0.05,
)
# Every ib_async.IB method the adapter calls; the signature tests cover exactly these.
ADAPTER_CALLS = (
    "connect",
    "disconnect",
    "isConnected",
    "qualifyContracts",
    "reqHistoricalData",
    "reqMatchingSymbols",
)


@pytest.fixture
def fake() -> FakeIB:
    ib = FakeIB()
    ib.add_stock("AAPL", HISTORY, con_id=AAPL_CON_ID, description="APPLE INC")
    ib.add_stock("MSFT", HISTORY[:50], con_id=272093, description="MICROSOFT CORP")
    return ib


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def adapter(fake: FakeIB, sleeps: list[float]) -> Iterator[IbkrAdapter]:
    with IbkrAdapter(CONFIG, ib_factory=lambda: fake, sleep=sleeps.append) as adapter:
        yield adapter


@pytest.fixture
def errors(fake: FakeIB) -> list[tuple[int, int, str]]:
    """Every (reqId, code, message) the fake fires on errorEvent."""
    seen: list[tuple[int, int, str]] = []
    fake.errorEvent.connect(lambda req_id, code, text, _contract: seen.append((req_id, code, text)))
    return seen


def bars_until(end: dt.date, count: int) -> list:
    return [b for b in HISTORY if b.date <= end][-count:]


# -- fetching bars -------------------------------------------------------------------------


def test_connects_and_fetches_the_last_bars_up_to_end(adapter: IbkrAdapter, fake: FakeIB) -> None:
    frame = adapter.daily_bars("AAPL", END, 10)

    expected = bars_until(END, 10)
    assert list(frame.columns) == BAR_COLUMNS
    assert frame["date"].dt.date.tolist() == [b.date for b in expected]
    assert frame["close"].tolist() == [b.close for b in expected]
    assert frame["volume"].tolist() == [b.volume for b in expected]
    (connect,) = fake.calls_to("connect")
    assert (connect.params["host"], connect.params["port"]) == ("127.0.0.1", 4002)
    assert connect.params["clientId"] == 17
    assert connect.params["readonly"] is True


def test_never_returns_a_bar_after_end_even_when_ib_sends_one(
    adapter: IbkrAdapter, fake: FakeIB
) -> None:
    fake.bars_past_end = 3

    frame = adapter.daily_bars("AAPL", END, 5)

    sent = fake.calls_to("reqHistoricalData")[0].result
    assert max(b.date for b in sent) > END  # the trap was armed
    assert frame["date"].max().date() == END
    assert frame["date"].dt.date.tolist() == [b.date for b in bars_until(END, 5)]


def test_end_on_a_weekend_gives_bars_up_to_the_friday(adapter: IbkrAdapter) -> None:
    frame = adapter.daily_bars("AAPL", dt.date(2024, 3, 17), 3)

    assert frame["date"].dt.date.tolist() == [dt.date(2024, 3, d) for d in (13, 14, 15)]


def test_a_window_longer_than_a_year_is_requested_in_years(
    adapter: IbkrAdapter, fake: FakeIB
) -> None:
    frame = adapter.daily_bars("AAPL", END, 300)

    assert len(frame) == 300
    assert fake.calls_to("reqHistoricalData")[0].params["durationStr"] == "2 Y"


def test_request_parameters_are_what_ibkr_expects(adapter: IbkrAdapter, fake: FakeIB) -> None:
    adapter.daily_bars("AAPL", END, 20)

    (call,) = fake.calls_to("reqHistoricalData")
    sent = call.params
    assert sent["contract"].conId == AAPL_CON_ID
    assert sent["whatToShow"] == "TRADES"
    assert sent["barSizeSetting"] == "1 day"
    assert sent["useRTH"] is True
    assert sent["formatDate"] == 1
    assert sent["keepUpToDate"] is False
    assert sent["durationStr"] == "40 D"
    assert sent["timeout"] == CONFIG.request_timeout
    end = sent["endDateTime"]
    assert end == dt.datetime(2024, 3, 15, 23, 59, 59, tzinfo=ZoneInfo("America/New_York"))
    assert end.utcoffset() is not None
    # What ib_async puts on the wire: independent of this machine's timezone.
    assert util.formatIBDatetime(end) == "20240316 03:59:59 UTC"


def test_a_hard_timeout_bounds_calls_that_have_none(adapter: IbkrAdapter, fake: FakeIB) -> None:
    assert fake.RequestTimeout > CONFIG.request_timeout
    fake.time_out_next("qualifyContracts")

    with pytest.raises(
        GatewayUnavailableError, match="did not answer the contract lookup for AAPL"
    ):
        adapter.qualify_stock("AAPL")


@pytest.mark.parametrize(
    ("bars", "expected"), [(1, "12 D"), (20, "40 D"), (236, "364 D"), (237, "2 Y"), (1000, "5 Y")]
)
def test_history_duration_covers_the_bars_and_stays_valid(bars: int, expected: str) -> None:
    assert history_duration(bars) == expected


def test_qualified_contracts_are_cached(adapter: IbkrAdapter, fake: FakeIB) -> None:
    contract = adapter.qualify_stock("AAPL")
    adapter.daily_bars("AAPL", END, 2)

    assert contract.conId == AAPL_CON_ID
    assert (contract.exchange, contract.primaryExchange) == ("SMART", "NASDAQ")
    assert len(fake.calls_to("qualifyContracts")) == 1


# -- errors --------------------------------------------------------------------------------


def test_unknown_symbol_names_the_symbol(adapter: IbkrAdapter, fake: FakeIB, errors) -> None:
    with pytest.raises(UnknownContractError, match="'ZZZZ'.*error 200"):
        adapter.daily_bars("ZZZZ", END, 5)

    assert [code for _, code, _ in errors if code < 2100] == [200]
    assert fake.calls_to("reqHistoricalData") == []


def test_request_timeout_gives_an_empty_frame(adapter: IbkrAdapter, fake: FakeIB, caplog) -> None:
    fake.time_out_next("reqHistoricalData")

    with caplog.at_level(logging.WARNING):
        frame = adapter.daily_bars("AAPL", END, 5)

    assert frame.empty
    assert list(frame.columns) == BAR_COLUMNS
    assert "timed out" in caplog.text


def test_no_data_in_the_window_gives_an_empty_frame(adapter: IbkrAdapter, errors) -> None:
    frame = adapter.daily_bars("AAPL", dt.date(2022, 6, 1), 5)  # before the history starts

    assert frame.empty
    assert list(frame.columns) == BAR_COLUMNS
    assert [(code, "returned no data" in text) for _, code, text in errors][-1] == (162, True)


def test_pacing_violation_is_a_clear_error(adapter: IbkrAdapter, fake: FakeIB) -> None:
    fake.fail_next("reqHistoricalData", 162, PACING_VIOLATION)

    with pytest.raises(GatewayUnavailableError, match="AAPL.*pacing violation.*wait and retry"):
        adapter.daily_bars("AAPL", END, 5)


def test_identical_request_within_15_seconds_hits_pacing(adapter: IbkrAdapter) -> None:
    adapter.daily_bars("AAPL", END, 5)

    with pytest.raises(GatewayUnavailableError, match="pacing"):
        adapter.daily_bars("AAPL", END, 5)


def test_missing_market_data_permission_is_a_clear_error(
    adapter: IbkrAdapter, fake: FakeIB
) -> None:
    message = (
        "Historical Market Data Service error message:No market data permissions for NASDAQ STK"
    )
    fake.fail_next("reqHistoricalData", 162, message)

    with pytest.raises(GatewayUnavailableError, match="error 162.*market-data permissions"):
        adapter.daily_bars("AAPL", END, 5)


def test_validation_error_321_is_reported(adapter: IbkrAdapter, fake: FakeIB) -> None:
    fake.fail_next("reqHistoricalData", 321, DURATION_IN_YEARS)

    with pytest.raises(GatewayUnavailableError, match="error 321.*years"):
        adapter.daily_bars("AAPL", END, 5)


def test_connectivity_lost_during_request_is_a_clear_error(
    adapter: IbkrAdapter, fake: FakeIB
) -> None:
    fake.fail_next("reqHistoricalData", 1100, CONNECTIVITY_LOST)

    with pytest.raises(GatewayUnavailableError, match="lost connectivity.*error 1100"):
        adapter.daily_bars("AAPL", END, 5)


def test_errors_outside_a_request_do_not_fail_the_next_one(
    adapter: IbkrAdapter, fake: FakeIB
) -> None:
    fake.errorEvent.emit(-1, 1100, CONNECTIVITY_LOST, None)
    fake.errorEvent.emit(-1, 1102, "Connectivity between IB and TWS has been restored", None)

    assert len(adapter.daily_bars("AAPL", END, 5)) == 5


# -- connecting ----------------------------------------------------------------------------


def test_connection_refused_twice_then_succeeds_with_backoff(
    adapter: IbkrAdapter, fake: FakeIB, sleeps: list[float]
) -> None:
    adapter.close()
    fake.calls.clear()
    fake.refuse_connections(times=2)

    frame = adapter.daily_bars("AAPL", END, 3)

    assert len(frame) == 3
    assert len(fake.calls_to("connect")) == 3
    assert sleeps == [0.01, 0.02]


def test_connection_refused_always_names_host_port_and_what_to_check(
    fake: FakeIB, sleeps: list[float]
) -> None:
    fake.refuse_connections()
    adapter = IbkrAdapter(CONFIG, ib_factory=lambda: fake, sleep=sleeps.append)

    with pytest.raises(GatewayUnavailableError) as raised:
        adapter.daily_bars("AAPL", END, 3)

    message = str(raised.value)
    assert "127.0.0.1:4002 after 3 attempt(s)" in message
    assert "ConnectionRefusedError" in message
    assert "IB Gateway or TWS is running" in message
    assert "client id 17" in message
    assert len(fake.calls_to("connect")) == 3
    assert sleeps == [0.01, 0.02]


def test_backoff_doubles_up_to_its_cap(fake: FakeIB, sleeps: list[float]) -> None:
    fake.refuse_connections()
    config = IbkrConfig(connect_attempts=5, backoff_seconds=0.01, backoff_max_seconds=0.03)
    adapter = IbkrAdapter(config, ib_factory=lambda: fake, sleep=sleeps.append)

    with pytest.raises(GatewayUnavailableError):
        adapter.connect()

    assert sleeps == [0.01, 0.02, 0.03, 0.03]


def test_handshake_timeout_says_so(fake: FakeIB, sleeps: list[float]) -> None:
    fake.time_out_connections()
    adapter = IbkrAdapter(CONFIG, ib_factory=lambda: fake, sleep=sleeps.append)

    with pytest.raises(GatewayUnavailableError, match="no API handshake within 0.5 s"):
        adapter.connect()


def test_dropped_connection_reconnects_on_the_next_request(
    adapter: IbkrAdapter, fake: FakeIB
) -> None:
    adapter.daily_bars("AAPL", END, 3)
    fake.drop_connection()
    assert not adapter.is_connected

    frame = adapter.daily_bars("AAPL", END - dt.timedelta(days=1), 3)

    assert frame["date"].max().date() == END - dt.timedelta(days=1)
    assert len(fake.calls_to("connect")) == 2


def test_drop_during_a_request_fails_it_and_the_next_one_reconnects(
    adapter: IbkrAdapter, fake: FakeIB
) -> None:
    fake.drop_during_next("reqHistoricalData")

    with pytest.raises(GatewayUnavailableError, match="connection to 127.0.0.1:4002 was lost"):
        adapter.daily_bars("AAPL", END, 3)
    assert len(adapter.daily_bars("AAPL", END, 3)) == 3
    assert len(fake.calls_to("connect")) == 2


def test_context_manager_connects_and_disconnects(fake: FakeIB) -> None:
    with IbkrAdapter(CONFIG, ib_factory=lambda: fake) as adapter:
        assert fake.isConnected()
        assert adapter.is_connected
    assert not fake.isConnected()


def test_real_ib_refused_connection_maps_to_source_unavailable() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = IbkrAdapter(IbkrConfig(port=port, connect_attempts=2), sleep=lambda _s: None)

    with pytest.raises(GatewayUnavailableError, match=f"127.0.0.1:{port} after 2 attempt"):
        adapter.connect()


def test_real_ib_silent_server_maps_to_handshake_timeout() -> None:
    with socket.socket() as server:  # accepts the socket, never speaks the API
        server.bind(("127.0.0.1", 0))
        server.listen()
        config = IbkrConfig(port=server.getsockname()[1], connect_timeout=0.2, connect_attempts=1)

        with pytest.raises(GatewayUnavailableError, match="no API handshake within 0.2 s"):
            IbkrAdapter(config).connect()


# -- symbol search -------------------------------------------------------------------------


def test_matching_symbols_returns_small_dicts(adapter: IbkrAdapter) -> None:
    assert adapter.matching_symbols("AAP") == [
        {
            "symbol": "AAPL",
            "conId": AAPL_CON_ID,
            "secType": "STK",
            "primaryExchange": "NASDAQ",
            "currency": "USD",
            "description": "APPLE INC",
        }
    ]
    assert [m["symbol"] for m in adapter.matching_symbols("microsoft")] == ["MSFT"]
    assert adapter.matching_symbols("QQQQZ") == []


def test_matching_symbols_timeout_is_gateway_unavailable(
    adapter: IbkrAdapter, fake: FakeIB
) -> None:
    fake.time_out_next("reqMatchingSymbols")

    with pytest.raises(GatewayUnavailableError, match="symbol search for 'AAP'"):
        adapter.matching_symbols("AAP")


# -- the bar source ------------------------------------------------------------------------


def test_bar_source_connects_once_and_reuses_the_connection(fake: FakeIB) -> None:
    source = IbkrBarSource(IbkrAdapter(CONFIG, ib_factory=lambda: fake))

    first = source.fetch_bars("AAPL", END, 4)
    second = source.fetch_bars("MSFT", dt.date(2023, 3, 10), 2)

    assert isinstance(source, BarSource)
    assert (source.name, source.synthetic) == ("ibkr", False)
    assert first["date"].dt.date.tolist() == [b.date for b in bars_until(END, 4)]
    assert second["date"].dt.date.tolist() == [dt.date(2023, 3, 9), dt.date(2023, 3, 10)]
    assert len(fake.calls_to("connect")) == 1
    source.close()
    assert not fake.isConnected()


def test_bar_source_raises_the_market_data_errors_with_the_gateways_message(
    fake: FakeIB, sleeps: list[float]
) -> None:
    source = IbkrBarSource(IbkrAdapter(CONFIG, ib_factory=lambda: fake, sleep=sleeps.append))
    with pytest.raises(UnknownSymbolError, match="'ZZZZ'.*error 200") as unknown:
        source.fetch_bars("ZZZZ", END, 5)
    assert isinstance(unknown.value.__cause__, UnknownContractError)
    assert str(unknown.value) == str(unknown.value.__cause__)

    fake.refuse_connections()
    source.close()
    with pytest.raises(SourceUnavailableError, match="not reachable") as down:
        source.fetch_bars("AAPL", END, 5)
    assert isinstance(down.value.__cause__, GatewayUnavailableError)


def test_importing_the_source_does_not_import_ib_async() -> None:
    code = (
        "import sys; from ibkr_assets.ibkr.bar_source import IbkrBarSource; "
        "from ibkr_assets.ibkr.adapter import IbkrAdapter; IbkrBarSource(IbkrAdapter()); "
        "print('ib_async' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the fake stays faithful to ib_async.IB ------------------------------------------------


@pytest.mark.parametrize("name", ADAPTER_CALLS)
def test_fake_has_the_real_signature(name: str) -> None:
    def shape(func) -> list[tuple[str, object, object]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]

    assert shape(getattr(FakeIB, name)) == shape(getattr(IB, name))


def test_fake_has_the_real_events_and_attributes() -> None:
    real, fake = IB(), FakeIB()
    for event in ("errorEvent", "connectedEvent", "disconnectedEvent"):
        assert type(getattr(fake, event)) is type(getattr(real, event))
    assert (FakeIB.RequestTimeout, FakeIB.RaiseRequestErrors) == (
        IB.RequestTimeout,
        IB.RaiseRequestErrors,
    )


def test_everything_the_adapter_sends_binds_to_the_real_signatures(
    adapter: IbkrAdapter, fake: FakeIB
) -> None:
    adapter.daily_bars("AAPL", END, 5)
    adapter.matching_symbols("AAP")
    adapter.close()

    assert {c.method for c in fake.calls} == set(ADAPTER_CALLS)
    for call in fake.calls:
        inspect.signature(getattr(IB, call.method)).bind(None, *call.args, **call.kwargs)


@pytest.mark.parametrize("make_ib", [IB, FakeIB], ids=["real", "fake"])
def test_requests_without_a_connection_raise_like_the_real_ib(make_ib) -> None:
    ib = make_ib()
    stock = Stock("AAPL", "SMART", "USD")
    requests = [
        lambda: ib.qualifyContracts(stock),
        lambda: ib.reqHistoricalData(stock, "", "1 D", "1 day", "TRADES", True),
        lambda: ib.reqMatchingSymbols("AAP"),
    ]
    for request in requests:
        with pytest.raises(ConnectionError, match="Not connected"):
            request()
    assert ib.isConnected() is False
    assert ib.disconnect() is None


def test_fake_qualifies_in_place_and_fires_error_200_for_unknown(fake: FakeIB, errors) -> None:
    fake.connect()
    known, unknown = Stock("AAPL", "SMART", "USD"), Stock("ZZZZ", "SMART", "USD")

    result = fake.qualifyContracts(known, unknown)

    assert result == [known, None]
    assert known.conId == AAPL_CON_ID and unknown.conId == 0
    assert errors[-1][1:] == (200, "No security definition has been found for the request")


def test_fake_rejects_day_durations_over_a_year_like_tws(fake: FakeIB, errors) -> None:
    fake.connect()
    fake.RequestTimeout = 10

    bars = fake.reqHistoricalData(
        Stock("AAPL", "SMART", "USD"), END, "400 D", "1 day", "TRADES", True, timeout=1
    )

    assert len(bars) == 0 and type(bars).__name__ == "BarDataList"
    assert errors[-1][1:] == (321, DURATION_IN_YEARS)
