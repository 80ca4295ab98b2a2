"""The symbols table and symbol resolution: IBKR (against FakeIB) and the bar sources."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ibkr_assets.domain.symbols import SymbolInfo
from ibkr_assets.ibkr.adapter import IbkrAdapter
from ibkr_assets.ibkr.bar_source import IbkrBarSource
from ibkr_assets.sources.base import SourceUnavailableError, UnknownSymbolError
from ibkr_assets.sources.csv_folder import CsvFolderSource
from ibkr_assets.sources.sample import SampleBarSource
from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.symbol_registry import SymbolRegistry
from ibkr_assets.storage.tables import symbols
from ibkr_assets.symbols import (
    normalize_symbol,
    resolve_symbols,
    resolve_with_ibkr,
    resolve_with_source,
    resolver_for,
)
from ibkr_assets_tests.fakes.ib import FakeIB
from ibkr_assets_tests.test_ibkr_adapter import CONFIG
from ibkr_assets_tests.test_lineage_store import ddl_shapes, schemas  # noqa: F401

AS_OF = dt.date(2025, 1, 3)
AAPL = SymbolInfo("AAPL", 265598, "SMART", "NASDAQ", "USD", "APPLE INC", "ibkr")


def _adapter(fake: FakeIB) -> IbkrAdapter:
    return IbkrAdapter(CONFIG, ib_factory=lambda: fake, sleep=lambda _s: None)


def _refuse(symbol: str) -> SymbolInfo:
    raise AssertionError(f"the resolver was called for {symbol}")


@pytest.fixture
def registry(database_url: str) -> Iterator[SymbolRegistry]:
    registry = SymbolRegistry(database_url)
    registry.create_schema()
    yield registry
    with registry.engine.begin() as conn:  # the PostgreSQL database is shared by all tests
        conn.execute(symbols.delete())


@pytest.fixture
def fake() -> FakeIB:
    ib = FakeIB()
    ib.add_stock("AAPL", con_id=265598, description="APPLE INC")
    ib.add_stock("MSFT", con_id=272093, primary_exchange="NASDAQ", description="MICROSOFT CORP")
    return ib


# -- the table -----------------------------------------------------------------------------


def test_symbols_sql_matches_the_table(postgres_url: str, schemas: list[str]) -> None:  # noqa: F811
    sql_shape, metadata_shape = ddl_shapes(postgres_url, schemas, ["007_symbols.sql"], [symbols])
    assert set(sql_shape) == {"symbols"}
    assert sql_shape == metadata_shape
    table = sql_shape["symbols"]
    assert table["primary_key"] == ["symbol"]
    assert table["columns"]["con_id"][:2] == ("BIGINT", True)
    assert table["columns"]["resolved_at"][:2] == ("TIMESTAMP WITH TIME ZONE", False)
    assert [name for name, _ in table["checks"]] == ["ck_symbols_upper"]


def test_postgres_refuses_a_lower_case_symbol_row(postgres_url: str) -> None:
    SymbolRegistry(postgres_url).create_schema()
    row = dict(
        symbol="aapl",
        exchange="",
        primary_exchange="",
        currency="",
        name="",
        source="sample",
        resolved_at=dt.datetime.now(dt.timezone.utc),
    )
    with pytest.raises(sa.exc.IntegrityError, match="ck_symbols_upper"):
        with engine_for(postgres_url).begin() as conn:
            conn.execute(symbols.insert().values(**row))


# -- the registry --------------------------------------------------------------------------


def test_registry_saves_reads_and_upserts(registry: SymbolRegistry) -> None:
    registry.create_schema()  # safe to repeat
    msft = SymbolInfo("MSFT", None, "", "", "", "", "sample")
    before = dt.datetime.now(dt.timezone.utc)

    registry.save(msft)
    registry.save(AAPL)

    assert registry.all() == [AAPL, msft]  # alphabetical
    assert registry.get("aapl ") == AAPL
    assert registry.get("GOOGG") is None
    assert registry.get_many(["msft", "GOOGG", "AAPL"]) == {"MSFT": msft, "AAPL": AAPL}
    with registry.engine.connect() as conn:
        stamp = conn.execute(sa.select(symbols.c.resolved_at).where(symbols.c.symbol == "AAPL"))
        resolved_at = stamp.scalar_one()
    if resolved_at.tzinfo is None:  # SQLite keeps the UTC wall time without the offset
        resolved_at = resolved_at.replace(tzinfo=dt.timezone.utc)
    assert before <= resolved_at <= dt.datetime.now(dt.timezone.utc)

    renamed = SymbolInfo("MSFT", 272093, "SMART", "NASDAQ", "USD", "MICROSOFT CORP", "ibkr")
    registry.save(renamed)

    assert registry.all() == [AAPL, renamed]


def test_symbol_info_refuses_what_is_not_an_upper_case_ticker() -> None:
    for bad in ("aapl", " AAPL", "", "A|B", "BRK/B"):
        with pytest.raises(ValueError, match="upper-case ticker"):
            SymbolInfo(bad, None, "", "", "", "", "sample")
    with pytest.raises(ValueError, match="needs a source"):
        SymbolInfo("AAPL", None, "", "", "", "", "")


def test_normalize_symbol_keeps_real_tickers_and_refuses_the_rest() -> None:
    assert [normalize_symbol(s) for s in (" aapl", "brk b", "BRK.B", "bf-b")] == [
        "AAPL",
        "BRK B",
        "BRK.B",
        "BF-B",
    ]
    for bad in ("", "  ", "A|B", "BRK/B", "A..B", "X" * 21):
        with pytest.raises(UnknownSymbolError, match="not a ticker"):
            normalize_symbol(bad)


# -- IBKR ----------------------------------------------------------------------------------


def test_ibkr_resolves_conid_exchange_currency_and_name(fake: FakeIB) -> None:
    assert resolve_with_ibkr(_adapter(fake), " aapl") == AAPL


def test_ibkr_name_is_the_description_of_the_same_conid(fake: FakeIB) -> None:
    # The Toronto listing comes first in the search; the USD one is the stock asked for.
    fake.add_stock(
        "SHOP", con_id=195014247, primary_exchange="TSE", currency="CAD", description="SHOPIFY TSX"
    )
    fake.add_stock("SHOP", con_id=195014116, primary_exchange="NYSE", description="SHOPIFY INC A")

    info = resolve_with_ibkr(_adapter(fake), "SHOP")

    assert (info.con_id, info.primary_exchange, info.currency) == (195014116, "NYSE", "USD")
    assert info.name == "SHOPIFY INC A"
    (search,) = fake.calls_to("reqMatchingSymbols")
    assert len(search.result) == 2  # the search listed both; the USD listing's name was taken


def test_ibkr_name_is_empty_when_the_search_does_not_list_the_contract(
    fake: FakeIB, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = _adapter(fake)
    monkeypatch.setattr(adapter, "matching_symbols", lambda _pattern: [])

    info = resolve_with_ibkr(adapter, "MSFT")

    assert (info.con_id, info.name) == (272093, "")


def test_ibkr_unknown_symbol_names_the_symbol_and_where_it_was_looked_for(fake: FakeIB) -> None:
    with pytest.raises(UnknownSymbolError) as refused:
        resolve_with_ibkr(_adapter(fake), "GOOGG")

    message = str(refused.value)
    assert message.startswith("unknown symbol 'GOOGG': IBKR has no stock 'GOOGG' on SMART in USD")
    assert "suggests" not in message  # IB's search found nothing like it


def test_ibkr_unknown_symbol_lists_what_the_symbol_search_suggests(fake: FakeIB) -> None:
    with pytest.raises(UnknownSymbolError, match=r"suggests: AAPL \(APPLE INC, NASDAQ, USD\)$"):
        resolve_with_ibkr(_adapter(fake), "AAP")


def test_ibkr_unreachable_is_not_an_unknown_symbol(fake: FakeIB) -> None:
    fake.refuse_connections()

    with pytest.raises(SourceUnavailableError, match="not reachable"):
        resolve_with_ibkr(_adapter(fake), "AAPL")


def test_resolving_through_ibkr_caches_known_and_never_saves_unknown(
    fake: FakeIB, registry: SymbolRegistry
) -> None:
    adapter = _adapter(fake)

    known, errors = resolve_symbols(
        ["aapl", "GOOGG", "AAPL"],
        registry=registry,
        resolver=lambda s: resolve_with_ibkr(adapter, s),
    )

    assert known == [AAPL]
    assert list(errors) == ["GOOGG"]
    assert errors["GOOGG"].startswith("unknown symbol 'GOOGG'")
    assert "SMART in USD" in errors["GOOGG"]
    assert registry.all() == [AAPL]
    assert len(fake.calls_to("qualifyContracts")) == 2  # AAPL once, GOOGG once

    calls = len(fake.calls)
    again, errors_again = resolve_symbols(
        ["AAPL"], registry=registry, resolver=lambda s: resolve_with_ibkr(adapter, s)
    )
    assert (again, errors_again) == ([AAPL], {})
    assert len(fake.calls) == calls  # served from the table

    other = FakeIB()  # another process: its own adapter, the same table
    cached, _ = resolve_symbols(
        ["AAPL"], registry=registry, resolver=lambda s: resolve_with_ibkr(_adapter(other), s)
    )
    assert cached == [AAPL]
    assert other.calls == []  # not even a connection


def test_resolution_stops_when_the_answer_is_not_known(
    fake: FakeIB, registry: SymbolRegistry
) -> None:
    adapter = _adapter(fake)
    resolve_symbols(["AAPL"], registry=registry, resolver=lambda s: resolve_with_ibkr(adapter, s))
    fake.time_out_next("qualifyContracts")

    with pytest.raises(SourceUnavailableError, match="contract lookup for MSFT"):
        resolve_symbols(
            ["AAPL", "MSFT"], registry=registry, resolver=lambda s: resolve_with_ibkr(adapter, s)
        )
    assert [i.symbol for i in registry.all()] == ["AAPL"]


# -- bar sources ---------------------------------------------------------------------------


def test_sample_source_knows_its_universe_and_refuses_the_rest(registry: SymbolRegistry) -> None:
    source = SampleBarSource()

    known, errors = resolve_symbols(
        ["NVDA", "GOOGG"],
        registry=registry,
        resolver=lambda s: resolve_with_source(source, s, AS_OF),
    )

    assert known == [SymbolInfo("NVDA", None, "", "", "", "", "sample")]
    assert list(errors) == ["GOOGG"]
    assert errors["GOOGG"].startswith("unknown symbol 'GOOGG' for the sample source")
    assert registry.all() == known
    again, _ = resolve_symbols(["nvda"], registry=registry, resolver=_refuse)
    assert again == known


def test_sample_source_accepts_a_known_symbol_without_bars_in_the_window() -> None:
    info = resolve_with_source(SampleBarSource(), "AAPL", dt.date(2000, 1, 3))

    assert (info.symbol, info.source) == ("AAPL", "sample")


def test_csv_folder_knows_the_files_it_has(tmp_path: Path, registry: SymbolRegistry) -> None:
    # Only bars after AS_OF: an empty window, but the file makes MSFT known.
    (tmp_path / "msft.csv").write_text(
        "Date,Open,High,Low,Close,Volume\n2025-02-03,1,2,0.5,1.5,100\n"
    )
    source = CsvFolderSource(tmp_path)
    assert source.fetch_bars("MSFT", AS_OF, 1).empty

    known, errors = resolve_symbols(
        ["msft", "IBM"], registry=registry, resolver=lambda s: resolve_with_source(source, s, AS_OF)
    )

    assert known == [SymbolInfo("MSFT", None, "", "", "", "", "csv")]
    assert list(errors) == ["IBM"]
    assert "unknown symbol 'IBM' for the csv source (no IBM.csv in" in errors["IBM"]
    assert registry.get("IBM") is None


def test_a_missing_csv_folder_is_unavailable_not_unknown(
    tmp_path: Path, registry: SymbolRegistry
) -> None:
    source = CsvFolderSource(tmp_path / "missing")

    with pytest.raises(SourceUnavailableError, match="does not exist"):
        resolve_symbols(
            ["MSFT"], registry=registry, resolver=lambda s: resolve_with_source(source, s, AS_OF)
        )
    assert registry.all() == []


def test_ibkr_bar_source_refusal_is_reworded_to_name_symbol_and_source(fake: FakeIB) -> None:
    with pytest.raises(UnknownSymbolError) as refused:
        resolve_with_source(IbkrBarSource(_adapter(fake)), "GOOGG", AS_OF)

    assert str(refused.value).startswith("unknown symbol 'GOOGG' for the ibkr source: IBKR has no")


def test_invalid_symbols_are_refused_without_asking_anyone(registry: SymbolRegistry) -> None:
    known, errors = resolve_symbols(["", "A|B"], registry=registry, resolver=_refuse)

    assert known == []
    assert set(errors) == {"", "A|B"}
    assert all("not a ticker" in message for message in errors.values())
    assert registry.all() == []


# -- choosing the resolver -----------------------------------------------------------------


def test_resolver_for_uses_ibkr_when_configured_else_the_source(fake: FakeIB) -> None:
    adapter = _adapter(fake)

    assert resolver_for(SampleBarSource(), AS_OF)("AAPL").source == "sample"
    assert resolver_for(SampleBarSource(), AS_OF, adapter)("AAPL") == AAPL
    assert resolver_for(IbkrBarSource(adapter), AS_OF)("AAPL") == AAPL
    assert fake.calls_to("reqHistoricalData") == []  # IBKR resolves without fetching bars


def test_a_symbol_cached_from_one_source_is_checked_against_another(registry, tmp_path) -> None:
    """Strategies on different sources share the table but not each other's knowledge."""
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "ZZZZ.csv").write_text("Date,Open,High,Low,Close,Volume\n2025-03-14,1,2,1,2,10\n")
    day = dt.date(2025, 3, 14)
    csv, sample = CsvFolderSource(str(folder)), SampleBarSource()
    known, _ = resolve_symbols(
        ["ZZZZ"], registry=registry, resolver=resolver_for(csv, day), source=csv.name
    )
    assert [k.source for k in known] == ["csv"]
    known, errors = resolve_symbols(
        ["ZZZZ"], registry=registry, resolver=resolver_for(sample, day), source=sample.name
    )
    assert known == [] and "ZZZZ" in errors
    assert registry.get("ZZZZ").source == "csv"  # the first source's row is kept
