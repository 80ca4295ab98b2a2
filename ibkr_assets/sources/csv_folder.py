"""Bars from a folder of ``{SYMBOL}.csv`` files: how a user brings their own history.

Columns Date, Open, High, Low, Close, Volume (header case-insensitive; Adj Close and any other
column ignored). Rows are kept as written: bad values become NaN and are reported by the
quality gates, not silently fixed here.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from ibkr_assets.domain.bars import BarFormatError, normalize_bars, window_ending
from ibkr_assets.sources.base import FetchGuard, SourceUnavailableError, UnknownSymbolError


class CsvFolderSource:
    """Daily bars read from ``{folder}/{SYMBOL}.csv``."""

    name = "csv"
    synthetic = False

    def __init__(self, folder: str | Path, guard: FetchGuard | None = None) -> None:
        self.folder = Path(folder)
        self._guard = guard
        self._cache: dict[str, tuple[float, pd.DataFrame]] = {}

    def fetch_bars(self, symbol: str, end: dt.date, bars: int) -> pd.DataFrame:
        if self._guard:
            self._guard(symbol, end)
        return window_ending(self._read(symbol), end, bars)

    def symbols(self) -> list[str]:
        """Symbols that have a file in the folder."""
        return sorted(p.stem.upper() for p in self.folder.glob("*.csv"))

    def _path(self, symbol: str) -> Path:
        if not self.folder.is_dir():
            raise SourceUnavailableError(
                f"csv source folder {self.folder}/ does not exist; set IBKR_ASSETS_CSV_DIR "
                "to a folder of {SYMBOL}.csv files"
            )
        for candidate in (symbol, symbol.upper(), symbol.lower()):
            path = self.folder / f"{candidate}.csv"
            if path.is_file():
                return path
        raise UnknownSymbolError(
            f"unknown symbol {symbol!r} for the csv source (no {symbol}.csv in {self.folder}/)"
        )

    def _read(self, symbol: str) -> pd.DataFrame:
        path = self._path(symbol)
        mtime = path.stat().st_mtime
        cached = self._cache.get(symbol)
        if cached and cached[0] == mtime:
            return cached[1]
        try:
            raw = pd.read_csv(path, dtype=str, skipinitialspace=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise BarFormatError(f"{path}: cannot be read as CSV ({exc})") from exc
        frame = normalize_bars(raw, origin=str(path))
        self._cache[symbol] = (mtime, frame)
        return frame
