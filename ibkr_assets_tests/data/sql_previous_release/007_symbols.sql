-- symbols (PostgreSQL): the symbols checked before they become partitions, cached as
-- symbol -> IBKR contract id, exchange, primary exchange, currency and name. source says who
-- resolved it ('ibkr', or the market-data source: 'sample', 'csv', 'postgres'); only IBKR gives
-- a con_id, and a string nobody knows is ''. An unknown symbol never gets a row.
-- Mirrors ibkr_assets/symbols.py; the test suite compares the two. Safe to run again.
CREATE TABLE IF NOT EXISTS symbols (
    symbol           VARCHAR(20) PRIMARY KEY,
    con_id           BIGINT,
    exchange         VARCHAR(20) NOT NULL,
    primary_exchange VARCHAR(20) NOT NULL,
    currency         VARCHAR(3) NOT NULL,
    name             VARCHAR(255) NOT NULL,
    source           VARCHAR(20) NOT NULL,
    resolved_at      TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT ck_symbols_upper CHECK (symbol = upper(symbol))
);

CREATE INDEX IF NOT EXISTS ix_symbols_con_id ON symbols (con_id);
