"""``order``: what was sent to the broker for each partition, or why nothing was.

Partitions are handled in date order. For each session the simulator first catches up with
that session's bars (fills of earlier orders), then each symbol's signal becomes a bracket buy,
a close, or no order; then the account is snapshotted for the session. The order's identity
(strategy, symbol, date) travels to the broker, so nothing is ever sent twice.
"""

import datetime as dt
import itertools

import dagster as dg

from ibkr_assets.assets.defaults import by_partition, workflow_asset
from ibkr_assets.domain.bars import BAR_COLUMNS
from ibkr_assets.domain.indicator_set import IndicatorSet
from ibkr_assets.domain.orders import OrderOutcome, order_ref
from ibkr_assets.domain.signal import TradingSignal
from ibkr_assets.domain.skipped import Skipped
from ibkr_assets.execution.decision import OrderDecision, decide
from ibkr_assets.execution.placement import place_once
from ibkr_assets.partitions import split_key
from ibkr_assets.resources.broker import BrokerResource
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.object_store import ObjectStoreResource, object_ref
from ibkr_assets.storage.order_records import OrderRecords
from ibkr_assets.strategies.config import StrategyConfig


def build_order(strategy: StrategyConfig) -> dg.AssetsDefinition:
    @workflow_asset(strategy, name="order", kinds={"ibkr"})
    def order(
        context: dg.AssetExecutionContext,
        trading_signal: dict,
        indicators: dict[str, IndicatorSet],
        broker: BrokerResource,
        object_store: ObjectStoreResource,
        lineage: LineageResource,
    ) -> dg.Output[dict]:
        """BUY with no position: bracket buy sized by risk. SELL with a position: close it.
        HOLD, not actionable, kill switch: no order, and the row says why."""
        return _materialize(
            context, trading_signal, indicators, broker.for_strategy(strategy), object_store,
            lineage,
        )  # fmt: skip

    return order


def _materialize(
    context: dg.AssetExecutionContext,
    trading_signal: dict,
    indicators: dict[str, IndicatorSet],
    broker: BrokerResource,
    object_store: ObjectStoreResource,
    lineage: LineageResource,
) -> dg.Output[dict]:
    recorder = lineage.recorder(context, "order", broker.account)
    records = OrderRecords(broker.database_url)
    records.create_schema()
    strategy = broker.account
    values: dict = {}
    by_date = itertools.groupby(sorted(context.partition_keys), key=lambda k: split_key(k)[0])
    for day_text, keys in by_date:
        day = dt.date.fromisoformat(day_text)
        chosen, mode = broker.broker_for(day)
        keys = list(keys)
        for key in keys:  # the session's bars first: fills of earlier orders
            ind = indicators[key]
            if ind.is_tradable and hasattr(chosen, "sync"):
                chosen.sync(ind.symbol, ind.frame[BAR_COLUMNS])
        for key in keys:
            values[key] = _order_for(context, key, trading_signal[key], indicators[key], chosen, mode, broker,
                                     records, strategy, recorder, object_store)  # fmt: skip
        _record_session_snapshot(chosen, day, {k: values[k] for k in keys})
    row_ids = recorder.flush()
    outcomes = [v for v in values.values() if isinstance(v, OrderOutcome)]
    return dg.Output(
        values,
        metadata={
            "partitions": len(values),
            "placed": sum(o.outcome == "placed" for o in outcomes),
            "existing_or_reconciled": sum(
                o.outcome in ("existing", "reconciled") for o in outcomes
            ),
            "no_order": sum(o.outcome == "none" for o in outcomes),
            "modes": dg.MetadataValue.json(sorted({o.mode for o in outcomes})),
            **by_partition("lineage_row_ids", row_ids, len(values)),
        },
    )


def _order_for(
    context, key, signal, ind, chosen, mode, broker, records, strategy, recorder, object_store
):
    if isinstance(signal, Skipped):
        recorder.add(
            key,
            status=signal.status,
            input_data={"trading_signal": signal.summary()},
            output_data={
                **signal.summary(),
                "object": object_ref(object_store, strategy, "order", key, signal),
            },
            metadata={"mode": mode},
        )
        return signal
    assert isinstance(signal, TradingSignal)
    ref = order_ref(strategy, signal.symbol, signal.as_of)
    positions = {p.symbol: p for p in chosen.positions()}
    held = positions[signal.symbol].quantity if signal.symbol in positions else 0
    account = chosen.account()
    equity = account.cash + sum(
        p.quantity * p.avg_cost for s, p in positions.items() if s != signal.symbol
    )
    equity += held * signal.last_close
    kill_switch = broker.kill_switch()
    decision = decide(
        signal,
        order_ref=ref,
        position=held,
        equity=equity,
        limits=broker.limits(),
        kill_switch=kill_switch,
    )
    decision = _refuse_if_simulator_moved_on(decision, chosen, signal)
    inputs = {
        "trading_signal": {k: getattr(signal, k) for k in ("action", "confidence", "entry_price", "stop_loss",
                                                            "take_profit", "is_actionable")},
        "position_before": held,
        "equity": round(equity, 2),
        "order_ref": ref,
        "mode": mode,
        "broker": chosen.name,
    }  # fmt: skip
    try:
        placement = place_once(
            decision,
            order_ref=ref,
            symbol=signal.symbol,
            session=signal.as_of,
            broker=chosen,
            records=records,
            strategy_id=strategy,
            mode=mode,
            run_id=context.run.run_id,
            final=kill_switch is None,
        )
    except Exception as exc:
        recorder.add(key, status="error", input_data=inputs, output_data={}, error=f"{type(exc).__name__}: {exc}",
                     metadata={"mode": mode})  # fmt: skip
        recorder.flush()
        raise
    made = placement.decision
    reason = (
        made["reason"] if placement.outcome != "existing" else f"already decided: {made['reason']}"
    )
    outcome = OrderOutcome(
        symbol=signal.symbol,
        as_of=signal.as_of,
        order_ref=ref,
        mode=mode,
        broker=chosen.name,
        decision=made["kind"],
        outcome=placement.outcome,
        reason=reason,
        orders=placement.orders,
        sizing=decision.sizing.__dict__
        if decision.sizing and placement.outcome != "existing"
        else None,
        last_close=signal.last_close,
        position_before=held,
    )
    if decision.reason.startswith("kill switch"):
        context.log.warning(f"{key}: {decision.reason}")
    ref_obj = object_ref(object_store, strategy, "order", key, outcome)
    data = outcome.model_dump(mode="json")
    recorder.add(key, status="success", input_data=inputs, output_data={**data, "object": ref_obj},
                 metadata={"mode": mode})  # fmt: skip
    recorder.add_artifact(
        key,
        name=f"{signal.symbol} Order {signal.as_of} ({outcome.outcome})",
        type="order",
        uri=ref_obj["uri"],
        sha256=ref_obj["sha256"],
        signal_data=data,
        metadata={
            "mode": mode,
            "order_ref": ref,
            "outcome": outcome.outcome,
            "reason": outcome.reason,
        },
    )
    return outcome


def _refuse_if_simulator_moved_on(
    decision: OrderDecision, chosen, signal: TradingSignal
) -> OrderDecision:
    """A new order for a session the simulator has already run past would fill on bars it
    never saw; refuse it (backtest sessions in date order, e.g. one single-run backfill)."""
    last = chosen.last_synced(signal.symbol) if hasattr(chosen, "last_synced") else None
    if decision.request is None or last is None or last <= signal.as_of:
        return decision
    return OrderDecision(
        "none",
        f"the simulator already ran {signal.symbol} through {last}, after this session; "
        "materialize past sessions in date order (a single-run backfill does)",
    )


def _record_session_snapshot(chosen, day: dt.date, values: dict) -> None:
    """Snapshot the simulator account at the session's closes, so ``portfolio_snapshot`` of a
    range run sees each day as it was, not the state after the last day."""
    if not hasattr(chosen, "record_snapshot"):
        return
    prices = {v.symbol: v.last_close for v in values.values() if isinstance(v, OrderOutcome)}
    for position in chosen.positions():
        prices.setdefault(position.symbol, position.avg_cost)
    chosen.record_snapshot(chosen.snapshot_at(day, prices))
