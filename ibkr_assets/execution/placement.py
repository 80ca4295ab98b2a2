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
    outcome: Literal["placed", "existing", "reconciled", "none"]
    orders: list[BrokerOrder]
    decision: dict  # kind, reason, request: the decision made (now or, if existing, then)


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

    ``final=False`` (a kill-switch block) sends nothing and records nothing, so the session can
    still be decided once the switch is off.
    """
    record = records.get(order_ref)
    if record and record["state"] in ("decided", "sent", "reconciled"):
        orders = broker.orders_by_ref(order_ref) if record["state"] != "decided" else []
        return Placement("existing", orders or _stored(record), record["decision"])
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
        return Placement("reconciled", at_broker, common["decision"])
    if decision.request is None:
        if final:
            records.write(order_ref, state="decided", broker_orders=[], **common)
        return Placement("none", [], common["decision"])
    records.write(order_ref, state="sending", broker_orders=[], **common)
    if isinstance(decision.request, BracketRequest):
        orders = broker.place_bracket(decision.request)
    else:
        orders = broker.close_position(decision.request)
    records.write(order_ref, state="sent", broker_orders=_dump(orders), **common)
    return Placement("placed", orders, common["decision"])


def _describe(decision: OrderDecision) -> dict:
    request = decision.request.model_dump(mode="json") if decision.request else None
    return {"kind": decision.kind, "reason": decision.reason, "request": request}


def _dump(orders: list[BrokerOrder]) -> list[dict]:
    return [o.model_dump(mode="json") for o in orders]


def _stored(record: dict) -> list[BrokerOrder]:
    return [BrokerOrder.model_validate(o) for o in record["broker_orders"]]
