"""ibkr_assets: a Dagster asset graph for an IBKR trading-signal workflow with a full audit trail."""
