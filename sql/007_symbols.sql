-- The symbol cache. For PostgreSQL; safe to run again.
-- Generated from ibkr_assets/storage/tables.py by `python -m ibkr_assets.storage.ddl`: do not edit.

-- symbols: the symbols checked before they become partitions, cached as symbol -> IBKR contract id,
-- exchange, primary exchange, currency and name. source says who resolved it ('ibkr', or the
-- market-data source: 'sample', 'csv', 'postgres'); only IBKR gives a con_id, and a string nobody
-- knows is ''. An unknown symbol never gets a row.
CREATE TABLE IF NOT EXISTS symbols (
    symbol VARCHAR(20) NOT NULL,
    con_id BIGINT,
    exchange VARCHAR(20) NOT NULL,
    primary_exchange VARCHAR(20) NOT NULL,
    currency VARCHAR(3) NOT NULL,
    name VARCHAR(255) NOT NULL,
    source VARCHAR(20) NOT NULL,
    resolved_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (symbol),
    CONSTRAINT ck_symbols_upper CHECK (symbol = upper(symbol))
);
CREATE INDEX IF NOT EXISTS ix_symbols_con_id ON symbols (con_id);
