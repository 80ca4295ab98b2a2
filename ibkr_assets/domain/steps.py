"""The workflow's steps in order: ``step_number`` in lineage rows comes from here."""

from __future__ import annotations

STEPS: tuple[str, ...] = (
    "market_data",
    "market_data_quality",
    "indicators",
    "daily_chart",
    "weekly_chart",
    "llm_analysis",
    "trading_signal",
    "order",
    "portfolio_snapshot",
)


def step_number(step: str) -> int:
    """1-based position of ``step`` in the workflow."""
    try:
        return STEPS.index(step) + 1
    except ValueError:
        raise ValueError(f"unknown workflow step {step!r}; known: {', '.join(STEPS)}") from None
