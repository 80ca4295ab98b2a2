"""The broker resource: the paper simulator by default, IBKR by configuration, live only by opt-in.

Historical safety lives here, in one place: an order for a session before the current one goes
to the paper simulator whatever broker is configured, and is labelled ``backtest``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from ibkr_assets.brokers.base import Broker, Connected
from ibkr_assets.domain.calendar import DEFAULT_CALENDAR, last_closed_session
from ibkr_assets.domain.commissions import CommissionModel
from ibkr_assets.settings import read_setting, switched_on
from ibkr_assets.storage.book_lock import book_lock
from ibkr_assets.strategies.config import StrategyConfig


def current_session(calendar: str = DEFAULT_CALENDAR, now: dt.datetime | None = None) -> dt.date:
    """The session orders are decided for now: the latest one that has closed (its bars exist,
    and its orders execute from the next open). Anything earlier is history: a backtest."""
    return last_closed_session(calendar, now)


class BrokerResource(dg.ConfigurableResource):
    """Where orders can go: the paper simulator's database, IB Gateway/TWS at host:port (its
    paper account unless ``live`` is set, which also needs the strategy's ``max_notional`` and
    ``max_position``), commissions, the kill switch and the book lock.

    The broker kind, starting cash and risk limits are each strategy's, passed as a value
    (``broker_for(strategy, session)``; the simulator's account is the strategy id)."""

    live: bool = False
    database_url: str = "sqlite:///.ibkr_assets/lineage.db"
    commission_per_share: float = 0.005
    commission_min: float = 1.0
    commission_max_pct: float = 1.0
    kill_switch_file: str = ".ibkr_assets/KILL_SWITCH"
    book_lock_timeout_s: float = 600.0
    ibkr_host: str = "127.0.0.1"
    ibkr_port: int = 4002
    ibkr_client_id: int = 18

    _brokers: dict = PrivateAttr(default_factory=dict)  # (strategy id, mode) -> broker

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Disconnect from IB Gateway/TWS at the end of the run (the simulator holds nothing)."""
        for broker in self._brokers.values():
            if isinstance(broker, Connected):
                broker.disconnect()
        self._brokers.clear()

    def kill_switch(self) -> str | None:
        """Why new orders are blocked right now, or None. Read at call time, so flipping the
        variable or creating the file takes effect on the next order without a restart."""
        if switched_on(read_setting("kill_switch")):
            return "IBKR_ASSETS_KILL_SWITCH is set"
        if Path(self.kill_switch_file).exists():
            return f"kill-switch file {self.kill_switch_file} exists"
        return None

    def book(self, strategy: StrategyConfig):
        """Hold ``strategy``'s book (its order and portfolio steps) against other processes."""
        return book_lock(self.database_url, strategy.id, wait_seconds=self.book_lock_timeout_s)

    def mode_for(
        self, strategy: StrategyConfig, session: dt.date, now: dt.datetime | None = None
    ) -> str:
        if session < current_session(strategy.schedule.calendar, now):
            return "backtest"
        if strategy.broker.kind == "paper":
            return "paper"
        return "live" if self.live else "ibkr-paper"

    def broker_for(
        self, strategy: StrategyConfig, session: dt.date, now: dt.datetime | None = None
    ) -> tuple[Broker, str]:
        """The broker ``strategy``'s order for ``session`` goes to, and the mode to record."""
        mode = self.mode_for(strategy, session, now)
        key = (strategy.id, mode)
        if key not in self._brokers:
            self._brokers[key] = (
                self._paper(strategy, mode)
                if mode in ("backtest", "paper")
                else self._ibkr(strategy)
            )
        return self._brokers[key], mode

    def _paper(self, strategy: StrategyConfig, mode: str):
        from ibkr_assets.brokers.paper import PaperBroker

        return PaperBroker(
            self.database_url,
            account=strategy.id,
            starting_cash=strategy.broker.starting_cash,
            commission_model=CommissionModel(
                self.commission_per_share, self.commission_min, self.commission_max_pct
            ),
            allow_short=strategy.risk.allow_short,
            mode=mode,
        )

    def _ibkr(self, strategy: StrategyConfig):
        from ibkr_assets.brokers.ibkr import IbkrBroker
        from ibkr_assets.ibkr.adapter import IbkrAdapter, IbkrConfig

        adapter = IbkrAdapter(
            IbkrConfig(
                host=self.ibkr_host,
                port=self.ibkr_port,
                client_id=self.ibkr_client_id,
                readonly=False,
            )
        )
        risk = strategy.risk
        return IbkrBroker(
            adapter, live=self.live, max_notional=risk.max_notional, max_position=risk.max_position
        )
