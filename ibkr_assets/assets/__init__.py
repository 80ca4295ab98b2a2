"""Software-defined assets: thin wrappers that load, call the domain, record and return.

Every asset is built per strategy by ``build_strategy_assets``: the same graph, keyed
``[strategy_id, name]`` in the strategy's own group and partitions.
"""

import dagster as dg

from ibkr_assets.strategies.config import StrategyConfig


def build_strategy_assets(strategy: StrategyConfig) -> list[dg.AssetsDefinition]:
    """``strategy``'s assets, market data (with its quality checks) through portfolio snapshot."""
    from ibkr_assets.assets.charts import build_charts
    from ibkr_assets.assets.indicators import build_indicators
    from ibkr_assets.assets.llm_analysis import build_llm_analysis
    from ibkr_assets.assets.market_data import build_market_data
    from ibkr_assets.assets.orders import build_order
    from ibkr_assets.assets.portfolio import build_portfolio_snapshot
    from ibkr_assets.assets.trading_signal import build_trading_signal

    return [
        build_market_data(strategy),
        build_indicators(strategy),
        build_charts(strategy),
        build_llm_analysis(strategy),
        build_trading_signal(strategy),
        build_order(strategy),
        build_portfolio_snapshot(strategy),
    ]
