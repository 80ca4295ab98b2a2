"""The built-in paper broker: the fill model of ``domain.paper_fills`` over the relational store.

Everything lives in the trading tables (SQLite by default, PostgreSQL by URL), so an account
survives processes. Each call is one transaction that first touches the account row, which
serializes writers of the same account on both databases (a row lock on PostgreSQL, the write
lock on SQLite). Order identity is ``(account, order_ref, role)`` with a unique constraint and
deterministic broker ids, so a decision places its orders once, also across retries.

Lifecycle: a bracket parent is placed ``submitted`` with both children ``pending_submit`` (held,
as IBKR holds bracket children until the parent fills). ``sync`` runs new bars through the fill
model: the parent fills, the children become ``submitted`` and later one fills and the other is
cancelled. Every status change goes through ``check_transition`` and writes an ``order_events``
row. There is no buying-power check: sizing (``domain.sizing``) limits what is sent.

``sync`` never revisits a bar. An order placed for session D after the symbol was already
synced past D (a late backfill) can first fill on the next bar not yet synced; place D's orders
before syncing bars dated after D.

Longer than most modules: an account's whole order lifecycle runs in transactions this class
owns; the fill model itself is pure, in ``domain/paper_fills.py``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ibkr_assets.brokers.base import BrokerError
from ibkr_assets.domain.commissions import IBKR_FIXED, CommissionModel
from ibkr_assets.domain.orders import (
    FINAL_STATUSES,
    AccountSummary,
    BracketRequest,
    BrokerOrder,
    CloseRequest,
    Fill,
    OrderStatus,
    Position,
    check_transition,
)
from ibkr_assets.domain.paper_fills import Bar, FillEvent, SimOrder, simulate_bars
from ibkr_assets.domain.portfolio import (
    Ledger,
    PortfolioError,
    PortfolioSnapshot,
    apply_fill,
    snapshots_by_date,
)
from ibkr_assets.redaction import redact_text
from ibkr_assets.storage.engines import engine_for
from ibkr_assets.storage.trading_tables import (
    create_trading_schema,
    fill_from_row,
    fills,
    orders,
    paper_accounts,
    paper_closes,
    paper_sync,
    portfolio_snapshots,
)
from ibkr_assets.storage.trading_tables import order_events as events_table
from ibkr_assets.storage.trading_tables import positions as positions_table

NEW_YORK = ZoneInfo("America/New_York")
_OPEN = [s.value for s in OrderStatus if s not in FINAL_STATUSES]
_BAR_COLUMNS = ("date", "open", "high", "low", "close")


class PaperBroker:
    """A simulated broker account that implements ``brokers.base.Broker``."""

    name = "paper"

    def __init__(
        self,
        database_url: str,
        *,
        account: str = "paper",
        starting_cash: float = 100_000.0,
        commission_model: CommissionModel = IBKR_FIXED,
        allow_short: bool = False,
        mode: str = "paper",
    ) -> None:
        if mode not in ("paper", "backtest"):
            raise ValueError(
                f"PaperBroker mode must be 'paper' or 'backtest', not {mode!r}; "
                "live trading goes through the IBKR broker"
            )
        if not account or len(account) > 100:
            raise ValueError("PaperBroker account must be 1-100 characters")
        self._url = redact_text(database_url)
        self._engine = engine_for(database_url)
        self._dialect = self._engine.dialect.name
        if self._dialect not in ("postgresql", "sqlite"):
            raise ValueError(f"PaperBroker supports PostgreSQL and SQLite, not {self._dialect}")
        self.account_name = account
        self.mode = mode
        self.commission_model = commission_model
        self.allow_short = allow_short
        with self._errors("create schema"):
            create_trading_schema(database_url)
        with self._tx("open account") as conn:
            now = _utcnow()
            stmt = _insert(self._dialect)(paper_accounts).values(
                account=account,
                starting_cash=starting_cash,
                cash=starting_cash,
                realized_pnl=0.0,
                commissions=0.0,
                created_at=now,
                updated_at=now,
            )
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["account"]))

    def __repr__(self) -> str:
        return f"PaperBroker({self._url!r}, account={self.account_name!r}, mode={self.mode!r})"

    # --- placing -----------------------------------------------------------------------

    def place_bracket(self, request: BracketRequest) -> list[BrokerOrder]:
        """Place parent + take-profit + stop; an ``order_ref`` that has orders places nothing."""
        exit_side = "SELL" if request.side == "BUY" else "BUY"
        specs = [
            ("parent", request.side, "LMT", {"limit_price": request.entry_price}),
            ("take_profit", exit_side, "LMT", {"limit_price": request.take_profit}),
            ("stop_loss", exit_side, "STP", {"stop_price": request.stop_loss}),
        ]

        def place(conn: sa.Connection) -> list[BrokerOrder]:
            now = _utcnow()
            parent_id = self._order_id(request.order_ref, "parent")
            placed = []
            for role, side, order_type, prices in specs:
                row = {
                    "order_ref": request.order_ref,
                    "role": role,
                    "broker_order_id": self._order_id(request.order_ref, role),
                    "symbol": request.symbol,
                    "side": side,
                    "order_type": order_type,
                    "quantity": request.quantity,
                    "parent_id": None if role == "parent" else parent_id,
                    "reason": "" if role == "parent" else "held until the parent fills",
                    "session_date": request.session,
                    **prices,
                }
                placed.append(self._insert_order(conn, row, now))
            problem = self._bracket_problem(request)
            parent, *children = placed
            if problem:
                parent = self._move(conn, parent, OrderStatus.REJECTED, now, problem)
                children = [
                    self._move(conn, c, OrderStatus.CANCELLED, now, "parent rejected")
                    for c in children
                ]
            else:
                parent = self._move(conn, parent, OrderStatus.SUBMITTED, now, "placed")
            return [parent, *children]

        return self._place_once(request.order_ref, place)

    def close_position(self, request: CloseRequest) -> list[BrokerOrder]:
        """Cancel the symbol's open bracket orders and close the position at the next open.

        Unfilled entries are withdrawn too (a close decision means "be flat"). Returns the
        market order, or [] when there is nothing to close.
        """

        def place(conn: sa.Connection) -> list[BrokerOrder]:
            now = _utcnow()
            open_rows = self._select_orders(
                conn, orders.c.symbol == request.symbol, orders.c.status.in_(_OPEN)
            )
            pending_close = 0
            for order in open_rows:
                if order.role == "close":
                    pending_close += order.quantity if order.side == "BUY" else -order.quantity
                else:
                    reason = f"cancelled by close {request.order_ref}"
                    self._move(conn, order, OrderStatus.CANCELLED, now, reason)
            held = conn.execute(
                sa.select(positions_table.c.quantity).where(
                    positions_table.c.account == self.account_name,
                    positions_table.c.symbol == request.symbol,
                )
            ).scalar_one_or_none()
            remaining = (held or 0) + pending_close
            if remaining == 0:
                return []
            row = {
                "order_ref": request.order_ref,
                "role": "close",
                "broker_order_id": self._order_id(request.order_ref, "close"),
                "symbol": request.symbol,
                "side": "SELL" if remaining > 0 else "BUY",
                "order_type": "MKT",
                "quantity": abs(remaining),
                "session_date": request.session,
            }
            order = self._insert_order(conn, row, now)
            return [self._move(conn, order, OrderStatus.SUBMITTED, now, "placed")]

        return self._place_once(request.order_ref, place)

    # --- simulating --------------------------------------------------------------------

    def sync(self, symbol: str, bars: pd.DataFrame) -> list[Fill]:
        """Run the bars of ``symbol`` dated after the last synced one through the fill model.

        One transaction: fills, order statuses, positions, cash and the sync mark move together,
        so calling again with the same bars processes nothing.
        """
        all_bars = _bars_from_frame(symbol, bars)
        with self._tx("sync") as conn:
            self._lock(conn)
            last = conn.execute(
                sa.select(paper_sync.c.last_bar_date).where(
                    paper_sync.c.account == self.account_name, paper_sync.c.symbol == symbol
                )
            ).scalar_one_or_none()
            new_bars = [b for b in all_bars if last is None or b.date > last]
            self._record_closes(conn, symbol, all_bars)
            if not new_bars:
                return []
            rows = self._order_rows(conn, orders.c.symbol == symbol, orders.c.status.in_(_OPEN))
            book = {r["broker_order_id"]: _order_from_row(r) for r in rows}
            sims = self._sim_orders(conn, rows)
            result = simulate_bars(
                sims, new_bars, self.commission_model, allow_short=self.allow_short
            )
            ledger = self._ledger(conn)
            now = _utcnow()
            done: list[Fill] = []
            for update in result.updates:
                order = book[update.broker_order_id]
                fields: dict[str, Any] = {}
                detail: dict[str, Any] = {"session_date": update.date.isoformat()}
                if (fill := update.fill) is not None:
                    done.append(self._record_fill(conn, fill, now))
                    try:
                        ledger = apply_fill(ledger, fill, allow_short=self.allow_short)
                    except PortfolioError as exc:
                        raise BrokerError(f"paper account {self.account_name!r}: {exc}") from exc
                    fields = {
                        "filled_quantity": fill.quantity,
                        "avg_fill_price": fill.price,
                        "commission": fill.commission,
                    }
                    detail["price"] = fill.price
                book[order.broker_order_id] = self._move(
                    conn, order, update.status, now, update.reason, detail, **fields
                )
            self._save_ledger(conn, ledger, {f.symbol for f in done}, now)
            self._mark_synced(conn, symbol, new_bars[-1].date, now)
            return done

    # --- reading -----------------------------------------------------------------------

    def orders_by_ref(self, order_ref: str) -> list[BrokerOrder]:
        with self._tx("read orders") as conn:
            return self._select_orders(conn, orders.c.order_ref == order_ref)

    def open_orders(self) -> list[BrokerOrder]:
        with self._tx("read orders") as conn:
            return self._select_orders(conn, orders.c.status.in_(_OPEN))

    def executions(self) -> list[Fill]:
        query = sa.select(fills).where(fills.c.account == self.account_name).order_by(fills.c.id)
        with self._tx("read fills") as conn:
            return [fill_from_row(r._mapping) for r in conn.execute(query)]

    def positions(self) -> list[Position]:
        """Open positions (quantity != 0), by symbol."""
        with self._tx("read positions") as conn:
            return list(self._ledger(conn).positions.values())

    def account(self) -> AccountSummary:
        with self._tx("read account") as conn:
            ledger = self._ledger(conn)
        return AccountSummary(
            cash=ledger.cash, realized_pnl=ledger.realized_pnl, commissions=ledger.commissions
        )

    def order_events(self, order_ref: str | None = None) -> list[dict[str, Any]]:
        """The audit trail: one row per order state change, oldest first."""
        query = sa.select(events_table).where(events_table.c.account == self.account_name)
        if order_ref is not None:
            query = query.where(events_table.c.order_ref == order_ref)
        with self._tx("read order events") as conn:
            rows = [dict(r._mapping) for r in conn.execute(query.order_by(events_table.c.id))]
        for row in rows:
            row["at"] = _aware(row["at"])
        return rows

    def last_synced(self, symbol: str) -> dt.date | None:
        """The date of the last bar of ``symbol`` that ``sync`` has run, or None."""
        query = sa.select(paper_sync.c.last_bar_date).where(
            paper_sync.c.account == self.account_name, paper_sync.c.symbol == symbol
        )
        with self._tx("read sync mark") as conn:
            return conn.execute(query).scalar_one_or_none()

    # --- portfolio snapshots -----------------------------------------------------------

    def snapshots_as_of(self, dates: Iterable[dt.date]) -> dict[dt.date, PortfolioSnapshot]:
        """Each date's snapshot from the fills and closes dated up to it (never the account as it
        is now), so running, rerunning or replaying later sessions cannot change it."""
        days = sorted(set(dates))
        if not days:
            return {}
        first, last = days[0], days[-1]
        mine = paper_closes.c.account == self.account_name
        latest_before = (
            sa.select(paper_closes.c.symbol, sa.func.max(paper_closes.c.session_date).label("day"))
            .where(mine, paper_closes.c.session_date < first)
            .group_by(paper_closes.c.symbol)
            .subquery()
        )
        columns = (paper_closes.c.session_date, paper_closes.c.symbol, paper_closes.c.close)
        carried = sa.select(*columns).join(
            latest_before,
            sa.and_(
                paper_closes.c.symbol == latest_before.c.symbol,
                paper_closes.c.session_date == latest_before.c.day,
            ),
        )
        within = sa.select(*columns).where(paper_closes.c.session_date.between(first, last))
        fill_query = (
            sa.select(fills)
            .where(fills.c.account == self.account_name, fills.c.session_date <= last)
            .order_by(fills.c.session_date, fills.c.id)
        )
        with self._tx("read history") as conn:
            starting_cash = conn.execute(
                sa.select(paper_accounts.c.starting_cash).where(
                    paper_accounts.c.account == self.account_name
                )
            ).scalar_one()
            dated_fills = [
                (r.session_date, fill_from_row(r._mapping)) for r in conn.execute(fill_query)
            ]
            closes = [tuple(r) for r in conn.execute(carried.where(mine))]
            closes += [tuple(r) for r in conn.execute(within.where(mine))]
        try:
            return snapshots_by_date(
                days,
                starting_cash=starting_cash,
                fills=dated_fills,
                closes=closes,
                allow_short=self.allow_short,
            )
        except PortfolioError as exc:
            raise BrokerError(f"paper account {self.account_name!r}: {exc}") from exc

    def record_snapshot(self, snapshot: PortfolioSnapshot) -> int:
        """Store ``snapshot`` as this account's snapshot of its date; the row id.

        A row that already holds the same values is left untouched (a rerun changes nothing,
        not even ``updated_at``); different values replace it and set ``updated_at``.
        """
        now = _utcnow()
        values = {
            "account": self.account_name,
            "snapshot_date": snapshot.date,
            **{name: _round(getattr(snapshot, name)) for name in _SNAPSHOT_NUMBERS},
            "positions": [p.model_dump() for p in snapshot.positions],
        }
        t = portfolio_snapshots
        key = (t.c.account == self.account_name, t.c.snapshot_date == snapshot.date)
        with self._tx("record snapshot") as conn:
            row = conn.execute(sa.select(t).where(*key)).mappings().first()
            if row is None:
                stmt = _insert(self._dialect)(t).values(**values, created_at=now)
                stmt = stmt.on_conflict_do_nothing(index_elements=list(_SNAPSHOT_KEY))
                conn.execute(stmt)
            elif any(row[k] != v for k, v in values.items()):
                conn.execute(sa.update(t).where(*key).values(**values, updated_at=now))
            return conn.execute(sa.select(t.c.id).where(*key)).scalar_one()

    def snapshots(self) -> list[PortfolioSnapshot]:
        """This account's snapshots, oldest date first."""
        t = portfolio_snapshots
        query = sa.select(t).where(t.c.account == self.account_name).order_by(t.c.snapshot_date)
        with self._tx("read snapshots") as conn:
            rows = [r._mapping for r in conn.execute(query)]
        return [
            PortfolioSnapshot(
                date=r["snapshot_date"],
                positions=r["positions"],
                **{name: r[name] for name in _SNAPSHOT_NUMBERS},
            )
            for r in rows
        ]

    # --- internals ---------------------------------------------------------------------

    @contextmanager
    def _tx(self, action: str) -> Iterator[sa.Connection]:
        with self._errors(action), self._engine.begin() as conn:
            yield conn

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sa.exc.DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise BrokerError(f"paper broker {action} failed on {self._url}: {reason}") from exc

    def _place_once(
        self, order_ref: str, place: Callable[[sa.Connection], list[BrokerOrder]]
    ) -> list[BrokerOrder]:
        """Run ``place`` in a locked transaction unless ``order_ref`` already has orders."""
        try:
            with self._tx("place order") as conn:
                self._lock(conn)
                existing = self._select_orders(conn, orders.c.order_ref == order_ref)
                return existing or place(conn)
        except BrokerError as exc:
            if isinstance(exc.__cause__, sa.exc.IntegrityError):
                existing = self.orders_by_ref(order_ref)  # another writer placed it first
                if existing:
                    return existing
            raise

    def _lock(self, conn: sa.Connection) -> None:
        result = conn.execute(
            sa.update(paper_accounts)
            .where(paper_accounts.c.account == self.account_name)
            .values(updated_at=_utcnow())
        )
        if result.rowcount != 1:
            raise BrokerError(f"paper account {self.account_name!r} does not exist")

    def _order_id(self, order_ref: str, role: str) -> str:
        digest = hashlib.sha256(f"{self.account_name}|{order_ref}|{role}".encode()).hexdigest()
        return f"paper-{digest[:20]}"

    def _bracket_problem(self, request: BracketRequest) -> str | None:
        """Why the simulator rejects this bracket, or None."""
        tp, entry, stop = request.take_profit, request.entry_price, request.stop_loss
        if request.side == "SELL" and not self.allow_short:
            return "short sale not allowed (allow_short=False)"
        if request.side == "BUY" and not stop < entry < tp:
            return f"BUY bracket needs stop < entry < take-profit, got {stop} / {entry} / {tp}"
        if request.side == "SELL" and not tp < entry < stop:
            return f"SELL bracket needs take-profit < entry < stop, got {tp} / {entry} / {stop}"
        return None

    def _insert_order(
        self, conn: sa.Connection, row: dict[str, Any], now: dt.datetime
    ) -> BrokerOrder:
        values = {
            "account": self.account_name,
            "status": OrderStatus.PENDING_SUBMIT.value,
            "created_at": now,
            "updated_at": now,
            **row,
        }
        for price in ("limit_price", "stop_price"):
            if values.get(price) is not None:
                values[price] = _round(values[price])
        conn.execute(sa.insert(orders).values(**values))
        order = self._select_orders(conn, orders.c.broker_order_id == row["broker_order_id"])[0]
        self._event(conn, order, now, {"reason": "created"})
        return order

    def _move(
        self,
        conn: sa.Connection,
        order: BrokerOrder,
        status: OrderStatus,
        now: dt.datetime,
        reason: str,
        detail: dict[str, Any] | None = None,
        **fields: Any,
    ) -> BrokerOrder:
        """Move ``order`` to ``status`` (if allowed) and record the event."""
        check_transition(order.status, status)
        values = {"status": status.value, "reason": reason, "updated_at": now, **fields}
        for name in ("avg_fill_price", "commission"):
            if name in values:
                values[name] = _round(values[name])
        result = conn.execute(
            sa.update(orders)
            .where(
                orders.c.broker_order_id == order.broker_order_id,
                orders.c.status == order.status.value,
            )
            .values(**values)
        )
        if result.rowcount != 1:
            raise BrokerError(f"order {order.broker_order_id} changed under us; retry")
        moved = order.model_copy(update={**fields, "status": status, "reason": reason})
        moved.updated_at = now
        self._event(conn, moved, now, {"reason": reason, **(detail or {})})
        return moved

    def _event(
        self, conn: sa.Connection, order: BrokerOrder, now: dt.datetime, detail: dict[str, Any]
    ) -> None:
        conn.execute(
            sa.insert(events_table).values(
                account=self.account_name,
                broker_order_id=order.broker_order_id,
                order_ref=order.order_ref,
                status=order.status.value,
                filled_quantity=order.filled_quantity,
                at=now,
                detail=detail,
            )
        )

    def _select_orders(self, conn: sa.Connection, *where: Any) -> list[BrokerOrder]:
        return [_order_from_row(r) for r in self._order_rows(conn, *where)]

    def _order_rows(self, conn: sa.Connection, *where: Any) -> list[Mapping[str, Any]]:
        query = sa.select(orders).where(orders.c.account == self.account_name, *where)
        return [r._mapping for r in conn.execute(query.order_by(orders.c.id))]

    def _sim_orders(self, conn: sa.Connection, rows: list[Mapping[str, Any]]) -> list[SimOrder]:
        """Open orders with the last date each may not fill (see ``SimOrder``)."""
        parent_ids = {r["parent_id"] for r in rows if r["parent_id"]}
        parent_fill_dates = dict(
            conn.execute(
                sa.select(fills.c.broker_order_id, fills.c.session_date).where(
                    fills.c.account == self.account_name,
                    fills.c.broker_order_id.in_(sorted(parent_ids)),
                )
            ).all()
        )
        sims = []
        for row in rows:
            if row["role"] in ("parent", "close"):
                after = row["session_date"]
            elif row["status"] == OrderStatus.PENDING_SUBMIT.value:
                after = None  # held until the parent fills
            else:
                after = parent_fill_dates.get(row["parent_id"])
            sims.append(SimOrder(_order_from_row(row), after))
        return sims

    def _record_fill(self, conn: sa.Connection, event: FillEvent, now: dt.datetime) -> Fill:
        fill = Fill(
            execution_id=f"{event.broker_order_id}.1",  # one execution per order: no partials
            broker_order_id=event.broker_order_id,
            order_ref=event.order_ref,
            symbol=event.symbol,
            side=event.side,
            quantity=event.quantity,
            price=_round(event.price),
            commission=_round(event.commission),
            time=_session_close(event.date),
        )
        conn.execute(
            sa.insert(fills).values(
                account=self.account_name,
                role=event.role,
                session_date=event.date,
                filled_at=fill.time.astimezone(dt.timezone.utc),
                created_at=now,
                **fill.model_dump(exclude={"time"}),
            )
        )
        return fill

    def _ledger(self, conn: sa.Connection) -> Ledger:
        acct = conn.execute(
            sa.select(paper_accounts).where(paper_accounts.c.account == self.account_name)
        ).one()
        held = conn.execute(
            sa.select(positions_table)
            .where(positions_table.c.account == self.account_name, positions_table.c.quantity != 0)
            .order_by(positions_table.c.symbol)
        )
        return Ledger(
            cash=acct.cash,
            positions={
                p.symbol: Position(symbol=p.symbol, quantity=p.quantity, avg_cost=p.avg_cost)
                for p in held
            },
            realized_pnl=acct.realized_pnl,
            commissions=acct.commissions,
        )

    def _save_ledger(
        self, conn: sa.Connection, ledger: Ledger, symbols: set[str], now: dt.datetime
    ) -> None:
        conn.execute(
            sa.update(paper_accounts)
            .where(paper_accounts.c.account == self.account_name)
            .values(
                cash=_round(ledger.cash),
                realized_pnl=_round(ledger.realized_pnl),
                commissions=_round(ledger.commissions),
                updated_at=now,
            )
        )
        for symbol in sorted(symbols):
            held = ledger.positions.get(symbol)
            values = {
                "account": self.account_name,
                "symbol": symbol,
                "quantity": held.quantity if held else 0,
                "avg_cost": _round(held.avg_cost) if held else 0.0,
                "updated_at": now,
            }
            stmt = _insert(self._dialect)(positions_table).values(**values)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["account", "symbol"],
                    set_={k: stmt.excluded[k] for k in ("quantity", "avg_cost", "updated_at")},
                )
            )

    def _record_closes(self, conn: sa.Connection, symbol: str, bars: list[Bar]) -> None:
        """Keep each bar's close once, earlier sessions too: a range backfilled after later
        sessions were synced still has its closes (for the performance report's buy-and-hold).
        An earlier close changes no snapshot: the account held nothing before its first fill."""
        if not bars:
            return
        recorded = set(
            conn.execute(
                sa.select(paper_closes.c.session_date).where(
                    paper_closes.c.account == self.account_name,
                    paper_closes.c.symbol == symbol,
                    paper_closes.c.session_date.between(bars[0].date, bars[-1].date),
                )
            ).scalars()
        )
        rows = [
            {"account": self.account_name, "symbol": symbol, "session_date": b.date,
             "close": _round(b.close)}
            for b in bars
            if b.date not in recorded
        ]  # fmt: skip
        if rows:
            stmt = _insert(self._dialect)(paper_closes).on_conflict_do_nothing()
            conn.execute(stmt, rows)

    def _mark_synced(
        self, conn: sa.Connection, symbol: str, day: dt.date, now: dt.datetime
    ) -> None:
        values = {"account": self.account_name, "symbol": symbol, "last_bar_date": day}
        stmt = _insert(self._dialect)(paper_sync).values(**values, updated_at=now)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["account", "symbol"],
                set_={"last_bar_date": day, "updated_at": now},
            )
        )


_SNAPSHOT_KEY = ("account", "snapshot_date")
_SNAPSHOT_NUMBERS = (
    "cash",
    "market_value",
    "equity",
    "realized_pnl",
    "unrealized_pnl",
    "commissions",
    "gross_exposure",
    "net_exposure",
    "exposure_pct",
)


def _bars_from_frame(symbol: str, frame: pd.DataFrame) -> list[Bar]:
    """The frame's bars, oldest first; a missing column, NaN or repeated date is an error."""
    missing = [c for c in _BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"bars for {symbol} lack column(s) {', '.join(missing)}")
    if frame.empty:
        return []
    stamps = pd.to_datetime(frame["date"])
    if stamps.isna().any():
        raise ValueError(f"bars for {symbol} have a missing date")
    days = stamps.dt.date
    if days.duplicated().any():
        raise ValueError(f"bars for {symbol} repeat a date: {sorted(set(days[days.duplicated()]))}")
    prices = frame[["open", "high", "low", "close"]].astype(float)
    out = [
        Bar(day, *row)
        for day, row in zip(days, prices.itertuples(index=False, name=None), strict=True)
    ]
    return sorted(out, key=lambda b: b.date)


def _order_from_row(row: Mapping[str, Any]) -> BrokerOrder:
    return BrokerOrder(
        order_ref=row["order_ref"],
        broker_order_id=row["broker_order_id"],
        symbol=row["symbol"],
        side=row["side"],
        order_type=row["order_type"],
        role=row["role"],
        quantity=row["quantity"],
        limit_price=row["limit_price"],
        stop_price=row["stop_price"],
        parent_id=row["parent_id"],
        status=OrderStatus(row["status"]),
        filled_quantity=row["filled_quantity"],
        avg_fill_price=row["avg_fill_price"],
        commission=row["commission"],
        reason=row["reason"],
        updated_at=_aware(row["updated_at"]),
    )


def _session_close(day: dt.date) -> dt.datetime:
    """Fills are stamped at the close of their bar: a daily bar does not say when they happened."""
    return dt.datetime.combine(day, dt.time(16), tzinfo=NEW_YORK)


def _insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _round(value: float | None) -> float | None:
    """Six decimals, as NUMERIC(18, 6) keeps them (SQLite does not round by itself)."""
    return None if value is None else round(float(value), 6)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    utc = dt.timezone.utc
    return value.replace(tzinfo=utc) if value.tzinfo is None else value.astimezone(utc)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
