-- Paper broker and portfolio tables. For PostgreSQL; safe to run again.
-- Generated from ibkr_assets/storage/tables.py by `python -m ibkr_assets.storage.ddl`: do not edit.

-- paper_accounts: one row per simulated account; cash and realized P&L (net of commissions).
CREATE TABLE IF NOT EXISTS paper_accounts (
    account VARCHAR(100) NOT NULL,
    starting_cash NUMERIC(18, 6) NOT NULL,
    cash NUMERIC(18, 6) NOT NULL,
    realized_pnl NUMERIC(18, 6) DEFAULT 0 NOT NULL,
    commissions NUMERIC(18, 6) DEFAULT 0 NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    PRIMARY KEY (account)
);

-- orders: parent, take-profit and stop of a bracket, or a market close; order_ref is the decision's
-- identity (strategy, symbol, session), so one decision places its orders once.
CREATE TABLE IF NOT EXISTS orders (
    id SERIAL NOT NULL,
    account VARCHAR(100) NOT NULL,
    order_ref VARCHAR(255) NOT NULL,
    role VARCHAR(20) NOT NULL,
    broker_order_id VARCHAR(100) NOT NULL,
    symbol VARCHAR(50) NOT NULL,
    side VARCHAR(4) NOT NULL,
    order_type VARCHAR(3) NOT NULL,
    quantity INTEGER NOT NULL,
    limit_price NUMERIC(18, 6),
    stop_price NUMERIC(18, 6),
    parent_id VARCHAR(100),
    status VARCHAR(20) NOT NULL,
    filled_quantity INTEGER DEFAULT 0 NOT NULL,
    avg_fill_price NUMERIC(18, 6),
    commission NUMERIC(18, 6) DEFAULT 0 NOT NULL,
    reason TEXT DEFAULT '' NOT NULL,
    session_date DATE NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_orders_broker_order_id UNIQUE (broker_order_id),
    CONSTRAINT uq_orders_ref_role UNIQUE (account, order_ref, role),
    CONSTRAINT ck_orders_status CHECK (status IN ('pending_submit', 'submitted', 'partially_filled', 'filled', 'cancelled', 'rejected')),
    CONSTRAINT ck_orders_side CHECK (side IN ('BUY', 'SELL')),
    CONSTRAINT ck_orders_order_type CHECK (order_type IN ('MKT', 'LMT', 'STP')),
    CONSTRAINT ck_orders_role CHECK (role IN ('parent', 'take_profit', 'stop_loss', 'close')),
    CONSTRAINT ck_orders_quantity CHECK (quantity > 0)
);
CREATE INDEX IF NOT EXISTS ix_orders_account_symbol_status ON orders (account, symbol, status);

-- order_events: one row per state change of an order (the tracking audit trail).
CREATE TABLE IF NOT EXISTS order_events (
    id SERIAL NOT NULL,
    account VARCHAR(100) NOT NULL,
    broker_order_id VARCHAR(100) NOT NULL,
    order_ref VARCHAR(255) NOT NULL,
    status VARCHAR(20) NOT NULL,
    filled_quantity INTEGER DEFAULT 0 NOT NULL,
    at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    detail JSONB,
    PRIMARY KEY (id),
    CONSTRAINT ck_order_events_status CHECK (status IN ('pending_submit', 'submitted', 'partially_filled', 'filled', 'cancelled', 'rejected'))
);
CREATE INDEX IF NOT EXISTS ix_order_events_order ON order_events (account, broker_order_id);
CREATE INDEX IF NOT EXISTS ix_order_events_order_ref ON order_events (order_ref);

-- fills: one row per execution; execution_id is deterministic, so a replay cannot duplicate it.
CREATE TABLE IF NOT EXISTS fills (
    id SERIAL NOT NULL,
    execution_id VARCHAR(120) NOT NULL,
    account VARCHAR(100) NOT NULL,
    broker_order_id VARCHAR(100) NOT NULL,
    order_ref VARCHAR(255) NOT NULL,
    role VARCHAR(20) NOT NULL,
    symbol VARCHAR(50) NOT NULL,
    side VARCHAR(4) NOT NULL,
    quantity INTEGER NOT NULL,
    price NUMERIC(18, 6) NOT NULL,
    commission NUMERIC(18, 6) NOT NULL,
    session_date DATE NOT NULL,
    filled_at TIMESTAMP WITH TIME ZONE NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_fills_execution_id UNIQUE (execution_id)
);
CREATE INDEX IF NOT EXISTS ix_fills_account_symbol ON fills (account, symbol);
CREATE INDEX IF NOT EXISTS ix_fills_order_ref ON fills (order_ref);

-- positions: average-cost position per (account, symbol); 0 when flat.
CREATE TABLE IF NOT EXISTS positions (
    id SERIAL NOT NULL,
    account VARCHAR(100) NOT NULL,
    symbol VARCHAR(50) NOT NULL,
    quantity INTEGER NOT NULL,
    avg_cost NUMERIC(18, 6) NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_positions_account_symbol UNIQUE (account, symbol)
);

-- paper_sync: the last bar the simulator has run per (account, symbol).
CREATE TABLE IF NOT EXISTS paper_sync (
    id SERIAL NOT NULL,
    account VARCHAR(100) NOT NULL,
    symbol VARCHAR(50) NOT NULL,
    last_bar_date DATE NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_paper_sync_account_symbol UNIQUE (account, symbol)
);

-- paper_closes: each synced bar's close, so a date's snapshot values positions at the closes up to
-- that date (the last close on a market-closed day).
CREATE TABLE IF NOT EXISTS paper_closes (
    account VARCHAR(100) NOT NULL,
    symbol VARCHAR(50) NOT NULL,
    session_date DATE NOT NULL,
    close NUMERIC(18, 6) NOT NULL,
    PRIMARY KEY (account, symbol, session_date)
);

-- portfolio_snapshots: the account valued once per date from the fills and closes up to that date
-- (a rerun that computes the same values leaves the row untouched).
CREATE TABLE IF NOT EXISTS portfolio_snapshots (
    id SERIAL NOT NULL,
    account VARCHAR(100) NOT NULL,
    snapshot_date DATE NOT NULL,
    cash NUMERIC(18, 6) NOT NULL,
    market_value NUMERIC(18, 6) NOT NULL,
    equity NUMERIC(18, 6) NOT NULL,
    realized_pnl NUMERIC(18, 6) NOT NULL,
    unrealized_pnl NUMERIC(18, 6) NOT NULL,
    commissions NUMERIC(18, 6) NOT NULL,
    gross_exposure NUMERIC(18, 6) NOT NULL,
    net_exposure NUMERIC(18, 6) NOT NULL,
    exposure_pct NUMERIC(18, 6),
    positions JSONB NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE,
    PRIMARY KEY (id),
    CONSTRAINT uq_portfolio_snapshots_account_date UNIQUE (account, snapshot_date)
);
