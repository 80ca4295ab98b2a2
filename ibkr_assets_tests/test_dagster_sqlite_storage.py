"""The embedded deployment's Dagster instance: SQLite with the event log's connections kept open.

Every test goes through a real ``DagsterInstance`` built from the configuration the repository's
``dagster.yaml`` holds, materializing real partitioned assets; a second instance on the same
folder stands in for another process (the UI, the daemon) reading what the first one wrote.
"""

import os
import threading
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy
import yaml
from dagster._core.storage.event_log.sqlite import sqlite_event_log as dagster_sqlite_event_log

from ibkr_assets.dagster_home import instance_config, write_instance_config
from ibkr_assets.storage.dagster_sqlite import (
    DagsterInternalsChanged,
    PooledSqliteEventLogStorage,
    check_dagster_internals,
)

REPO = Path(__file__).resolve().parents[1]
DAYS = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_date="2025-01-11")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def prices(context: dg.AssetExecutionContext) -> dict[str, int]:
    return {key: len(key) for key in context.partition_keys}


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def doubled(prices: dict[str, int]) -> dict[str, int]:
    return {key: 2 * value for key, value in prices.items()}


@dg.asset_check(asset=doubled, blocking=True)
def doubled_is_even(doubled: dict[str, int]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=all(v % 2 == 0 for v in doubled.values()))


def _instance(home: Path) -> dg.DagsterInstance:
    write_instance_config(home, "pooled")
    return dg.DagsterInstance.from_config(str(home))


def _materialize_range(instance: dg.DagsterInstance, first: str, last: str, *checks):
    return dg.materialize(
        [prices, doubled, *checks],
        instance=instance,
        resources={"io_manager": dg.mem_io_manager},
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
    )


def test_repository_dagster_yaml_is_the_embedded_instance_config():
    """Dagster's own storage by default, in the layout the pooled event log also uses."""
    repository = yaml.safe_load((REPO / "dagster.yaml").read_text())
    expected = instance_config(".dagster_home/storage")
    assert (
        repository["storage"]
        == expected["storage"]
        == {"sqlite": {"base_dir": ".dagster_home/storage"}}
    )
    pooled = instance_config(".dagster_home/storage", "pooled")
    assert pooled["event_log_storage"]["class"] == "PooledSqliteEventLogStorage"
    assert pooled["event_log_storage"]["config"] == {
        "base_dir": ".dagster_home/storage/history/runs"
    }


def test_the_pooled_event_log_refuses_a_dagster_whose_internals_it_was_not_checked_with(
    monkeypatch,
):
    """Fails loudly on this Dagster if an internal it relies on changed, and refuses another
    series outright, naming the way out."""
    check_dagster_internals()  # the installed Dagster: every relied-on internal is as expected
    with pytest.raises(DagsterInternalsChanged, match=r"Dagster 1\.99\.0 is installed: use"):
        check_dagster_internals("1.99.0")
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    monkeypatch.setattr(SqliteEventLogStorage, "_event_to_row", lambda self, event, extra: {})
    with pytest.raises(
        DagsterInternalsChanged, match="changed SqliteEventLogStorage._event_to_row"
    ):
        check_dagster_internals()


def test_write_instance_config_keeps_an_existing_file(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    write_instance_config(tmp_path)
    assert (tmp_path / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_a_range_run_is_recorded_and_readable_from_another_instance(tmp_path):
    with _instance(tmp_path) as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        result = _materialize_range(instance, "2025-01-02", "2025-01-06")
        assert result.success
        run_id = result.run_id
        # the writer's connections are still open while another instance reads
        with dg.DagsterInstance.from_config(str(tmp_path)) as reader:
            records = reader.get_records_for_run(run_id).records
            materialized = reader.get_materialized_partitions(dg.AssetKey("doubled"))
            planned = reader.get_event_records(
                dg.EventRecordsFilter(
                    dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                    asset_key=dg.AssetKey("doubled"),
                )
            )
            assert reader.get_run_by_id(run_id).is_success
    assert materialized == {f"2025-01-0{d}" for d in range(2, 7)}
    assert len(planned) == 5  # one per partition, so a failed run marks them failed
    kinds = [
        r.event_log_entry.dagster_event_type for r in records if r.event_log_entry.is_dagster_event
    ]
    assert kinds.count(dg.DagsterEventType.ASSET_MATERIALIZATION) == 10
    assert kinds[-1] == dg.DagsterEventType.RUN_SUCCESS


def test_batched_events_are_all_stored(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    with _instance(tmp_path) as instance:
        stored = []
        storage = instance.event_log_storage
        original = storage.store_event_batch

        def counting(events):
            stored.append(len(events))
            original(events)

        monkeypatch.setattr(storage, "store_event_batch", counting)
        result = _materialize_range(instance, "2025-01-01", "2025-01-10")
        assert result.success
        assert instance.get_materialized_partitions(dg.AssetKey("prices")) == set(
            DAYS.get_partition_keys()[:10]
        )
    assert max(stored) >= 10  # the planned events and each step's materializations came batched


def test_a_failing_batch_stores_none_of_its_events(tmp_path, monkeypatch):
    with _instance(tmp_path) as instance:
        assert _materialize_range(instance, "2025-01-01", "2025-01-02").success
        storage = instance.event_log_storage
        entries = [
            r.event_log_entry
            for r in instance.get_records_for_run(instance.get_runs()[0].run_id).records
            if r.event_log_entry.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
        ]
        copies = [e._replace(run_id="batch-run") for e in entries]
        calls = []
        real = storage._store_asset_event

        def fail_on_second(conn, event, event_id):
            calls.append(event_id)
            if len(calls) == 2:
                raise RuntimeError("disk full")
            real(conn, event, event_id)

        monkeypatch.setattr(storage, "_store_asset_event", fail_on_second)
        with pytest.raises(RuntimeError, match="disk full"):
            storage.store_event_batch(copies)
        assert storage.get_records_for_run("batch-run").records == []
        monkeypatch.setattr(storage, "_store_asset_event", real)
        storage.store_event_batch(copies)  # the connections are usable again afterwards
        assert len(storage.get_records_for_run("batch-run").records) == len(copies)


def test_a_watcher_sees_events_written_through_a_kept_open_connection(tmp_path):
    with _instance(tmp_path) as writer, dg.DagsterInstance.from_config(str(tmp_path)) as viewer:
        assert _materialize_range(writer, "2025-01-01", "2025-01-01").success
        run = writer.get_runs()[0]
        seen = threading.Event()
        received = []

        def callback(entry, cursor):
            received.append(entry)
            if entry.message == "written later":
                seen.set()

        viewer.event_log_storage.watch(run.run_id, None, callback)
        try:
            writer.report_engine_event("written later", run)
            assert seen.wait(10), "the watcher never saw the new event"
        finally:
            viewer.event_log_storage.end_watch(run.run_id, callback)
    assert received[-1].message == "written later"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_opens_its_own_connections(tmp_path):
    with _instance(tmp_path) as instance:
        assert _materialize_range(instance, "2025-01-01", "2025-01-01").success
        run = instance.get_runs()[0]
        storage = instance.event_log_storage
        parents = storage._engines[run.run_id]  # the parent wrote the run through this engine
        pid = os.fork()
        if pid == 0:  # the child writes through its inherited storage object, then leaves
            try:
                instance.report_engine_event("from the child", run)
                code = 0 if storage._engines[run.run_id] is not parents else 2
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "1: the write failed, 2: shared engine"
        instance.report_engine_event("from the parent", run)  # the parent's connection still works
        messages = [
            r.event_log_entry.message for r in instance.get_records_for_run(run.run_id).records
        ]
    assert messages[-2:] == ["from the child", "from the parent"]


def test_wipe_closes_the_connections_to_deleted_databases(tmp_path):
    with _instance(tmp_path) as instance:
        assert _materialize_range(instance, "2025-01-01", "2025-01-01").success
        instance.event_log_storage.wipe()
        result = _materialize_range(instance, "2025-01-03", "2025-01-03")
        assert result.success
        with dg.DagsterInstance.from_config(str(tmp_path)) as reader:
            kinds = [
                r.event_log_entry.dagster_event_type
                for r in reader.get_records_for_run(result.run_id).records
            ]
    assert dg.DagsterEventType.RUN_SUCCESS in kinds


def test_has_table_answers_through_the_kept_open_connection(tmp_path, monkeypatch):
    with _instance(tmp_path) as instance:
        storage = instance.event_log_storage

        def no_new_engines(*args, **kwargs):
            raise AssertionError("has_table opened a new engine")

        assert storage.has_table("asset_event_tags")  # the index's engine exists from here on
        for module in (sqlalchemy, dagster_sqlite_event_log):  # ours, and Dagster's own
            monkeypatch.setattr(module, "create_engine", no_new_engines)
        assert storage.has_table("asset_event_tags")
        assert storage.has_table("dynamic_partitions")
        assert not storage.has_table("no_such_table")


def test_asset_key_columns_are_reflected_once_not_for_every_event(tmp_path, monkeypatch):
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    reflected: list[str] = []
    real = SqlEventLogStorage._has_asset_key_col_on_connection

    def counting(self, conn, column_name):
        reflected.append(column_name)
        return real(self, conn, column_name)

    monkeypatch.setattr(SqlEventLogStorage, "_has_asset_key_col_on_connection", counting)
    with _instance(tmp_path) as instance:
        assert _materialize_range(instance, "2025-01-02", "2025-01-06").success
        events = instance.fetch_materializations(dg.AssetKey("doubled"), limit=10).records
        assert len(events) == 5
        assert instance.event_log_storage.has_asset_key_index_cols()
    # 10 materializations and their planned events: each column reflected once
    assert sorted(reflected) == sorted(set(reflected)), reflected  # each column once


def _asset_state(instance: dg.DagsterInstance, run_id: str) -> dict:
    """What Dagster knows of the two assets after ``run_id``: rows, latest values, statuses."""
    state: dict = {
        "run": [
            (r.storage_id, r.event_log_entry.dagster_event_type)
            for r in instance.get_records_for_run(run_id).records
            if r.event_log_entry.is_dagster_event
        ]
    }
    check = dg.AssetCheckKey(dg.AssetKey("doubled"), "doubled_is_even")
    state["check"] = [
        (r.id, r.status, r.run_id == run_id, r.event.dagster_event_type if r.event else None)
        for r in instance.event_log_storage.get_asset_check_execution_history(check, limit=10)
    ]
    with instance.event_log_storage.index_connection() as conn:
        state["indexed_tags"] = sorted(
            tuple(row)
            for row in conn.execute(
                sqlalchemy.text("SELECT event_id, asset_key, key FROM asset_event_tags")
            )
        )  # fmt: skip (values differ: a data version without a code version is per run)
    for name in ("prices", "doubled"):
        key = dg.AssetKey(name)
        (record,) = instance.get_asset_records([key])
        entry = record.asset_entry
        planned = instance.get_latest_planned_materialization_info(key)
        materializations = instance.fetch_materializations(key, limit=100).records
        planned_events = instance.get_event_records(
            dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, key)
        )
        events = [
            (
                r.storage_id,
                r.event_log_entry.dagster_event_type,
                r.partition_key,
                r.run_id == run_id,
            )
            for r in [*materializations, *planned_events]
        ]
        state[name] = {
            "events": sorted(events),
            "last_materialization": entry.last_materialization_record.storage_id,
            "last_partition": entry.last_materialization_record.partition_key,
            "last_run_is_this_run": entry.last_run_id == run_id,
            "planned": (planned.storage_id, planned.run_id == run_id) if planned else None,
            "materialized": instance.get_materialized_partitions(key),
            "status": instance.get_status_by_partition(key, DAYS.get_partition_keys(), DAYS),
        }
    return state


@pytest.mark.slow
def test_a_batch_of_asset_events_is_stored_as_one_by_one_would(tmp_path, monkeypatch):
    """Dagster sends a range run's asset events in batches only with DAGSTER_EVENT_BATCH_SIZE;
    what the bulk write leaves must equal what storing them one by one leaves."""
    states, batches, bulk_kinds = [], [], set()
    real_bulk = PooledSqliteEventLogStorage._store_asset_events

    def spying_bulk(self, events):
        bulk_kinds.update(e.dagster_event_type.value for e in events)
        return real_bulk(self, events)

    monkeypatch.setattr(PooledSqliteEventLogStorage, "_store_asset_events", spying_bulk)
    for size in ("1000", "0"):
        monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", size)
        with _instance(tmp_path / size) as instance:
            storage = instance.event_log_storage
            original = storage.store_event_batch

            def counting(events, size=size, original=original):
                batches.append((size, len(events)))
                original(events)

            monkeypatch.setattr(storage, "store_event_batch", counting)
            first = _materialize_range(instance, "2025-01-02", "2025-01-06", doubled_is_even)
            second = _materialize_range(instance, "2025-01-05", "2025-01-08", doubled_is_even)
            assert first.success and second.success
            states.append(_asset_state(instance, second.run_id))
    assert any(size == "1000" and n >= 4 for size, n in batches)
    assert {"ASSET_MATERIALIZATION", "ASSET_MATERIALIZATION_PLANNED"} <= bulk_kinds
    assert not [b for b in batches if b[0] == "0"]
    batched, one_by_one = states
    assert batched == one_by_one
    assert batched["doubled"]["last_partition"] == "2025-01-08"
    assert batched["indexed_tags"], "materializations index their data-version tags"
    assert batched["check"][0][1].value == "SUCCEEDED"  # newest first
