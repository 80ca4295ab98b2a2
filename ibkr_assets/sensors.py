"""Sensors."""

import os

import dagster as dg

from ibkr_assets.monitoring.run_failures import build_run_failure_sensor
from ibkr_assets.partitions import SYMBOLS_PARTITION_NAME
from ibkr_assets.resources.broker import BrokerResource, current_session
from ibkr_assets.resources.market_data import MarketDataResource
from ibkr_assets.settings import load_settings


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def symbol_partitions_sensor(
    context: dg.SensorEvaluationContext, market_data_source: MarketDataResource
) -> dg.SensorResult | dg.SkipReason:
    """Adds every configured symbol (``IBKR_ASSETS_SYMBOLS``) to the ``symbols`` partitions,
    once it resolves (IBKR contract id when the source is IBKR, else the source knows it).

    Only adds: a symbol removed from the configuration keeps its history. An unknown symbol is
    refused with the reason and never becomes a partition.
    """
    settings = load_settings()
    have = set(context.instance.get_dynamic_partitions(SYMBOLS_PARTITION_NAME))
    known, errors = resolve_configured_symbols(settings, market_data_source.get_source())
    for symbol, message in errors.items():
        context.log.warning(f"{symbol} not added: {message}")
    new = [info.symbol for info in known if info.symbol not in have]
    refused = f"; refused: {'; '.join(errors.values())}" if errors else ""
    if not new:
        return dg.SkipReason(f"all {len(known)} resolved symbols are already partitions{refused}")
    return dg.SensorResult(
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest(SYMBOLS_PARTITION_NAME, new)]
    )


def resolve_configured_symbols(settings, source, symbols: list[str] | None = None):
    """(known SymbolInfo list, {symbol: error}) for ``symbols`` (default: the configured ones),
    cached in the ``symbols`` table."""
    from ibkr_assets.symbols import SymbolRegistry, resolve_symbols, resolver_for

    registry = SymbolRegistry(settings.lineage_url)
    registry.create_schema()
    resolver = resolver_for(source, current_session(settings.calendar))
    return resolve_symbols(symbols or settings.symbols, registry=registry, resolver=resolver)


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def order_tracking_sensor(
    context: dg.SensorEvaluationContext, broker: BrokerResource
) -> dg.SkipReason:
    """Polls the broker for the current session and records order state changes and fills.

    Historical orders live in the simulator, whose fills come from bars, so only the broker for
    the current session is polled.
    """
    from ibkr_assets.execution.tracking import OrderTracker

    chosen, mode = broker.broker_for(current_session(broker.calendar))
    tracker = OrderTracker(
        broker.database_url, getattr(chosen, "account_name", f"{chosen.name}:{mode}")
    )
    result = tracker.poll(chosen)
    for change in result.changes:
        context.log.info(f"{change['order_ref']} {change['broker_order_id']}: {change['status']}")
    return dg.SkipReason(
        f"{mode}: {len(result.changes)} order state change(s), {len(result.new_fills)} new fill(s) recorded"
    )


run_failure_sensor = build_run_failure_sensor(
    database_url_getter=lambda: load_settings().lineage_url,
    webhook_url_getter=lambda: os.environ.get("IBKR_ASSETS_ALERT_WEBHOOK_URL") or None,
)


portfolio_automation_sensor = dg.AutomationConditionSensorDefinition(
    "portfolio_automation_sensor",
    target=dg.AssetSelection.assets("portfolio_snapshot"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Brings each date's portfolio_snapshot up to date after that date's orders.",
)
