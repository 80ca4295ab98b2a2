-- Order decisions, written before and after sending. For PostgreSQL; safe to run again.
-- Generated from ibkr_assets/storage/tables.py by `python -m ibkr_assets.storage.ddl`: do not edit.

-- order_records: our note of every order decision: 'decided' when nothing is sent, 'sending' before
-- the broker is called and 'sent' after; 'reconciled' when a later run found the order at the
-- broker.
CREATE TABLE IF NOT EXISTS order_records (
    order_ref VARCHAR(200) NOT NULL,
    strategy_id VARCHAR(100) NOT NULL,
    symbol VARCHAR(50) NOT NULL,
    session_date DATE NOT NULL,
    broker VARCHAR(20) NOT NULL,
    mode VARCHAR(20) NOT NULL,
    state VARCHAR(20) NOT NULL,
    decision JSONB NOT NULL,
    broker_orders JSONB NOT NULL,
    run_id VARCHAR(255) NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (order_ref),
    CONSTRAINT ck_order_records_state CHECK (state IN ('decided', 'sending', 'sent', 'reconciled'))
);
