-- Daily OHLCV bars per symbol, read by the "postgres" bar source. For PostgreSQL; safe to run again.
-- Generated from ibkr_assets/storage/tables.py by `python -m ibkr_assets.storage.ddl`: do not edit.

-- stock_data: daily bars loaded by 003_sample_stock_data.sql or any loader.
CREATE TABLE IF NOT EXISTS stock_data (
    id SERIAL NOT NULL,
    symbol VARCHAR(20) NOT NULL,
    date DATE NOT NULL,
    open NUMERIC(18, 6),
    high NUMERIC(18, 6),
    low NUMERIC(18, 6),
    close NUMERIC(18, 6),
    volume BIGINT,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_stock_data_symbol_date UNIQUE (symbol, date)
);
