"""The chart resource: how charts are drawn and how many processes draw them."""

from __future__ import annotations

import dagster as dg


class ChartsResource(dg.ConfigurableResource):
    """``workers``: processes for a range of charts (None: one per core)."""

    bars_shown: int = 120
    width_px: int = 1200
    height_px: int = 900
    workers: int | None = None
