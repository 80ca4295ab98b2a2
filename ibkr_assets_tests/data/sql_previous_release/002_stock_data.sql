-- Daily OHLCV bars per symbol (PostgreSQL), read by the "postgres" bar source.
-- Mirrors the stock_data table in ibkr_assets/storage/tables.py. Safe to run again.

CREATE TABLE IF NOT EXISTS stock_data (
    id         SERIAL PRIMARY KEY,
    symbol     VARCHAR(20) NOT NULL,
    date       DATE NOT NULL,
    open       NUMERIC(18, 6),
    high       NUMERIC(18, 6),
    low        NUMERIC(18, 6),
    close      NUMERIC(18, 6),
    volume     BIGINT,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
    CONSTRAINT uq_stock_data_symbol_date UNIQUE (symbol, date)
);
