"""Line and area charts as SVG geometry, computed on the server (no JavaScript chart library).

``line_chart`` turns dated series into polyline points, axis ticks and hover titles that a
template draws; every value it returns is a number or a label the template escapes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Point = tuple[dt.date, float]


@dataclass
class Series:
    name: str
    css: str  # the class that colours it (viewer.css)
    points: list[tuple[float, float]] = field(default_factory=list)
    marks: list[dict[str, Any]] = field(default_factory=list)  # x, y and a title per point

    @property
    def polyline(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in self.points)


@dataclass
class Chart:
    width: int
    height: int
    left: int
    top: int
    plot_w: int
    plot_h: int
    series: list[Series]
    y_ticks: list[dict[str, Any]]
    x_ticks: list[dict[str, Any]]
    area: str | None = None  # a polygon (drawdown) from the zero line
    zero_y: float | None = None


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def line_chart(
    series: Sequence[tuple[str, str, Sequence[Point]]],
    *,
    width: int = 900,
    height: int = 260,
    fmt: str = "{:,.0f}",
    area: bool = False,
    floor_zero: bool = False,
) -> Chart | None:
    """A chart of ``(name, css class, [(date, value), ...])`` series; None without two points.

    ``area`` fills the first series down to (up to) zero, as a drawdown is drawn."""
    all_points = [(d, v) for _, _, pts in series for d, v in pts if v is not None]
    if len(all_points) < 2:
        return None
    left, right, top, bottom = 78, 16, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    dates = sorted({_date(d) for d, _ in all_points})
    d0, d1 = dates[0], dates[-1]
    span_days = max((d1 - d0).days, 1)
    values = [float(v) for _, v in all_points]
    lo, hi = min(values), max(values)
    if floor_zero or area:
        hi = max(hi, 0.0)
    if hi == lo:
        pad = abs(hi) * 0.01 or 1.0
        lo, hi = lo - pad, hi + pad

    def x_of(d: Any) -> float:
        return left + plot_w * (_date(d) - d0).days / span_days

    def y_of(v: float) -> float:
        return top + plot_h * (hi - float(v)) / (hi - lo)

    out = []
    for name, css, pts in series:
        s = Series(name, css)
        for d, v in pts:
            if v is None:
                continue
            x, y = x_of(d), y_of(v)
            s.points.append((x, y))
            s.marks.append({"x": round(x, 1), "y": round(y, 1),
                            "title": f"{name} {_date(d).isoformat()}: {fmt.format(float(v))}"})  # fmt: skip
        out.append(s)
    y_ticks = [{"y": round(y_of(v), 1), "label": fmt.format(v)}
               for v in (lo + (hi - lo) * i / 4 for i in range(5))]  # fmt: skip
    step = max(1, len(dates) // 6)
    picks = dates[::step]
    if picks[-1] != d1:
        picks.append(d1)
    x_ticks = [{"x": round(x_of(d), 1), "label": d.isoformat()} for d in picks]
    polygon, zero_y = None, None
    if area and out and out[0].points:
        zero_y = round(y_of(0.0), 1)
        pts = out[0].points
        polygon = " ".join(
            [f"{pts[0][0]:.1f},{zero_y}"] + [f"{x:.1f},{y:.1f}" for x, y in pts]
            + [f"{pts[-1][0]:.1f},{zero_y}"]
        )  # fmt: skip
    return Chart(width, height, left, top, plot_w, plot_h, out, y_ticks, x_ticks, polygon, zero_y)


def equity_and_drawdown(
    snapshots: list[dict[str, Any]], statistics: dict[str, Any] | None
) -> tuple[Chart | None, Chart | None]:
    """The equity curve (with buy-and-hold scaled to the same start) and the drawdown chart."""
    equity = [(s["snapshot_date"], s["equity"]) for s in snapshots if s.get("equity") is not None]
    series: list[tuple[str, str, list[Point]]] = [("strategy", "s-strategy", equity)]
    bh = ((statistics or {}).get("buy_and_hold") or {}).get("drawdown") or []
    if equity and bh and bh[0].get("value"):
        scale = float(equity[0][1]) / float(bh[0]["value"])
        series.append(("buy and hold", "s-bh",
                       [(p["date"], float(p["value"]) * scale) for p in bh]))  # fmt: skip
    eq_chart = line_chart(series, fmt="{:,.0f}")
    dd = ((statistics or {}).get("strategy") or {}).get("drawdown") or []
    if dd:
        dd_points = [(p["date"], float(p["drawdown"]) * 100) for p in dd]
    else:
        peak, dd_points = None, []
        for d, v in equity:
            peak = v if peak is None else max(peak, v)
            dd_points.append((d, (v / peak - 1) * 100 if peak else 0.0))
    dd_chart = line_chart([("drawdown %", "s-dd", dd_points)], height=180, fmt="{:.2f}%",
                          area=True)  # fmt: skip
    return eq_chart, dd_chart
