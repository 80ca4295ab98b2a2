-- Results of verify. For PostgreSQL; safe to run again.
-- Generated from ibkr_assets/storage/tables.py by `python -m ibkr_assets.storage.ddl`: do not edit.

-- verification_runs: one row per `ibkr-assets verify` or verify_job run: the strategy and date
-- range checked, whether every check passed, how many discrepancies were found (details keeps the
-- first 1,000), orphans deleted, per-check counts and who ran it.
CREATE TABLE IF NOT EXISTS verification_runs (
    id SERIAL NOT NULL,
    strategy_id VARCHAR(100) NOT NULL,
    start_date DATE NOT NULL,
    end_date DATE NOT NULL,
    ok BOOLEAN NOT NULL,
    discrepancies INTEGER NOT NULL,
    orphans_deleted INTEGER DEFAULT 0 NOT NULL,
    checks JSONB NOT NULL,
    details JSONB NOT NULL,
    triggered_by VARCHAR(255) NOT NULL,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS ix_verification_runs_strategy_started ON verification_runs (strategy_id, started_at);
