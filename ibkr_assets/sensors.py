"""Sensors: each strategy's symbol partitions, order tracking, run failures, portfolio upkeep."""

import dagster as dg

from ibkr_assets.brokers.base import Simulator
from ibkr_assets.monitoring.run_failures import build_run_failure_sensor
from ibkr_assets.partitions import symbols_partition_name
from ibkr_assets.resources.broker import BrokerResource, current_session
from ibkr_assets.resources.market_data import MarketDataResource
from ibkr_assets.settings import load_settings, read_setting
from ibkr_assets.strategies.config import StrategyConfig, StrategyConfigError, current_strategy


def build_symbol_sensor(strategy: StrategyConfig) -> dg.SensorDefinition:
    """``{id}_symbols_sensor``: keeps the strategy's ``{id}_symbols`` partitions in sync."""
    partitions = symbols_partition_name(strategy.id)

    @dg.sensor(
        name=f"{strategy.id}_symbols_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(
        context: dg.SensorEvaluationContext, market_data_source: MarketDataResource
    ) -> dg.SensorResult | dg.SkipReason:
        """Adds every symbol the strategies file lists for this strategy to its partitions, once
        it resolves (IBKR contract id when the source is IBKR, else the source knows it).

        The file is read at every tick, so a symbol added to it appears without a restart.
        Only adds: a symbol removed from the file keeps its history. An unknown symbol is
        refused with the reason and never becomes a partition.
        """
        from ibkr_assets.symbols import resolve_strategy_symbols

        try:
            current = current_strategy(strategy.id)
        except StrategyConfigError as exc:
            return dg.SkipReason(f"strategies file is invalid, no symbols added: {exc}")
        if current is None:
            return dg.SkipReason(
                f"strategy {strategy.id!r} is no longer in the strategies file; reload the code "
                "location to remove its assets"
            )
        have = set(context.instance.get_dynamic_partitions(partitions))
        source = market_data_source.source_for(current)
        known, errors = resolve_strategy_symbols(load_settings(), current, source)
        for symbol, message in errors.items():
            context.log.warning(f"{symbol} not added: {message}")
        new = [info.symbol for info in known if info.symbol not in have]
        refused = f"; refused: {'; '.join(errors.values())}" if errors else ""
        if not new:
            return dg.SkipReason(
                f"all {len(known)} resolved symbols are already partitions{refused}"
            )
        return dg.SensorResult(
            dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest(partitions, new)]
        )

    return _sensor


def build_order_tracking_sensor(strategies: list[StrategyConfig]) -> dg.SensorDefinition:
    @dg.sensor(
        name="order_tracking_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: dg.SensorEvaluationContext, broker: BrokerResource) -> dg.SkipReason:
        """Polls each strategy's broker for the current session and records order state
        changes and fills.

        Historical orders live in the simulator, whose fills come from bars, so only the broker
        for the current session is polled.
        """
        from ibkr_assets.execution.tracking import OrderTracker

        notes, failures = [], []
        for strategy in strategies:
            try:  # one strategy's unreachable broker must not stop the others being tracked
                session = current_session(strategy.schedule.calendar)
                chosen, mode = broker.broker_for(strategy, session)
                account = (
                    chosen.account_name
                    if isinstance(chosen, Simulator)
                    else f"{chosen.name}:{mode}"
                )
                tracker = OrderTracker(broker.database_url, account)
                result = tracker.poll(chosen)
            except Exception as exc:
                context.log.error(f"{strategy.id}: order tracking failed: {exc}")
                failures.append(f"{strategy.id}: {type(exc).__name__}: {exc}")
                continue
            for change in result.changes:
                context.log.info(
                    f"{strategy.id} {change['order_ref']} {change['broker_order_id']}: "
                    f"{change['status']}"
                )
            notes.append(
                f"{strategy.id} ({mode}): {len(result.changes)} order state change(s), "
                f"{len(result.new_fills)} new fill(s) recorded"
            )
        if failures and not notes:
            raise dg.DagsterError(
                "order tracking failed for every strategy: " + "; ".join(failures)
            )
        return dg.SkipReason("; ".join(notes + [f"FAILED {f}" for f in failures]))

    return _sensor


run_failure_sensor = build_run_failure_sensor(
    database_url_getter=lambda: load_settings().lineage_url,
    webhook_url_getter=lambda: read_setting("alert_webhook_url"),
)


def build_portfolio_automation_sensor(strategies: list[StrategyConfig]) -> dg.SensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        "portfolio_automation_sensor",
        target=dg.AssetSelection.assets(*[[s.id, "portfolio_snapshot"] for s in strategies]),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Brings each date's portfolio_snapshot up to date after that date's orders.",
    )
