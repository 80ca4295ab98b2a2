"""Jobs importable by name, for tests that re-execute runs (Dagster reloads them by reference)."""

from __future__ import annotations

import dagster as dg


def market_data_job() -> dg.JobDefinition:
    from ibkr_assets.definitions import build_definitions
    from ibkr_assets_tests.helpers import job_name

    return build_definitions().resolve_job_def(job_name("market_data_job"))
