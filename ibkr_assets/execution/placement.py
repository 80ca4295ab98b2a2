"""Placing a decided order exactly once, across retries, re-executions, crashes and reconnects.

Before sending, both our records and the broker are asked about the order's reference. The
broker's answer wins: an order it knows is recorded (``reconciled``), never sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ibkr_assets.brokers.base import Broker
from ibkr_assets.domain.orders import BracketRequest, BrokerOrder
from ibkr_assets.execution.decision import OrderDecision
from ibkr_assets.storage.order_records import OrderRecords


@dataclass(frozen=True)
class Placement:
    outcome: Literal["placed", "existing", "reconciled", "none"]
    orders: list[BrokerOrder]


def place_once(
    decision: OrderDecision,
    *,
    broker: Broker,
    records: OrderRecords,
    strategy_id: str,
    mode: str,
    run_id: str,
) -> Placement:
    """Send ``decision`` to ``broker`` unless an order with its reference already exists."""
    if decision.request is None:
        return Placement("none", [])
    request = decision.request
    ref = request.order_ref
    common = {
        "strategy_id": strategy_id,
        "symbol": request.symbol,
        "session_date": request.session,
        "broker": broker.name,
        "mode": mode,
        "decision": {
            "kind": decision.kind,
            "reason": decision.reason,
            "request": request.model_dump(mode="json"),
        },
        "run_id": run_id,
    }
    record = records.get(ref)
    if record and record["state"] in ("sent", "reconciled"):
        return Placement("existing", broker.orders_by_ref(ref) or _stored(record))
    at_broker = broker.orders_by_ref(ref)
    if at_broker:
        records.write(ref, state="reconciled", broker_orders=_dump(at_broker), **common)
        return Placement("reconciled", at_broker)
    records.write(ref, state="sending", broker_orders=[], **common)
    if isinstance(request, BracketRequest):
        orders = broker.place_bracket(request)
    else:
        orders = broker.close_position(request)
    records.write(ref, state="sent", broker_orders=_dump(orders), **common)
    return Placement("placed", orders)


def _dump(orders: list[BrokerOrder]) -> list[dict]:
    return [o.model_dump(mode="json") for o in orders]


def _stored(record: dict) -> list[BrokerOrder]:
    return [BrokerOrder.model_validate(o) for o in record["broker_orders"]]
