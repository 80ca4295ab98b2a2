-- verification_runs (PostgreSQL): one row per `ibkr-assets verify` or verify_job run: the
-- strategy and date range checked, whether every check passed, how many discrepancies were
-- found (details keeps the first 1,000), orphans deleted, per-check counts and who ran it.
-- Mirrors ibkr_assets/storage/verification_runs.py; the test suite compares the two. Safe to run again.
CREATE TABLE IF NOT EXISTS verification_runs (
    id              SERIAL PRIMARY KEY,
    strategy_id     VARCHAR(100) NOT NULL,
    start_date      DATE NOT NULL,
    end_date        DATE NOT NULL,
    ok              BOOLEAN NOT NULL,
    discrepancies   INTEGER NOT NULL,
    orphans_deleted INTEGER NOT NULL DEFAULT 0,
    checks          JSONB NOT NULL,
    details         JSONB NOT NULL,
    triggered_by    VARCHAR(255) NOT NULL,
    started_at      TIMESTAMP WITH TIME ZONE NOT NULL,
    duration_ms     INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS ix_verification_runs_strategy_started
    ON verification_runs (strategy_id, started_at);
