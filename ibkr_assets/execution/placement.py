"""Placing a decided order exactly once, across retries, re-executions, crashes and reconnects.

Before sending, both our records and the broker are asked about the order's reference. The
broker's answer wins: an order it knows is recorded (``reconciled``), never sent again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from ibkr_assets.brokers.base import Broker
from ibkr_assets.domain.orders import BracketRequest, BrokerOrder
from ibkr_assets.execution.decision import OrderDecision
from ibkr_assets.storage.order_records import OrderRecords


@dataclass(frozen=True)
class Placement:
    """What happened to a decision in this execution (``outcome``) and the decision itself as it
    was made, now or in an earlier execution: ``decision`` (kind, reason, request, sizing), the
    ``orders`` as placed then (not their statuses now) and the ``mode`` recorded then."""

    outcome: Literal["placed", "existing", "reconciled", "none"]
    orders: list[BrokerOrder]
    decision: dict
    mode: str


def place_once(
    decision: OrderDecision,
    *,
    order_ref: str,
    symbol: str,
    session: dt.date,
    broker: Broker,
    records: OrderRecords,
    strategy_id: str,
    mode: str,
    run_id: str,
    final: bool = True,
) -> Placement:
    """Send ``decision`` to ``broker`` unless a decision with its reference was already made.

    ``final=False`` (a HOLD from a failed analysis) sends nothing and records nothing, so a rerun
    after the model recovers decides the session again.
    """
    record = records.get(order_ref)
    if record and record["state"] in ("decided", "sent", "reconciled"):
        orders = _stored(record)
        if not orders and record["state"] != "decided":
            orders = broker.orders_by_ref(order_ref)
        return Placement("existing", orders, record["decision"], record["mode"])
    at_broker = broker.orders_by_ref(order_ref)
    common = {
        "strategy_id": strategy_id,
        "symbol": symbol,
        "session_date": session,
        "broker": broker.name,
        "mode": mode,
        "decision": _describe(decision),
        "run_id": run_id,
    }
    if at_broker:  # sent before, never recorded (a crash in between): heal the record
        records.write(order_ref, state="reconciled", broker_orders=_dump(at_broker), **common)
        return Placement("reconciled", at_broker, common["decision"], mode)
    if decision.request is None:
        if final:
            records.write(order_ref, state="decided", broker_orders=[], **common)
        return Placement("none", [], common["decision"], mode)
    records.write(order_ref, state="sending", broker_orders=[], **common)
    if isinstance(decision.request, BracketRequest):
        orders = broker.place_bracket(decision.request)
    else:
        orders = broker.close_position(decision.request)
    records.write(order_ref, state="sent", broker_orders=_dump(orders), **common)
    return Placement("placed", orders, common["decision"], mode)


def _describe(decision: OrderDecision) -> dict:
    request = decision.request.model_dump(mode="json") if decision.request else None
    sizing = decision.sizing
    return {
        "kind": decision.kind,
        "reason": decision.reason,
        "request": request,
        "sizing": None if sizing is None else sizing.to_record(),
    }


def _dump(orders: list[BrokerOrder]) -> list[dict]:
    return [o.model_dump(mode="json") for o in orders]


def _stored(record: dict) -> list[BrokerOrder]:
    return [BrokerOrder.model_validate(o) for o in record["broker_orders"]]
