-- Failed runs and steps. For PostgreSQL; safe to run again.
-- Generated from ibkr_assets/storage/tables.py by `python -m ibkr_assets.storage.ddl`: do not edit.

-- run_failures: one row per failed step of a failed Dagster run, written by the run_failure_sensor.
-- A failure outside any step has step_key '' (not NULL), so (run_id, step_key) is a real unique key
-- and re-recording a run updates its rows. notified / webhook_status: whether the alert webhook
-- accepted the failure, and its answer.
CREATE TABLE IF NOT EXISTS run_failures (
    id SERIAL NOT NULL,
    run_id VARCHAR(255) NOT NULL,
    job_name VARCHAR(255) NOT NULL,
    partition_key VARCHAR(255),
    step_key VARCHAR(255) DEFAULT '' NOT NULL,
    error TEXT NOT NULL,
    error_class VARCHAR(255) NOT NULL,
    strategy_id VARCHAR(100),
    occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
    notified BOOLEAN DEFAULT false NOT NULL,
    webhook_status TEXT,
    PRIMARY KEY (id),
    CONSTRAINT uq_run_failures_run_step UNIQUE (run_id, step_key)
);
CREATE INDEX IF NOT EXISTS ix_run_failures_occurred_at ON run_failures (occurred_at);
CREATE INDEX IF NOT EXISTS ix_run_failures_partition_key ON run_failures (partition_key);
CREATE INDEX IF NOT EXISTS ix_run_failures_strategy_occurred ON run_failures (strategy_id, occurred_at);
