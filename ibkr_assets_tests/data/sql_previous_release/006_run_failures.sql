-- run_failures (PostgreSQL): one row per failed step of a failed Dagster run, written by the
-- run_failure_sensor. A failure outside any step has step_key '' (not NULL), so
-- (run_id, step_key) is a real unique key and re-recording a run updates its rows.
-- notified / webhook_status: whether the alert webhook accepted the failure, and its answer.
-- Mirrors ibkr_assets/monitoring/run_failures.py; the test suite compares the two. Safe to run again.
CREATE TABLE IF NOT EXISTS run_failures (
    id             SERIAL PRIMARY KEY,
    run_id         VARCHAR(255) NOT NULL,
    job_name       VARCHAR(255) NOT NULL,
    partition_key  VARCHAR(255),
    step_key       VARCHAR(255) NOT NULL DEFAULT '',
    error          TEXT NOT NULL,
    error_class    VARCHAR(255) NOT NULL,
    strategy_id    VARCHAR(100),
    occurred_at    TIMESTAMP WITH TIME ZONE NOT NULL,
    notified       BOOLEAN NOT NULL DEFAULT false,
    webhook_status TEXT,
    CONSTRAINT uq_run_failures_run_step UNIQUE (run_id, step_key)
);

CREATE INDEX IF NOT EXISTS ix_run_failures_occurred_at ON run_failures (occurred_at);
CREATE INDEX IF NOT EXISTS ix_run_failures_partition_key ON run_failures (partition_key);
CREATE INDEX IF NOT EXISTS ix_run_failures_strategy_occurred ON run_failures (strategy_id, occurred_at);
