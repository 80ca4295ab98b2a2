"""``order``: what was sent to the broker for each partition, or why nothing was.

Partitions are handled in date order, holding the strategy's book against other processes. For
each session the simulator first catches up with that session's bars (fills of earlier orders),
then each symbol's signal becomes a bracket buy, a close, or no order, sized against the book as
of that session. The order's identity (strategy, symbol, date) travels to the broker, so nothing
is ever sent twice. With the kill switch on, nothing is simulated or decided.
"""

import datetime as dt
import itertools
from dataclasses import dataclass

import dagster as dg

from ibkr_assets.assets.defaults import book_pool, workflow_asset
from ibkr_assets.assets.step import Step
from ibkr_assets.brokers.base import Broker, Simulator
from ibkr_assets.domain.bars import BAR_COLUMNS
from ibkr_assets.domain.indicator_set import IndicatorSet
from ibkr_assets.domain.orders import OrderOutcome, order_ref
from ibkr_assets.domain.portfolio import marked_equity
from ibkr_assets.domain.signal import TradingSignal
from ibkr_assets.domain.sizing import RiskLimits
from ibkr_assets.domain.skipped import Skipped
from ibkr_assets.execution.decision import OrderDecision, decide
from ibkr_assets.execution.placement import place_once
from ibkr_assets.partitions import split_key
from ibkr_assets.resources.broker import BrokerResource
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.object_store import ObjectStoreResource
from ibkr_assets.storage.order_records import OrderRecords
from ibkr_assets.strategies.config import StrategyConfig


def build_order(strategy: StrategyConfig) -> dg.AssetsDefinition:
    @workflow_asset(strategy, name="order", kinds={"ibkr"}, pool=book_pool(strategy))
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
        step = Step.open(context, strategy.id, "order", object_store, lineage)
        records = OrderRecords(broker.database_url)
        records.create_schema()
        limits = strategy.risk.risk_limits()
        values: dict = {}
        switched_off: str | None = None
        with broker.book(strategy):
            for day, keys in _by_date(step.keys):
                # Read before anything moves: with the switch on, a session is neither simulated
                # nor decided, so it stays decidable once the switch is off.
                switched_off = switched_off or broker.kill_switch()
                if switched_off:
                    reason = f"kill switch active: {switched_off}; nothing simulated or decided"
                    values |= {k: _blocked(step, k, trading_signal[k], reason) for k in keys}
                    continue
                chosen, mode = broker.broker_for(strategy, day)
                if isinstance(chosen, Simulator):  # the session's bars first: earlier fills
                    _sync(chosen, [indicators[key] for key in keys])
                book = _book_on(chosen, day, trading_signal, keys)
                session = _Session(step, broker, limits, chosen, mode, book, records)
                values |= {k: _order_for(session, k, trading_signal[k]) for k in keys}
        return dg.Output(values, metadata=_metadata(values))

    return order


def _by_date(keys: list[str]) -> list[tuple[dt.date, list[str]]]:
    """The partitions grouped by session, in date order."""
    by_date = itertools.groupby(sorted(keys), key=lambda k: split_key(k)[0])
    return [(dt.date.fromisoformat(day), list(day_keys)) for day, day_keys in by_date]


def _sync(simulator: Simulator, indicators: list[IndicatorSet]) -> None:
    for ind in indicators:
        if ind.is_tradable:
            simulator.sync(ind.symbol, ind.frame[BAR_COLUMNS])


def _metadata(values: dict) -> dict:
    outcomes = [v for v in values.values() if isinstance(v, OrderOutcome)]
    blocked = [v for v in values.values() if isinstance(v, Skipped) and v.status == "blocked"]
    return {
        "partitions": len(values),
        "placed": sum(o.outcome == "placed" for o in outcomes),
        "no_order": sum(o.outcome == "none" for o in outcomes),
        "blocked": len(blocked),
        "kill_switch_blocked": sum(b.reason.startswith("kill switch") for b in blocked),
        "modes": dg.MetadataValue.json(sorted({o.mode for o in outcomes})),
    }


@dataclass(frozen=True)
class _Book:
    """The account as of the session's close, before its decisions: what sizing sees."""

    positions: dict[str, int]
    equity: float


@dataclass(frozen=True)
class _Session:
    """What every order decision of one session shares: where it is recorded, the broker it
    goes to, the book it is sized against, and the limits."""

    step: Step
    broker: BrokerResource  # the kill switch, read at each decision
    limits: RiskLimits
    chosen: Broker
    mode: str
    book: _Book
    records: OrderRecords


def _book_on(chosen: Broker, day: dt.date, signals: dict, keys: list[str]) -> _Book:
    """The simulator's book from its fills and closes up to ``day`` (never later sessions', so a
    rerun decides, and records, against the same account); a live broker's account now."""
    if isinstance(chosen, Simulator):
        snap = chosen.snapshots_as_of([day])[day]
        return _Book({p.symbol: p.quantity for p in snap.positions}, snap.equity)
    closes = {
        s.symbol: s.last_close for s in (signals[k] for k in keys) if isinstance(s, TradingSignal)
    }
    held = chosen.positions()
    return _Book(
        {p.symbol: p.quantity for p in held}, marked_equity(chosen.account().cash, held, closes)
    )


def _blocked(step: Step, key: str, signal, reason: str) -> Skipped:
    """Record a partition nothing was decided for, and why; a later run can still decide it."""
    value = Skipped(signal.symbol, signal.as_of, "blocked", reason)
    inputs = {"trading_signal": getattr(signal, "action", None) or signal.summary()}
    step.record(key, value, status="blocked", input_data=inputs, output_data=value.summary(),
                error=reason)  # fmt: skip
    return value


def _order_for(
    session: _Session, key: str, signal: TradingSignal | Skipped
) -> OrderOutcome | Skipped:
    step, chosen, mode = session.step, session.chosen, session.mode
    strategy = step.strategy_id
    if isinstance(signal, Skipped):
        return step.skip(key, signal, {"trading_signal": signal.summary()}, metadata={"mode": mode},
                         error=signal.reason if signal.status == "blocked" else None)  # fmt: skip
    assert isinstance(signal, TradingSignal)
    ref = order_ref(strategy, signal.symbol, signal.as_of)
    held = session.book.positions.get(signal.symbol, 0)
    equity = session.book.equity
    kill_switch = session.broker.kill_switch()
    decision = decide(
        signal,
        order_ref=ref,
        position=held,
        equity=equity,
        limits=session.limits,
        kill_switch=kill_switch,
    )
    inputs = {
        "trading_signal": {k: getattr(signal, k) for k in ("action", "confidence", "entry_price", "stop_loss",
                                                            "take_profit", "is_actionable")},
        "position_before": held,
        "equity": round(equity, 2),
        "order_ref": ref,
        "mode": mode,
        "broker": chosen.name,
    }  # fmt: skip
    if kill_switch:
        step.context.log.warning(f"{key}: {decision.reason}")
        return _blocked(step, key, signal, decision.reason)
    moved_on = _simulator_moved_on(decision, chosen, signal, session.records.get(ref))
    if moved_on:
        return _blocked(step, key, signal, moved_on)
    try:
        placement = place_once(
            decision,
            order_ref=ref,
            symbol=signal.symbol,
            session=signal.as_of,
            broker=chosen,
            records=session.records,
            strategy_id=strategy,
            mode=mode,
            run_id=step.context.run.run_id,
            final=signal.decision_final,  # a failed analysis leaves the session decidable
        )
    except Exception as exc:
        step.record_error(key, inputs, f"{type(exc).__name__}: {exc}", metadata={"mode": mode})
        raise  # the step's failure records the other partitions
    made = placement.decision
    # The object is the decision as made (the same bytes on every rerun); what this execution
    # did with it (placed now, found already decided, reconciled) goes in its row.
    outcome = OrderOutcome(
        symbol=signal.symbol,
        as_of=signal.as_of,
        order_ref=ref,
        mode=placement.mode,
        broker=chosen.name,
        decision=made["kind"],
        outcome="placed" if placement.orders else "none",
        reason=made["reason"],
        orders=[o.model_copy(update={"updated_at": None}) for o in placement.orders],
        sizing=made.get("sizing"),
        last_close=signal.last_close,
        position_before=held,
    )
    data = outcome.model_dump(mode="json")
    row = {**data, "outcome": placement.outcome, "final": signal.decision_final}
    if placement.outcome == "existing":
        row["reason"] = f"already decided: {made['reason']}"
    ref_obj = step.record(key, outcome, status="success", input_data=inputs, output_data=row,
                          metadata={"mode": mode})  # fmt: skip
    step.artifact(
        key,
        ref_obj,
        name=f"{signal.symbol} Order {signal.as_of} ({outcome.outcome})",
        type="order",
        signal_data=data,
        metadata={
            "mode": placement.mode,
            "order_ref": ref,
            "outcome": placement.outcome,
            "reason": row["reason"],
        },
    )
    return outcome


def _simulator_moved_on(
    decision: OrderDecision, chosen: Broker, signal: TradingSignal, record: dict | None
) -> str | None:
    """Why a new order for this session is refused: the simulator has already run past it, so
    the order would fill on bars it never saw. A recorded decision is replayed, never refused."""
    last = chosen.last_synced(signal.symbol) if isinstance(chosen, Simulator) else None
    if record or decision.request is None or last is None or last <= signal.as_of:
        return None
    return (
        f"the simulator already ran {signal.symbol} through {last}, after this session; "
        "decide past sessions in date order (a single-run backfill does), or reset the account"
    )
