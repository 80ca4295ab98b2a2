"""``portfolio_snapshot`` (one partition per date): positions, cash, equity and P&L after the
session, fanning in every symbol's ``order`` of that date."""

import datetime as dt

import dagster as dg

from ibkr_assets.assets.defaults import by_partition, workflow_asset
from ibkr_assets.domain.orders import OrderOutcome
from ibkr_assets.domain.portfolio import PortfolioSnapshot, snapshot
from ibkr_assets.partitions import date_partitions
from ibkr_assets.resources.broker import BrokerResource
from ibkr_assets.resources.io_manager import latest_materializations
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.mlflow import MlflowResource
from ibkr_assets.resources.object_store import ObjectStoreResource, object_ref
from ibkr_assets.strategies.config import StrategyConfig


class PortfolioInvariantError(Exception):
    """The books do not balance; nothing is recorded as a valid snapshot."""


def check_invariants(snap: PortfolioSnapshot, allow_short: bool) -> list[str]:
    """Every broken accounting invariant (empty when the books balance)."""
    problems = []
    if abs(snap.cash + snap.market_value - snap.equity) > 0.01:
        problems.append(
            f"cash {snap.cash} + market value {snap.market_value} != equity {snap.equity}"
        )
    if not allow_short:
        short = [p.symbol for p in snap.positions if p.quantity < 0]
        if short:
            problems.append(f"negative positions without shorting configured: {short}")
    return problems


def build_portfolio_snapshot(strategy: StrategyConfig) -> dg.AssetsDefinition:
    @workflow_asset(
        strategy,
        name="portfolio_snapshot",
        partitions_def=date_partitions,
        # After a scheduled day, each symbol's order updates the date's snapshot (the daemon's
        # automation sensor runs it); backfills run the portfolio job for the range instead.
        automation_condition=dg.AutomationCondition.eager(),
        ins={
            "order": dg.AssetIn(
                partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
                    partition_dimension_name="date"
                ),
                metadata={"allow_missing_partitions": True},
            )
        },
    )
    def portfolio_snapshot(
        context: dg.AssetExecutionContext,
        order: dict,
        broker: BrokerResource,
        object_store: ObjectStoreResource,
        lineage: LineageResource,
        mlflow: MlflowResource,
    ) -> dg.Output[dict]:
        """The strategy account's cash, positions, market value, equity, realized/unrealized
        P&L and exposure per date.

        Invariants are checked before anything is recorded: cash + market value = equity, and
        no negative position unless shorting is configured.
        """
        return _materialize(
            context, order, broker.for_strategy(strategy), object_store, lineage, mlflow
        )

    return portfolio_snapshot


def _materialize(
    context: dg.AssetExecutionContext,
    order: dict,
    broker: BrokerResource,
    object_store: ObjectStoreResource,
    lineage: LineageResource,
    mlflow: MlflowResource,
) -> dg.Output[dict]:
    strategy_id = broker.account
    recorder = lineage.recorder(context, "portfolio_snapshot", strategy_id)
    tracker = mlflow.get_tracker()
    made_by = _order_runs(context, dg.AssetKey([strategy_id, "order"]), list(order))
    values: dict[str, PortfolioSnapshot] = {}
    for day_key in sorted(context.partition_keys):
        day = dt.date.fromisoformat(day_key)
        outcomes = {
            k: v
            for k, v in order.items()
            if k.startswith(f"{day_key}|") and isinstance(v, OrderOutcome)
        }
        snap, source = _snapshot_for(broker, day, outcomes)
        problems = check_invariants(snap, broker.allow_short)
        inputs = {"orders": sorted(outcomes), "source": source, "mode": broker.mode_for(day)}
        if problems:
            recorder.add(
                day_key,
                status="error",
                input_data=inputs,
                output_data={},
                error="; ".join(problems),
            )
            recorder.flush()
            raise PortfolioInvariantError(f"portfolio {day_key}: " + "; ".join(problems))
        values[day_key] = snap
        ref = object_ref(object_store, strategy_id, "portfolio_snapshot", day_key, snap)
        data = snap.model_dump(mode="json")
        run_ids = {}
        for key, outcome in outcomes.items():
            # the MLflow run of the execution that made this order, so one run holds a
            # partition's charts, prompt, signal and the portfolio value after its order
            execution_id, dagster_run_id = made_by[key]
            run_id = tracker.run_for_partition(
                strategy_id=strategy_id,
                symbol=outcome.symbol,
                partition_key=key,
                execution_id=execution_id,
                dagster_run_id=dagster_run_id,
            )
            tracker.log(
                run_id,
                metrics={
                    "portfolio_value": snap.equity,
                    "order_placed": float(outcome.outcome == "placed"),
                },
            )
            tracker.log_json(run_id, "portfolio.json", data)
            run_ids[key] = run_id
        recorder.add(day_key, status="success", input_data=inputs, output_data={**data, "object": ref,
                     "mlflow_run_ids": run_ids})  # fmt: skip
        recorder.add_artifact(
            day_key,
            name=f"Portfolio {day_key}",
            type="portfolio",
            uri=ref["uri"],
            sha256=ref["sha256"],
            metadata=data,
        )
    row_ids = recorder.flush()
    return dg.Output(values, metadata=_metadata(values, row_ids))


def _order_runs(
    context: dg.AssetExecutionContext, order_key: dg.AssetKey, keys: list[str]
) -> dict[str, tuple[str, str]]:
    """``partition -> (execution id, run id)`` of the latest ``order`` materialization of each."""
    roots: dict[str, str] = {}
    found = {}
    for key, record in latest_materializations(context.instance, order_key, keys).items():
        if record.run_id not in roots:
            run = context.instance.get_run_by_id(record.run_id)
            roots[record.run_id] = (run.root_run_id if run else None) or record.run_id
        found[key] = (roots[record.run_id], record.run_id)
    return found


def _snapshot_for(
    broker: BrokerResource, day: dt.date, outcomes: dict
) -> tuple[PortfolioSnapshot, str]:
    chosen, mode = broker.broker_for(day)
    prices = {o.symbol: o.last_close for o in outcomes.values()}
    if mode in ("backtest", "paper"):
        stored = {s.date: s for s in chosen.snapshots()}
        if day in stored:
            return stored[day], "simulator snapshot recorded at the session's orders"
        for position in chosen.positions():
            prices.setdefault(position.symbol, position.avg_cost)
        snap = chosen.snapshot_at(day, prices)
        chosen.record_snapshot(snap)
        return snap, "simulator account now"
    account = chosen.account()
    positions = chosen.positions()
    for position in positions:
        prices.setdefault(position.symbol, position.avg_cost)
    snap = snapshot(positions, account.cash, prices, date=day, realized_pnl=account.realized_pnl,
                    commissions=account.commissions)  # fmt: skip
    return snap, f"{chosen.name} account"


def _metadata(values: dict[str, PortfolioSnapshot], row_ids: dict) -> dict:
    meta: dict = {
        "partitions": len(values),
        **by_partition("lineage_row_ids", row_ids, len(values)),
    }
    if values:
        last = values[max(values)]
        meta |= {
            "equity": round(last.equity, 2),
            "cash": round(last.cash, 2),
            "market_value": round(last.market_value, 2),
            "realized_pnl": round(last.realized_pnl, 2),
            "unrealized_pnl": round(last.unrealized_pnl, 2),
            "positions": dg.MetadataValue.table(
                records=[
                    dg.TableRecord(
                        {
                            "symbol": p.symbol,
                            "quantity": p.quantity,
                            "avg_cost": round(p.avg_cost, 4),
                            "price": round(p.price, 4),
                            "market_value": round(p.market_value, 2),
                            "unrealized_pnl": round(p.unrealized_pnl, 2),
                        }
                    )
                    for p in last.positions
                ],
                schema=dg.TableSchema(
                    columns=[
                        dg.TableColumn("symbol", "string"),
                        dg.TableColumn("quantity", "int"),
                        dg.TableColumn("avg_cost", "float"),
                        dg.TableColumn("price", "float"),
                        dg.TableColumn("market_value", "float"),
                        dg.TableColumn("unrealized_pnl", "float"),
                    ]
                ),
            ),
        }
    return meta
