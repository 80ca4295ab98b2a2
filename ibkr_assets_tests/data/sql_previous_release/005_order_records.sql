-- order_records (PostgreSQL): our note of every order decision: 'decided' when nothing is sent,
-- 'sending' before the broker is called and 'sent' after; 'reconciled' when a later run found
-- the order at the broker.
-- Mirrors ibkr_assets/storage/order_records.py; the test suite compares the two. Safe to run again.
CREATE TABLE IF NOT EXISTS order_records (
    order_ref     VARCHAR(200) PRIMARY KEY,
    strategy_id   VARCHAR(100) NOT NULL,
    symbol        VARCHAR(50) NOT NULL,
    session_date  DATE NOT NULL,
    broker        VARCHAR(20) NOT NULL,
    mode          VARCHAR(20) NOT NULL,
    state         VARCHAR(20) NOT NULL,
    decision      JSONB NOT NULL,
    broker_orders JSONB NOT NULL,
    run_id        VARCHAR(255) NOT NULL,
    created_at    TIMESTAMP WITH TIME ZONE NOT NULL,
    updated_at    TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT ck_order_records_state CHECK (state IN ('decided', 'sending', 'sent', 'reconciled'))
);
