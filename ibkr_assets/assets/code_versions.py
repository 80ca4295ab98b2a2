"""Each asset's code version: a digest of the source files its logic lives in.

It changes exactly when that logic changes, so Dagster marks what was made by older code as
stale and every lineage row records which code made it. The analysis step's version also names
the strategy's prompt template and version: a new prompt is new logic.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent

# How every value is encoded and recorded: part of every step's logic.
SHARED = ("assets/defaults.py", "assets/step.py", "storage/layout.py")

STEP_SOURCES: dict[str, tuple[str, ...]] = {
    "market_data": ("assets/market_data.py", "assets/quality_checks.py", "domain/bars.py",
                    "domain/market_data.py", "domain/quality.py", "domain/calendar.py", "sources",
                    "ibkr/bar_source.py"),
    "indicators": ("assets/indicators.py", "domain/indicators.py", "domain/indicator_set.py"),
    "daily_chart": ("assets/charts.py", "charts", "domain/resample.py", "domain/chart_image.py"),
    "weekly_chart": ("assets/charts.py", "charts", "domain/resample.py", "domain/chart_image.py"),
    "llm_analysis": ("assets/llm_analysis.py", "analysis", "domain/analysis.py"),
    "trading_signal": ("assets/trading_signal.py", "domain/signal.py"),
    "order": ("assets/orders.py", "execution", "brokers", "domain/orders.py", "domain/sizing.py",
              "domain/paper_fills.py", "domain/commissions.py"),
    "portfolio_snapshot": ("assets/portfolio.py", "domain/portfolio.py", "brokers/paper.py"),
}  # fmt: skip


def code_version(asset: str, prompt: str = "", root: Path = PACKAGE) -> str:
    """``asset``'s version: 12 hex digits over its source files (and ``prompt`` for analysis)."""
    sources = _package_digest(asset) if root == PACKAGE else _sources_digest(asset, root)
    digest = hashlib.sha256(sources.encode())
    digest.update(prompt.encode())
    return digest.hexdigest()[:12]


@cache
def _package_digest(asset: str) -> str:
    """The installed package's files do not change while it runs: read them once."""
    return _sources_digest(asset, PACKAGE)


def _sources_digest(asset: str, root: Path) -> str:
    digest = hashlib.sha256()
    for path in _files(root, (*SHARED, *STEP_SOURCES[asset])):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _files(root: Path, names: tuple[str, ...]) -> list[Path]:
    found: set[Path] = set()
    for name in names:
        path = root / name
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.suffix in (".py", ".md") and p.is_file())
        elif path.is_file():
            found.add(path)
        else:
            raise FileNotFoundError(f"code version of a step names {name}, which does not exist")
    return sorted(found)
