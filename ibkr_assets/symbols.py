"""Symbol resolution: which tickers are real, cached in the ``symbols`` table.

A symbol is checked once, before it becomes a partition: through the IBKR adapter when IBKR is
configured (``resolve_with_ibkr``: the qualified contract gives conId, primary exchange and
currency, IB's symbol search gives the name), otherwise against the market-data source
(``resolve_with_source``: the source must know the symbol; it has no contract id). The answer is
cached in ``symbols`` (``storage/symbol_registry.py``), so a known symbol never costs another
lookup. An unknown symbol raises ``UnknownSymbolError`` with a message naming the symbol and
where it was looked for, and is never saved. ``resolve_symbols`` does all of that for a list of
symbols; ``resolver_for`` picks the resolver (IBKR or the source). ``SymbolInfo`` and the ticker
rule are in ``domain/symbols.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ibkr_assets.domain.calendar import last_closed_session
from ibkr_assets.domain.symbols import SYMBOL_MAX, SymbolInfo, is_ticker
from ibkr_assets.ibkr.bar_source import IbkrBarSource, as_market_data_errors
from ibkr_assets.ibkr.errors import GatewayUnavailableError, UnknownContractError
from ibkr_assets.sources.base import BarSource, UnknownSymbolError
from ibkr_assets.storage.symbol_registry import SymbolRegistry

if TYPE_CHECKING:
    from ibkr_assets.ibkr.adapter import IbkrAdapter
    from ibkr_assets.settings import Settings
    from ibkr_assets.strategies.config import StrategyConfig

IBKR = "ibkr"
MAX_SUGGESTIONS = 5


def normalize_symbol(symbol: str) -> str:
    """``symbol`` trimmed and upper-case; ``UnknownSymbolError`` when it cannot be a ticker."""
    ticker = symbol.strip().upper()
    if not is_ticker(ticker):
        raise UnknownSymbolError(
            f"unknown symbol {symbol!r}: not a ticker (1 to {SYMBOL_MAX} letters or digits, "
            "optionally joined by '.', '-' or one space)"
        )
    return ticker


def resolve_with_ibkr(
    adapter: IbkrAdapter, symbol: str, *, exchange: str = "SMART", currency: str = "USD"
) -> SymbolInfo:
    """Resolve ``symbol`` as a stock at IBKR: conId, exchanges and currency, name if listed.

    The name is the description IB's symbol search gives for the same conId ("" when the search
    does not list it). Raises ``UnknownSymbolError`` when IB has no such stock, or several (the
    message lists what IB's symbol search suggests), and ``SourceUnavailableError`` when IBKR
    cannot be asked.
    """
    ticker = normalize_symbol(symbol)
    with as_market_data_errors():
        try:
            contract = adapter.qualify_stock(ticker, exchange, currency)
        except UnknownContractError as exc:
            raise UnknownSymbolError(
                f"unknown symbol {ticker!r}: {exc}{_suggestions(adapter, ticker)}"
            ) from exc
        listed = adapter.matching_symbols(ticker)
    name = next((m["description"] for m in listed if m["conId"] == contract.conId), "")
    return SymbolInfo(
        symbol=ticker,
        con_id=int(contract.conId),
        exchange=contract.exchange or exchange,
        primary_exchange=contract.primaryExchange or "",
        currency=contract.currency or currency,
        name=name or "",
        source=IBKR,
    )


def resolve_with_source(source: BarSource, symbol: str, as_of: dt.date) -> SymbolInfo:
    """Check ``symbol`` against a bar source by fetching one bar up to ``as_of``.

    A symbol the source knows is accepted even when it has no bar in that window. Raises
    ``UnknownSymbolError`` (its message names the symbol and the source) when the source does
    not know it; ``SourceUnavailableError`` from the source propagates.
    """
    ticker = normalize_symbol(symbol)
    try:
        source.fetch_bars(ticker, as_of, 1)
    except UnknownSymbolError as exc:
        if str(exc).startswith("unknown symbol"):
            raise
        raise UnknownSymbolError(
            f"unknown symbol {ticker!r} for the {source.name} source: {exc}"
        ) from exc
    return SymbolInfo(
        symbol=ticker,
        con_id=None,
        exchange="",
        primary_exchange="",
        currency="",
        name="",
        source=source.name,
    )


def resolver_for(
    source: BarSource, as_of: dt.date, adapter: IbkrAdapter | None = None
) -> Callable[[str], SymbolInfo]:
    """IBKR's resolver when ``adapter`` is given or ``source`` is IBKR's, else the source's."""
    ibkr = source.adapter if adapter is None and isinstance(source, IbkrBarSource) else adapter
    if ibkr is not None:
        return lambda symbol: resolve_with_ibkr(ibkr, symbol)
    return lambda symbol: resolve_with_source(source, symbol, as_of)


def resolve_symbols(
    wanted: Iterable[str],
    *,
    registry: SymbolRegistry,
    resolver: Callable[[str], SymbolInfo],
    source: str | None = None,
) -> tuple[list[SymbolInfo], dict[str, str]]:
    """Known symbols (input order, duplicates dropped) and ``{symbol: message}`` for unknown ones.

    Cached symbols come from ``registry`` without calling ``resolver``; the others are resolved
    and saved one by one. With ``source`` (e.g. ``"csv"``), only a symbol that source resolved
    counts as cached: one strategy's CSV folder may know a ticker another strategy's source does
    not. A cached row is never replaced by another source's (an IBKR contract id stays). A symbol the resolver refuses (``UnknownSymbolError``) is reported and
    never saved. Any other error (``SourceUnavailableError``: the answer is not known) propagates;
    what was resolved before it stays saved.
    """
    order: list[str] = []
    errors: dict[str, str] = {}
    for raw in wanted:
        try:
            ticker = normalize_symbol(raw)
        except UnknownSymbolError as exc:
            errors[raw.strip().upper()] = str(exc)
            continue
        if ticker not in order:
            order.append(ticker)
    cached = registry.get_many(order)
    known: list[SymbolInfo] = []
    for ticker in order:
        info = cached.get(ticker)
        if info is None or (source is not None and info.source != source):
            try:
                info = resolver(ticker)
            except UnknownSymbolError as exc:
                errors[ticker] = str(exc)
                continue
            if ticker not in cached:
                registry.save(info)
        known.append(info)
    return known, errors


def resolve_strategy_symbols(
    settings: Settings, strategy: StrategyConfig, source, symbols: list[str] | None = None
):
    """(known SymbolInfo list, {symbol: error}) for ``symbols`` (default: the strategy's),
    cached in the ``symbols`` table."""
    registry = SymbolRegistry(settings.lineage_url)
    registry.create_schema()
    # the last closed session: a session still open has no bar yet, and sources refuse it
    resolver = resolver_for(source, last_closed_session(strategy.schedule.calendar))
    return resolve_symbols(
        symbols or strategy.symbols, registry=registry, resolver=resolver, source=source.name
    )


def _suggestions(adapter: IbkrAdapter, ticker: str) -> str:
    """`` IBKR's symbol search suggests: ...`` for stocks matching ``ticker``, or ""."""
    try:
        listed = adapter.matching_symbols(ticker)
    except GatewayUnavailableError:
        return ""
    found = [
        f"{m['symbol']} ({m['description']}, {m['primaryExchange']}, {m['currency']})"
        for m in listed
        if m["secType"] == "STK"
    ][:MAX_SUGGESTIONS]
    return f" IBKR's symbol search suggests: {'; '.join(found)}" if found else ""
