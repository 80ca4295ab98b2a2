"""``portfolio_snapshot`` (one partition per date): positions, cash, equity and P&L after the
session, fanning in every symbol's ``order`` of that date."""

import datetime as dt
from dataclasses import dataclass

import dagster as dg

from ibkr_assets.assets.defaults import book_pool, workflow_asset
from ibkr_assets.assets.step import Step
from ibkr_assets.brokers.base import Simulator
from ibkr_assets.domain.orders import OrderOutcome
from ibkr_assets.domain.portfolio import (
    PortfolioInvariantError,
    PortfolioSnapshot,
    check_invariants,
    snapshot,
)
from ibkr_assets.domain.skipped import Skipped
from ibkr_assets.partitions import date_partitions, split_key
from ibkr_assets.resources.broker import BrokerResource
from ibkr_assets.resources.io_manager import latest_materializations
from ibkr_assets.resources.lineage import LineageResource
from ibkr_assets.resources.mlflow import MlflowResource
from ibkr_assets.resources.object_store import ObjectStoreResource
from ibkr_assets.strategies.config import StrategyConfig


def build_portfolio_snapshot(strategy: StrategyConfig) -> dg.AssetsDefinition:
    @workflow_asset(
        strategy,
        name="portfolio_snapshot",
        partitions_def=date_partitions,
        pool=book_pool(strategy),
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
        step = Step.open(context, strategy.id, "portfolio_snapshot", object_store, lineage, mlflow)
        made_by = _order_runs(context, dg.AssetKey([strategy.id, "order"]), list(order))
        days = sorted(dt.date.fromisoformat(k) for k in step.keys)
        values: dict[str, PortfolioSnapshot | Skipped] = {}
        with broker.book(strategy):
            undecided = {d: _undecided(order, d.isoformat()) for d in days}
            decided = [d for d in days if not undecided[d]]
            snaps, source, simulator = _snapshots(broker, strategy, decided, order)
            for day in days:
                day_key = day.isoformat()
                inputs = {"orders": sorted(k for k in order if k.startswith(f"{day_key}|")),
                          "source": source, "mode": broker.mode_for(strategy, day)}  # fmt: skip
                if undecided[day]:
                    values[day_key] = _blocked(step, day, undecided[day], inputs)
                    continue
                snap = snaps[day]
                problems = check_invariants(snap, allow_short=strategy.risk.allow_short)
                if problems:
                    step.record_error(day_key, inputs, "; ".join(problems))
                    raise PortfolioInvariantError(f"portfolio {day_key}: " + "; ".join(problems))
                if simulator is not None:
                    simulator.record_snapshot(snap)
                values[day_key] = snap
                _record(step, _Day(day_key, snap, _outcomes_of(order, day_key), made_by, inputs))
        snapshots = {k: v for k, v in values.items() if isinstance(v, PortfolioSnapshot)}
        return dg.Output(values, metadata=_metadata(context, snapshots, len(values)))

    return portfolio_snapshot


@dataclass(frozen=True)
class _Day:
    """One date's snapshot and what it is recorded with: the date's order outcomes, the
    execution and run that made each, and the lineage row's inputs."""

    key: str
    snap: PortfolioSnapshot
    outcomes: dict[str, OrderOutcome]
    made_by: dict[str, tuple[str, str]]
    inputs: dict


def _outcomes_of(order: dict, day_key: str) -> dict[str, OrderOutcome]:
    return {
        k: v
        for k, v in order.items()
        if k.startswith(f"{day_key}|") and isinstance(v, OrderOutcome)
    }


def _blocked(step: Step, day: dt.date, undecided: list[str], inputs: dict) -> Skipped:
    """A date whose orders did not all complete: a ``blocked`` marker, not a snapshot."""
    reason = "orders of this session did not complete: " + "; ".join(undecided)
    blocked = Skipped("", day, "blocked", reason)
    # the row names the marker the IO manager stores, as order's do
    step.record(day.isoformat(), blocked, status="blocked", input_data=inputs, error=reason)
    step.context.log.warning(f"portfolio {day.isoformat()} not computed: {reason}")
    return blocked


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


def _undecided(order: dict, day_key: str) -> list[str]:
    """Why ``day_key``'s orders are not all decided (empty when they are): a blocked or failed
    order partition, or none at all. A market-closed day is decided (nothing to do)."""
    mine = {k: v for k, v in order.items() if k.startswith(f"{day_key}|")}
    if not mine:
        return ["no order partition of this date was materialized"]
    return [
        f"{split_key(k)[1]} {v.status}: {v.reason}"
        for k, v in sorted(mine.items())
        if isinstance(v, Skipped) and v.status != "market_closed"
    ]


def _snapshots(
    broker: BrokerResource, strategy: StrategyConfig, days: list[dt.date], order: dict
) -> tuple[dict[dt.date, PortfolioSnapshot], str, Simulator | None]:
    """Each day's snapshot, where it comes from, and the simulator that keeps them (or None).
    The simulator's are computed from its fills and closes up to each day, so later sessions
    and reruns cannot change them."""
    if not days:
        return {}, "nothing to value", None
    chosen, _mode = broker.broker_for(strategy, days[-1])
    if isinstance(chosen, Simulator):
        return chosen.snapshots_as_of(days), "simulator fills and closes up to the date", chosen
    account = chosen.account()
    positions = chosen.positions()
    snaps = {}
    for day in days:
        prices = {o.symbol: o.last_close for k, o in order.items()
                  if k.startswith(f"{day}|") and isinstance(o, OrderOutcome)}  # fmt: skip
        for position in positions:
            prices.setdefault(position.symbol, position.avg_cost)
        snaps[day] = snapshot(positions, account.cash, prices, date=day, realized_pnl=account.realized_pnl,
                              commissions=account.commissions)  # fmt: skip
    return snaps, f"{chosen.name} account", None


def _record(step: Step, day: _Day) -> None:
    """The snapshot's object, lineage and artifact rows, and its value in each order's MLflow run."""
    data = day.snap.model_dump(mode="json")
    run_ids = {}
    for key, outcome in day.outcomes.items():
        # the MLflow run of the execution that made this order, so one run holds a
        # partition's charts, prompt, signal and the portfolio value after its order
        execution_id, dagster_run_id = day.made_by[key]
        run_id = step.tracker.run_for_partition(
            strategy_id=step.strategy_id,
            symbol=outcome.symbol,
            partition_key=key,
            execution_id=execution_id,
            dagster_run_id=dagster_run_id,
        )
        step.tracker.log(
            run_id,
            metrics={
                "portfolio_value": day.snap.equity,
                "order_placed": float(outcome.outcome == "placed"),
            },
        )
        step.tracker.log_json(run_id, "portfolio.json", data)
        run_ids[key] = run_id
    ref = step.record(day.key, day.snap, status="success", input_data=day.inputs,
                      output_data=data, links={"mlflow_run_ids": run_ids})  # fmt: skip
    step.artifact(day.key, ref, name=f"Portfolio {day.key}", type="portfolio", metadata=data)


def _metadata(
    context: dg.AssetExecutionContext, values: dict[str, PortfolioSnapshot], partitions: int
) -> dict:
    """The run's counts, and each snapshot's own figures on its own date's materialization."""
    meta: dict = {"partitions": partitions, "not_computed": partitions - len(values)}
    if partitions == 1:
        return meta | {k: v for snap in values.values() for k, v in _figures(snap).items()}
    for day_key, snap in values.items():
        context.add_asset_metadata(_figures(snap), partition_key=day_key)
    return meta


def _figures(snap: PortfolioSnapshot) -> dict:
    return {
        "equity": round(snap.equity, 2),
        "cash": round(snap.cash, 2),
        "market_value": round(snap.market_value, 2),
        "realized_pnl": round(snap.realized_pnl, 2),
        "unrealized_pnl": round(snap.unrealized_pnl, 2),
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
                for p in snap.positions
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
