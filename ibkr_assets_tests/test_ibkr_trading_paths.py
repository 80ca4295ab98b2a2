"""The IBKR broker behind the order asset: historical sessions never reach it, the current
session does (once), and the tracking poll records state changes and recovers missed fills."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ibkr_assets.brokers.ibkr import IbkrBroker
from ibkr_assets.domain.orders import BracketRequest, OrderStatus, order_ref
from ibkr_assets.execution.tracking import OrderTracker
from ibkr_assets.ibkr.adapter import IbkrAdapter, IbkrConfig
from ibkr_assets.resources.broker import BrokerResource, current_session
from ibkr_assets.sources.sample import SampleBarSource
from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets_tests.fakes.ib import FakeIB
from ibkr_assets_tests.helpers import job_name, run_partitions
from ibkr_assets_tests.openai_stub import answer, start_openai_stub

pytestmark = pytest.mark.slow  # whole-graph runs against the fake gateway

CONFIG = IbkrConfig(client_id=18, readonly=False, connect_timeout=0.5, request_timeout=2.0,
                    connect_attempts=1, backoff_seconds=0.0, backoff_max_seconds=0.0)  # fmt: skip


@pytest.fixture
def fake() -> FakeIB:
    ib = FakeIB()
    ib.add_stock("AAPL", con_id=265598, description="APPLE INC")
    return ib


@pytest.fixture
def ibkr_deployment(deployment, monkeypatch, fake):
    """Broker ``ibkr`` whose IB boundary is the fake; the analyst is the OpenAI stub."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("IBKR_ASSETS_KILL_SWITCH", raising=False)

    def fake_ibkr(self, strategy):
        adapter = IbkrAdapter(CONFIG, ib_factory=lambda: fake, sleep=lambda _s: None)
        risk = strategy.risk
        return IbkrBroker(
            adapter, live=self.live, max_notional=risk.max_notional, max_position=risk.max_position
        )

    monkeypatch.setattr(BrokerResource, "_ibkr", fake_ibkr)
    with start_openai_stub() as stub:
        deployment(
            strategy={
                "broker": {"kind": "ibkr"},
                "analyst": {"provider": "openai", "base_url": stub.base_url},
            },
            LLM_MAX_RETRIES="0",
        )
        yield stub


def _buy(day: dt.date):
    close = float(SampleBarSource().fetch_bars("AAPL", day, 1)["close"].iloc[-1])
    return answer(json.dumps({"action": "BUY", "confidence": 80, "entry_price": close,
                              "stop_loss": round(close * 0.92, 4), "take_profit": round(close * 1.16, 4),
                              "reasoning": "BUY setup."}))  # fmt: skip


def _order_row(tmp_path, key: str, execution_id: str) -> dict:
    store = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    (row,) = store.lineage_rows(partition_key=key, step_name="order", execution_id=execution_id)
    return row


def test_historical_partition_with_broker_ibkr_never_reaches_place_order(
    ibkr_deployment, fake, instance, tmp_path
):
    day = dt.date(2025, 3, 10)
    ibkr_deployment.script(_buy(day))
    result = run_partitions(
        instance, symbol="AAPL", start=day.isoformat(), job_name=job_name("trading_workflow_job")
    )
    assert result.success
    row = _order_row(tmp_path, "2025-03-10|AAPL", result.run_id)
    assert row["metadata"]["mode"] == "backtest"
    assert (row["output_data"]["broker"], row["output_data"]["outcome"]) == ("paper", "placed")
    assert fake.calls_to("placeOrder") == []
    assert fake.calls_to("connect") == []


def test_current_session_with_broker_ibkr_reaches_tws_once(
    ibkr_deployment, fake, instance, tmp_path
):
    day = current_session()
    key = f"{day}|AAPL"
    ibkr_deployment.script(_buy(day), _buy(day))
    first = run_partitions(
        instance, symbol="AAPL", start=day.isoformat(), job_name=job_name("trading_workflow_job")
    )
    assert first.success
    row = _order_row(tmp_path, key, first.run_id)
    assert row["metadata"]["mode"] == "ibkr-paper"
    assert row["output_data"]["outcome"] == "placed"
    ref = order_ref("momentum", "AAPL", day)
    assert {o.order.orderRef for o in fake.server_orders_for(ref)} == {ref}
    assert len(fake.calls_to("placeOrder")) == 3

    second = run_partitions(
        instance, symbol="AAPL", start=day.isoformat(), job_name=job_name("trading_workflow_job")
    )
    assert second.success
    assert _order_row(tmp_path, key, second.run_id)["output_data"]["outcome"] == "existing"
    assert len(fake.calls_to("placeOrder")) == 3  # nothing sent twice


def test_tracking_records_state_changes_and_recovers_fills_missed_while_disconnected(
    fake, sqlite_url
):
    with IbkrAdapter(CONFIG, ib_factory=lambda: fake, sleep=lambda _s: None) as adapter:
        broker = IbkrBroker(adapter)
        session = dt.date.today()
        ref = order_ref("momentum", "AAPL", session)
        placed = broker.place_bracket(BracketRequest(order_ref=ref, symbol="AAPL", side="BUY", quantity=10,
                                                     entry_price=100, take_profit=110, stop_loss=95,
                                                     session=session))  # fmt: skip
        tracker = OrderTracker(sqlite_url, "ibkr:paper")
        first = tracker.poll(broker)
        assert {c["broker_order_id"] for c in first.changes} == {o.broker_order_id for o in placed}

        parent = next(o for o in placed if o.role == "parent")
        fake.fill(int(parent.broker_order_id), shares=4, price=99.9)
        partial = tracker.poll(broker)
        assert [
            (c["broker_order_id"], c["status"], c["filled_quantity"]) for c in partial.changes
        ] == [(parent.broker_order_id, OrderStatus.PARTIALLY_FILLED.value, 4)]
        assert len(partial.new_fills) == 1

        fake.drop_connection()
        fake.fill(int(parent.broker_order_id), price=99.8)  # the rest, while we were away
        recovered = tracker.poll(broker)
        statuses = {c["broker_order_id"]: c["status"] for c in recovered.changes}
        assert statuses[parent.broker_order_id] == "filled"
        assert len(recovered.new_fills) == 1

        again = tracker.poll(broker)
        assert again.changes == [] and again.new_fills == []


def test_order_tracking_sensor_polls_the_current_session_broker(deployment, instance, tmp_path):
    import dagster as dg

    from ibkr_assets.definitions import build_definitions

    deployment()
    defs = build_definitions()
    with dg.build_sensor_context(
        instance=instance, resources={"broker": defs.resources["broker"]}
    ) as context:
        result = defs.resolve_sensor_def("order_tracking_sensor")(context)
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message.startswith(
        "momentum (paper): 0 order state change(s), 0 new fill(s)"
    )
