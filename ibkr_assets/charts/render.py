"""Render a bar frame with its indicators to a PNG with mplfinance.

One chart: candles and volume, SMA(20), SMA(50) and Bollinger(20, 2) over the price, an RSI(14)
panel with its 30/70 lines and a MACD(12, 26, 9) panel. The PNG is exactly ``width_px`` x
``height_px`` and byte-identical for the same input (no software or time stamp in its
metadata), so a chart can be content-addressed and compared across runs.

A chart costs about half a second of CPU in matplotlib, so ``render_many`` spreads a batch
over processes. matplotlib and mplfinance are imported inside the functions that draw: they
take over a second to import, which callers that never draw should not pay.

Longer than most modules: the panels of one chart and the process pool that draws a batch share
the same figure settings.
"""

from __future__ import annotations

import datetime as dt
import gc
import io
import multiprocessing
import os
import struct
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np
import pandas as pd

from ibkr_assets.domain.bars import BAR_COLUMNS

Timeframe = Literal["daily", "weekly"]

INDICATOR_INPUTS: list[str] = [
    "sma_20",
    "sma_50",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
]
REQUIRED_COLUMNS: list[str] = [*BAR_COLUMNS, *INDICATOR_INPUTS]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_STYLE = "yahoo"
_RSI_LEVELS = (30.0, 70.0)
# Margins in inches, so the labels keep their room at any pixel size (fonts are sized in
# points); the y-axis labels of the chosen style are on the right.
_MARGINS_IN = {"left": 0.15, "right": 1.0, "top": 0.55, "bottom": 0.45}
_TITLE_CENTRE_IN = 0.28  # from the top edge
_HIST_WIDTH = 0.7  # of the spacing between bars
# mplfinance's default margins as fractions of the figure, which ``scale_padding`` multiplies.
_MPF_PADDING = {"left": 0.18, "right": 0.10, "top": 0.12, "bottom": 0.18}


@dataclass(frozen=True)
class ChartSpec:
    """What to draw: whose bars, as of which day, how many of them and at what pixel size."""

    symbol: str
    as_of: dt.date
    timeframe: Timeframe
    bars_shown: int = 120
    width_px: int = 1200
    height_px: int = 900
    dpi: int = 100

    def __post_init__(self) -> None:
        if self.timeframe not in ("daily", "weekly"):
            raise ValueError(
                f"{self.symbol}: timeframe must be 'daily' or 'weekly', not {self.timeframe!r}"
            )
        for name in ("bars_shown", "width_px", "height_px", "dpi"):
            if getattr(self, name) < 1:
                raise ValueError(f"{self.symbol}: {name} must be positive")


@dataclass(frozen=True)
class RenderedChart:
    """A rendered PNG and what is on it. ``indicators`` lists only what was actually drawn."""

    png: bytes
    width: int
    height: int
    timeframe: str
    bars_count: int
    indicators: list[str]


def render_chart(frame: pd.DataFrame, spec: ChartSpec) -> RenderedChart:
    """Draw the last ``spec.bars_shown`` rows of ``frame`` (bars plus ``compute_indicators``
    columns) as a PNG of exactly ``spec.width_px`` x ``spec.height_px`` pixels.

    An overlay or panel whose values are all NaN in the shown rows (SMA(50) over fewer than 50
    bars, say) is left out, and left out of ``indicators``. Raises ``ValueError`` naming the
    symbol when there is nothing to draw, a required column is missing, a shown row has no date,
    or a shown bar is dated after ``spec.as_of`` (a chart "as of" a day must not show later data).
    """
    shown = _shown_rows(frame, spec)
    plan = _ChartPlan.build(shown)
    width_in, height_in = spec.width_px / spec.dpi, spec.height_px / spec.dpi
    mpl, plt, mpf = _plotting_modules()
    # mplfinance applies its style to the global rcParams: keep that inside this call.
    with mpl.rc_context():
        fig, axes = mpf.plot(
            plan.data,
            type="candle",
            style=_STYLE,
            volume=plan.volume,
            addplot=plan.addplots(mpf),
            num_panels=plan.panel_count,
            panel_ratios=plan.panel_ratios,
            figsize=(width_in, height_in),
            scale_padding=_padding(width_in, height_in),
            title={
                "title": f"{spec.symbol}  {spec.timeframe}  as of {spec.as_of.isoformat()}",
                "y": 1.0 - _TITLE_CENTRE_IN / height_in,
                "fontweight": "bold",  # the style's "semibold" is not in the bundled font
            },
            ylabel="Price",
            ylabel_lower="Volume",
            datetime_format="%Y-%m-%d",
            xrotation=0,
            warn_too_much_data=len(shown) + 1,
            returnfig=True,
        )
        try:
            main = axes[0]  # axes come in (primary, secondary) pairs, one pair per panel
            if main.get_legend() is not None:
                # A fixed corner: mplfinance's default "best" placement searches at draw time.
                main.legend(loc="upper left", fontsize="small", framealpha=0.6)
            if plan.rsi_panel is not None:
                axes[2 * plan.rsi_panel].set_yticks(_RSI_LEVELS)
            if plan.macd_panel is not None:
                _draw_histogram(axes[2 * plan.macd_panel], plan.data["macd_hist"].to_numpy())
            buffer = io.BytesIO()
            # No bbox_inches="tight": it would crop the figure to a different pixel size.
            fig.savefig(buffer, format="png", dpi=spec.dpi, metadata={"Software": None})
        finally:
            plt.close(fig)
    png = buffer.getvalue()
    width, height = _png_size(png)
    return RenderedChart(
        png=png,
        width=width,
        height=height,
        timeframe=spec.timeframe,
        bars_count=len(shown),
        indicators=plan.indicators,
    )


def render_many(
    jobs: Sequence[tuple[pd.DataFrame, ChartSpec]], workers: int | None = None
) -> list[RenderedChart]:
    """``render_chart`` for every ``(frame, spec)``, in input order, on up to ``workers``
    processes (default: one per CPU, at most one per job)."""
    return list(render_each(jobs, workers))


def render_each(
    jobs: Iterable[tuple[pd.DataFrame, ChartSpec]],
    workers: int | None = None,
    *,
    count: int | None = None,
) -> Iterator[RenderedChart]:
    """Like ``render_many``, but yields each chart, in input order, as soon as it is drawn, so
    the caller can store one while the pool draws the next. With ``count`` (how many jobs
    there are), ``jobs`` may be a lazy iterator: the pool starts drawing the first chart while
    the caller still prepares the others.

    Charts are CPU-bound Python, so threads would not help; processes are forked where the
    platform allows (children inherit the already-imported plotting modules), else spawned.
    The bytes are the same as rendering serially.
    """
    if count is None:
        jobs = list(jobs)
        count = len(jobs)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    processes = min(workers or os.cpu_count() or 1, count)
    if processes <= 1:
        for frame, spec in jobs:
            yield render_chart(frame, spec)
        return
    _plotting_modules()  # import once here, so forked workers do not each pay for it
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        # Forked workers start on the first submit. Frozen, the objects they inherit are left
        # alone by their garbage collector, which would otherwise walk (and so copy) the
        # parent's whole heap again and again while matplotlib churns through objects.
        already_frozen = gc.get_freeze_count() > 0  # by the caller: leave that to it
        gc.freeze()
        try:
            charts = pool.map(_render_job, jobs)
        finally:
            if not already_frozen:
                gc.unfreeze()
        yield from charts


def _render_job(job: tuple[pd.DataFrame, ChartSpec]) -> RenderedChart:
    return render_chart(*job)


def _shown_rows(frame: pd.DataFrame, spec: ChartSpec) -> pd.DataFrame:
    """The rows to draw, after checking they can be drawn honestly."""
    symbol = spec.symbol
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{symbol}: cannot chart a frame without column(s) {', '.join(missing)} "
            "(expected bars plus compute_indicators output)"
        )
    if frame.empty:
        raise ValueError(f"{symbol}: no bars to chart")
    shown = frame.tail(spec.bars_shown)
    dates = shown["date"]
    if dates.isna().any():
        raise ValueError(f"{symbol}: cannot chart bars without a date")
    if dates.max() > pd.Timestamp(spec.as_of):
        raise ValueError(
            f"{symbol}: bar dated {dates.max().date()} is after the chart's as_of date {spec.as_of}"
        )
    if not np.isfinite(shown["close"].to_numpy(dtype=np.float64)).any():
        raise ValueError(f"{symbol}: no prices to chart in the last {len(shown)} bars")
    return shown


@dataclass(frozen=True)
class _ChartPlan:
    """Which overlays and panels a chart gets, decided from the data alone."""

    data: pd.DataFrame  # indexed by date, as mplfinance wants
    overlays: tuple[tuple[str, str, str, str], ...]  # (column, label, color, linestyle)
    bollinger: bool
    volume: bool
    rsi_panel: int | None
    macd_panel: int | None
    panel_count: int
    indicators: list[str]

    @classmethod
    def build(cls, shown: pd.DataFrame) -> _ChartPlan:
        data = shown.loc[:, REQUIRED_COLUMNS[1:]].astype("float64")
        data.index = pd.DatetimeIndex(shown["date"].to_numpy(), name="date")

        def drawable(column: str) -> bool:
            return bool(np.isfinite(data[column].to_numpy()).any())

        indicators: list[str] = []
        overlays = []
        for column, name, label, color in (
            ("sma_20", "SMA_20", "SMA 20", "tab:orange"),
            ("sma_50", "SMA_50", "SMA 50", "tab:purple"),
        ):
            if drawable(column):
                overlays.append((column, label, color, "-"))
                indicators.append(name)
        bollinger = drawable("bb_middle")
        if bollinger:
            indicators.append("BB_20_2")
        panel = 1
        volume = drawable("volume")
        if volume:
            panel += 1  # volume takes panel 1, mplfinance's default
        rsi_panel = macd_panel = None
        if drawable("rsi_14"):
            rsi_panel, panel = panel, panel + 1
            indicators.append("RSI_14")
        if drawable("macd"):
            macd_panel, panel = panel, panel + 1
            indicators.append("MACD_12_26_9")
        if volume:
            indicators.append("VOLUME")
        return cls(
            data=data,
            overlays=tuple(overlays),
            bollinger=bollinger,
            volume=volume,
            rsi_panel=rsi_panel,
            macd_panel=macd_panel,
            panel_count=panel,
            indicators=indicators,
        )

    @property
    def panel_ratios(self) -> tuple[float, ...]:
        """The price panel gets most of the height; each lower panel a fixed share."""
        lower = [1.2] if self.volume else []
        lower += [1.5] * (self.panel_count - 1 - len(lower))
        return (5.0, *lower)

    def addplots(self, mpf: ModuleType) -> list[dict[str, Any]]:
        data = self.data
        # secondary_y=False throughout: mplfinance's "auto" check fails on an all-NaN series.
        plots = [
            mpf.make_addplot(
                data[column],
                panel=0,
                color=color,
                linestyle=style,
                width=1.2,
                label=label,
                secondary_y=False,
            )
            for column, label, color, style in self.overlays
        ]
        if self.bollinger:
            for column in ("bb_upper", "bb_middle", "bb_lower"):
                # One legend entry for the three lines (mplfinance rejects label=None).
                label = {"label": "BB 20,2"} if column == "bb_upper" else {}
                plots.append(
                    mpf.make_addplot(
                        data[column],
                        panel=0,
                        color="tab:blue",
                        linestyle=":" if column == "bb_middle" else "--",
                        width=0.9,
                        alpha=0.8,
                        secondary_y=False,
                        **label,
                    )
                )
        if self.rsi_panel is not None:
            plots.append(
                mpf.make_addplot(
                    data["rsi_14"],
                    panel=self.rsi_panel,
                    color="tab:purple",
                    width=1.2,
                    ylabel="RSI 14",
                    ylim=(0.0, 100.0),
                    secondary_y=False,
                )
            )
            for level in _RSI_LEVELS:
                plots.append(
                    mpf.make_addplot(
                        pd.Series(level, index=data.index),
                        panel=self.rsi_panel,
                        color="grey",
                        linestyle="--",
                        width=0.8,
                        secondary_y=False,
                    )
                )
        if self.macd_panel is not None:
            # The histogram is added after plotting (see ``_draw_histogram``).
            plots += [
                mpf.make_addplot(
                    data["macd"],
                    panel=self.macd_panel,
                    color="tab:blue",
                    width=1.1,
                    ylabel="MACD",
                    secondary_y=False,
                ),
                mpf.make_addplot(
                    data["macd_signal"],
                    panel=self.macd_panel,
                    color="tab:orange",
                    width=1.1,
                    secondary_y=False,
                ),
            ]
        return plots


def _draw_histogram(ax: Any, values: np.ndarray) -> None:
    """MACD histogram bars as one polygon collection, green above zero and red below.

    mplfinance's ``type="bar"`` addplot makes one Rectangle artist per bar through
    ``Axes.bar``, which costs about a sixth of a whole chart; one collection draws the same
    bars for a fraction of that. x positions are the bar indexes mplfinance plots against.
    """
    from matplotlib.collections import PolyCollection

    x = np.flatnonzero(np.isfinite(values))
    if x.size == 0:
        return
    height = values[x]
    left, right = x - _HIST_WIDTH / 2, x + _HIST_WIDTH / 2
    zero = np.zeros_like(height)
    corners = np.stack(
        [
            np.column_stack([left, zero]),
            np.column_stack([left, height]),
            np.column_stack([right, height]),
            np.column_stack([right, zero]),
        ],
        axis=1,
    )
    colors = np.where(height >= 0, "tab:green", "tab:red").tolist()
    bars = PolyCollection(corners, facecolors=colors, edgecolors="none", alpha=0.6, zorder=1)
    ax.add_collection(bars, autolim=True)
    ax.autoscale_view(scalex=False)  # the x range is shared by every panel; keep it


def _padding(width_in: float, height_in: float) -> dict[str, float]:
    """mplfinance ``scale_padding`` factors that give the margins in ``_MARGINS_IN``."""
    size = {"left": width_in, "right": width_in, "top": height_in, "bottom": height_in}
    return {side: _MARGINS_IN[side] / size[side] / _MPF_PADDING[side] for side in _MARGINS_IN}


def _plotting_modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    """matplotlib, pyplot and mplfinance, imported on first use with the Agg backend.

    The backend is chosen only if pyplot is not loaded yet, so a host that already picked
    one keeps it; PNG output is rendered by Agg either way.
    """
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplfinance as mpf

    return matplotlib, plt, mpf


def _png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the PNG header (the IHDR chunk right after the signature)."""
    if not png.startswith(_PNG_SIGNATURE):
        raise RuntimeError("matplotlib did not produce a PNG")
    width, height = struct.unpack(">II", png[16:24])
    return width, height
