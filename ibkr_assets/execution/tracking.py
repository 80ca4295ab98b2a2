"""Order tracking: poll the broker and record every state change and fill (the audit trail).

Used by the order-tracking sensor. A change is a new (status, filled quantity) for a broker
order id; fills are keyed by execution id, so fills missed during a disconnect are recovered
from the executions query without ever being counted twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa

from ibkr_assets.brokers.base import Broker
from ibkr_assets.domain.orders import BrokerOrder
from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.trading_tables import create_trading_schema, fills, order_events


@dataclass
class TrackingResult:
    changes: list[dict] = field(default_factory=list)
    new_fills: list[str] = field(default_factory=list)


class OrderTracker:
    """Records what ``broker`` reports for ``account`` into ``order_events`` and ``fills``."""

    def __init__(self, database_url: str, account: str) -> None:
        create_trading_schema(database_url)
        self.engine = engine_for(database_url)
        self.account = account

    def last_known(self) -> dict[str, tuple[str, int, str]]:
        """broker order id -> (status, filled quantity, order_ref) of its latest recorded event."""
        e = order_events
        latest = (
            sa.select(e.c.broker_order_id, sa.func.max(e.c.id).label("id"))
            .where(e.c.account == self.account)
            .group_by(e.c.broker_order_id)
            .subquery()
        )
        query = sa.select(e.c.broker_order_id, e.c.status, e.c.filled_quantity, e.c.order_ref).join(
            latest, e.c.id == latest.c.id
        )
        with self.engine.connect() as conn:
            return {
                r.broker_order_id: (r.status, r.filled_quantity, r.order_ref)
                for r in conn.execute(query)
            }

    def poll(self, broker: Broker) -> TrackingResult:
        known = self.last_known()
        current: dict[str, BrokerOrder] = {o.broker_order_id: o for o in broker.open_orders()}
        for order_id, (
            status,
            _,
            ref,
        ) in known.items():  # known open orders that left the open list
            if order_id not in current and status not in ("filled", "cancelled", "rejected"):
                current.update({o.broker_order_id: o for o in broker.orders_by_ref(ref)})
        result = TrackingResult()
        now = dt.datetime.now(dt.timezone.utc)
        with self.engine.begin() as conn:
            for order in current.values():
                state = (order.status.value, order.filled_quantity)
                if known.get(order.broker_order_id, (None, None, None))[:2] == state:
                    continue
                change = {
                    "account": self.account,
                    "broker_order_id": order.broker_order_id,
                    "order_ref": order.order_ref,
                    "status": order.status.value,
                    "filled_quantity": order.filled_quantity,
                    "at": now,
                    "detail": {"source": f"{broker.name} poll", "reason": order.reason},
                }
                conn.execute(sa.insert(order_events).values(**change))
                result.changes.append(change)
            recorded = set(conn.execute(sa.select(fills.c.execution_id)).scalars())
            roles = {o.broker_order_id: o.role for o in current.values()}
            for fill in broker.executions():
                if fill.execution_id in recorded:
                    continue
                conn.execute(
                    sa.insert(fills).values(
                        execution_id=fill.execution_id,
                        account=self.account,
                        broker_order_id=fill.broker_order_id,
                        order_ref=fill.order_ref,
                        role=roles.get(fill.broker_order_id, "parent"),
                        symbol=fill.symbol,
                        side=fill.side,
                        quantity=fill.quantity,
                        price=fill.price,
                        commission=fill.commission,
                        session_date=fill.time.date(),
                        filled_at=fill.time,
                    )
                )
                result.new_fills.append(fill.execution_id)
        return result
