"""The broker resource: the paper simulator by default, IBKR by configuration, live only by opt-in.

Historical safety lives here, in one place: an order for a session before the current one goes
to the paper simulator whatever broker is configured, and is labelled ``backtest``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import PrivateAttr

from ibkr_assets.domain.calendar import DEFAULT_CALENDAR, last_closed_session
from ibkr_assets.domain.commissions import CommissionModel
from ibkr_assets.domain.sizing import RiskLimits
from ibkr_assets.resources.strategy_copies import copy_for_strategy
from ibkr_assets.storage.book_lock import book_lock
from ibkr_assets.strategies.config import StrategyConfig


def current_session(calendar: str = DEFAULT_CALENDAR, now: dt.datetime | None = None) -> dt.date:
    """The session orders are decided for now: the latest one that has closed (its bars exist,
    and its orders execute from the next open). Anything earlier is history: a backtest."""
    return last_closed_session(calendar, now)


class BrokerResource(dg.ConfigurableResource):
    """``kind="paper"`` (default) or ``"ibkr"`` (IB Gateway/TWS at host:port; paper account unless
    ``live`` is set, which also needs ``max_notional`` and ``max_position``).

    The broker kind, account, starting cash and risk limits are each strategy's
    (``for_strategy``: the account is the strategy id); live opt-in, commissions, the kill switch
    and the gateway belong to the deployment."""

    kind: Literal["paper", "ibkr"] = "paper"
    live: bool = False
    database_url: str = "sqlite:///.ibkr_assets/lineage.db"
    account: str = "default"
    starting_cash: float = 100_000.0
    commission_per_share: float = 0.005
    commission_min: float = 1.0
    commission_max_pct: float = 1.0
    risk_per_trade_pct: float = 1.0
    max_position_pct: float = 10.0
    max_notional: float | None = None
    max_position: int | None = None
    min_confidence: int = 60
    allow_short: bool = False
    kill_switch_file: str = ".ibkr_assets/KILL_SWITCH"
    book_lock_timeout_s: float = 600.0
    calendar: str = DEFAULT_CALENDAR
    ibkr_host: str = "127.0.0.1"
    ibkr_port: int = 4002
    ibkr_client_id: int = 18

    _brokers: dict = PrivateAttr(default_factory=dict)
    _copies: dict = PrivateAttr(default_factory=dict)

    def for_strategy(self, strategy: StrategyConfig) -> BrokerResource:
        risk = strategy.risk
        return copy_for_strategy(
            self,
            self._copies,
            strategy.id,
            kind=strategy.broker.kind,
            account=strategy.id,
            starting_cash=strategy.broker.starting_cash,
            risk_per_trade_pct=risk.risk_per_trade_pct,
            max_position_pct=risk.max_position_pct,
            max_notional=risk.max_notional,
            max_position=risk.max_position,
            min_confidence=risk.min_confidence,
            allow_short=risk.allow_short,
            calendar=strategy.schedule.calendar,
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Disconnect from IB Gateway/TWS at the end of the run (the simulator holds nothing)."""
        for copy in self._copies.values():
            copy.teardown_after_execution(context)
        for broker in self._brokers.values():
            if hasattr(broker, "disconnect"):
                broker.disconnect()
        self._brokers.clear()

    def limits(self) -> RiskLimits:
        return RiskLimits(
            risk_per_trade_pct=self.risk_per_trade_pct,
            max_position_pct=self.max_position_pct,
            max_notional=self.max_notional if self.max_notional is not None else 25_000.0,
            min_confidence=self.min_confidence,
            allow_short=self.allow_short,
            max_position=self.max_position,
        )

    def kill_switch(self) -> str | None:
        """Why new orders are blocked right now, or None. Read at call time, so flipping the
        variable or creating the file takes effect on the next order without a restart."""
        if os.environ.get("IBKR_ASSETS_KILL_SWITCH", "").strip().lower() in {
            "1",
            "true",
            "yes",
            "on",
        }:
            return "IBKR_ASSETS_KILL_SWITCH is set"
        if Path(self.kill_switch_file).exists():
            return f"kill-switch file {self.kill_switch_file} exists"
        return None

    def book(self):
        """Hold this strategy's book (its order and portfolio steps) against other processes."""
        return book_lock(self.database_url, self.account, wait_seconds=self.book_lock_timeout_s)

    def mode_for(self, session: dt.date, now: dt.datetime | None = None) -> str:
        if session < current_session(self.calendar, now):
            return "backtest"
        if self.kind == "paper":
            return "paper"
        return "live" if self.live else "ibkr-paper"

    def broker_for(self, session: dt.date, now: dt.datetime | None = None):
        """The broker an order for ``session`` goes to, and the mode to record."""
        mode = self.mode_for(session, now)
        if mode not in self._brokers:
            self._brokers[mode] = (
                self._paper(mode) if mode in ("backtest", "paper") else self._ibkr()
            )
        return self._brokers[mode], mode

    def paper(self, mode: str = "paper"):
        """The simulator account (portfolio snapshots read it)."""
        if mode not in self._brokers:
            self._brokers[mode] = self._paper(mode)
        return self._brokers[mode]

    def _paper(self, mode: str):
        from ibkr_assets.brokers.paper import PaperBroker

        return PaperBroker(
            self.database_url,
            account=self.account,
            starting_cash=self.starting_cash,
            commission_model=CommissionModel(
                self.commission_per_share, self.commission_min, self.commission_max_pct
            ),
            allow_short=self.allow_short,
            mode=mode,
        )

    def _ibkr(self):
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
        return IbkrBroker(
            adapter, live=self.live, max_notional=self.max_notional, max_position=self.max_position
        )
