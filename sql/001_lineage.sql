-- Lineage and artifact tables. For PostgreSQL; safe to run again.
-- Generated from ibkr_assets/storage/tables.py by `python -m ibkr_assets.storage.ddl`: do not edit.

-- workflow_lineage: one row per (execution_id = Dagster root run id, strategy_id, step_name =
-- asset, partition_key); a re-execution updates the row, bumps attempts and appends the replaced
-- attempt to previous_attempts.
CREATE TABLE IF NOT EXISTS workflow_lineage (
    id SERIAL NOT NULL,
    workflow_id VARCHAR(255) NOT NULL,
    execution_id VARCHAR(255) NOT NULL,
    run_id VARCHAR(255) NOT NULL,
    step_name VARCHAR(100) NOT NULL,
    step_number INTEGER NOT NULL,
    partition_key VARCHAR(255) DEFAULT '' NOT NULL,
    symbol VARCHAR(50),
    partition_date DATE,
    strategy_id VARCHAR(100) DEFAULT '' NOT NULL,
    code_version VARCHAR(100),
    input_data JSONB NOT NULL,
    output_data JSONB NOT NULL,
    metadata JSONB,
    status VARCHAR(20) NOT NULL,
    error TEXT,
    duration_ms INTEGER,
    attempts INTEGER DEFAULT 1 NOT NULL,
    previous_attempts JSONB DEFAULT '[]' NOT NULL,
    recorded_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE,
    PRIMARY KEY (id),
    CONSTRAINT uq_workflow_lineage_step UNIQUE (execution_id, strategy_id, step_name, partition_key),
    CONSTRAINT ck_workflow_lineage_status CHECK (status IN ('success', 'error', 'market_closed', 'blocked'))
);
CREATE INDEX IF NOT EXISTS ix_workflow_lineage_errors ON workflow_lineage (step_name, recorded_at) WHERE status = 'error';
CREATE INDEX IF NOT EXISTS ix_workflow_lineage_partition_key ON workflow_lineage (partition_key);
CREATE INDEX IF NOT EXISTS ix_workflow_lineage_recorded_at ON workflow_lineage (recorded_at);
CREATE INDEX IF NOT EXISTS ix_workflow_lineage_step_name ON workflow_lineage (step_name);
CREATE INDEX IF NOT EXISTS ix_workflow_lineage_step_stats ON workflow_lineage (step_name, recorded_at) INCLUDE (strategy_id, status, duration_ms);
CREATE INDEX IF NOT EXISTS ix_workflow_lineage_strategy_execution ON workflow_lineage (strategy_id, execution_id, id);
CREATE INDEX IF NOT EXISTS ix_workflow_lineage_symbol_date ON workflow_lineage (symbol, partition_date);
CREATE INDEX IF NOT EXISTS ix_workflow_lineage_workflow_execution ON workflow_lineage (workflow_id, execution_id);

-- artifacts: what a step produced (market_data, chart, llm, signal, order, portfolio).
CREATE TABLE IF NOT EXISTS artifacts (
    id SERIAL NOT NULL,
    name VARCHAR(255) NOT NULL,
    type VARCHAR(50) NOT NULL,
    symbol VARCHAR(50),
    workflow_id VARCHAR(255) NOT NULL,
    execution_id VARCHAR(255) NOT NULL,
    run_id VARCHAR(255) NOT NULL,
    step_name VARCHAR(100) NOT NULL,
    partition_key VARCHAR(255) DEFAULT '' NOT NULL,
    strategy_id VARCHAR(100) DEFAULT '' NOT NULL,
    mlflow_run_id VARCHAR(255),
    mlflow_experiment_id VARCHAR(255),
    prompt TEXT,
    response TEXT,
    image_path TEXT,
    chart_data JSONB,
    signal_data JSONB,
    metadata JSONB,
    uri TEXT,
    sha256 VARCHAR(64),
    prompt_length INTEGER,
    response_length INTEGER,
    model_name VARCHAR(100),
    confidence_score NUMERIC(5, 4),
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE,
    PRIMARY KEY (id),
    CONSTRAINT uq_artifacts_key UNIQUE (execution_id, strategy_id, step_name, partition_key, type, name),
    CONSTRAINT ck_artifacts_type CHECK (type IN ('market_data', 'chart', 'llm', 'signal', 'order', 'portfolio', 'validation'))
);
CREATE INDEX IF NOT EXISTS ix_artifacts_mlflow_run_id ON artifacts (mlflow_run_id);
CREATE INDEX IF NOT EXISTS ix_artifacts_strategy_partition ON artifacts (strategy_id, partition_key);
CREATE INDEX IF NOT EXISTS ix_artifacts_type_symbol ON artifacts (type, symbol);
CREATE INDEX IF NOT EXISTS ix_artifacts_workflow_execution ON artifacts (workflow_id, execution_id);
