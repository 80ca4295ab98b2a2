"""``sql/*.sql`` written from ``tables.metadata``: ``python -m ibkr_assets.storage.ddl [folder]``.

Each file creates its tables and indexes for PostgreSQL if they do not exist (safe to run again);
``test_sql_files_are_generated_from_the_tables`` fails when a checked-in file is stale, so after
changing ``tables.py`` run this command (and add a migration). ``003_sample_stock_data.sql`` holds
data, not schema, and is written by hand. A database made from these files is stamped with the
newest migration the first time the project opens it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from ibkr_assets.storage.tables import metadata

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"

# file -> (what it holds, its tables in order)
FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "001_lineage.sql": ("Lineage and artifact tables.", ("workflow_lineage", "artifacts")),
    "002_stock_data.sql": (
        'Daily OHLCV bars per symbol, read by the "postgres" bar source.',
        ("stock_data",),
    ),
    "004_trading.sql": (
        "Paper broker and portfolio tables.",
        (
            "paper_accounts",
            "orders",
            "order_events",
            "fills",
            "positions",
            "paper_sync",
            "paper_closes",
            "portfolio_snapshots",
        ),
    ),  # fmt: skip
    "005_order_records.sql": (
        "Order decisions, written before and after sending.",
        ("order_records",),
    ),
    "006_run_failures.sql": ("Failed runs and steps.", ("run_failures",)),
    "007_symbols.sql": ("The symbol cache.", ("symbols",)),
    "008_verification_runs.sql": ("Results of verify.", ("verification_runs",)),
}

DOCS: dict[str, str] = {
    "workflow_lineage": "one row per (execution_id = Dagster root run id, strategy_id, step_name = "
    "asset, partition_key); a re-execution updates the row, bumps attempts and appends the "
    "replaced attempt to previous_attempts.",
    "artifacts": "what a step produced (market_data, chart, llm, signal, order, portfolio).",
    "stock_data": "daily bars loaded by 003_sample_stock_data.sql or any loader.",
    "paper_accounts": "one row per simulated account; cash and realized P&L (net of commissions).",
    "orders": "parent, take-profit and stop of a bracket, or a market close; order_ref is the "
    "decision's identity (strategy, symbol, session), so one decision places its orders once.",
    "order_events": "one row per state change of an order (the tracking audit trail).",
    "fills": "one row per execution; execution_id is deterministic, so a replay cannot "
    "duplicate it.",
    "positions": "average-cost position per (account, symbol); 0 when flat.",
    "paper_sync": "the last bar the simulator has run per (account, symbol).",
    "paper_closes": "each synced bar's close, so a date's snapshot values positions at the closes "
    "up to that date (the last close on a market-closed day).",
    "portfolio_snapshots": "the account valued once per date from the fills and closes up to that "
    "date (a rerun that computes the same values leaves the row untouched).",
    "order_records": "our note of every order decision: 'decided' when nothing is sent, "
    "'sending' before the broker is called and 'sent' after; 'reconciled' when a later run "
    "found the order at the broker.",
    "run_failures": "one row per failed step of a failed Dagster run, written by the "
    "run_failure_sensor. A failure outside any step has step_key '' (not NULL), so (run_id, "
    "step_key) is a real unique key and re-recording a run updates its rows. notified / "
    "webhook_status: whether the alert webhook accepted the failure, and its answer.",
    "symbols": "the symbols checked before they become partitions, cached as symbol -> IBKR "
    "contract id, exchange, primary exchange, currency and name. source says who resolved it "
    "('ibkr', or the market-data source: 'sample', 'csv', 'postgres'); only IBKR gives a "
    "con_id, and a string nobody knows is ''. An unknown symbol never gets a row.",
    "verification_runs": "one row per `ibkr-assets verify` or verify_job run: the strategy and "
    "date range checked, whether every check passed, how many discrepancies were found "
    "(details keeps the first 1,000), orphans deleted, per-check counts and who ran it.",
}

_DIALECT = postgresql.dialect()
_WIDTH = 100


def _comment(text: str) -> list[str]:
    """``text`` as ``--`` lines of at most ``_WIDTH`` characters."""
    lines, line = [], "--"
    for word in text.split():
        if len(line) + 1 + len(word) > _WIDTH:
            lines.append(line)
            line = "--"
        line += " " + word
    return [*lines, line]


def _statement(ddl: sa.schema.ExecutableDDLElement) -> str:
    text = str(ddl.compile(dialect=_DIALECT)).strip()
    lines = [line.replace("\t", "    ").rstrip() for line in text.splitlines()]
    return "\n".join(lines) + ";"


def table_ddl(table: sa.Table) -> str:
    """``CREATE TABLE IF NOT EXISTS`` and its indexes, preceded by what the table holds."""
    parts = [
        *_comment(f"{table.name}: {DOCS[table.name]}"),
        _statement(CreateTable(table, if_not_exists=True)),
    ]
    indexes = sorted(table.indexes, key=lambda index: index.name or "")
    parts += [_statement(CreateIndex(index, if_not_exists=True)) for index in indexes]
    return "\n".join(parts)


def file_text(name: str) -> str:
    """The contents ``name`` must have."""
    about, tables = FILES[name]
    header = [
        f"-- {about} For PostgreSQL; safe to run again.",
        "-- Generated from ibkr_assets/storage/tables.py by `python -m ibkr_assets.storage.ddl`: do not edit.",
    ]
    body = "\n\n".join(table_ddl(metadata.tables[t]) for t in tables)
    return "\n".join(header) + "\n\n" + body + "\n"


def write(folder: Path = SQL_DIR) -> list[Path]:
    """Write every generated file into ``folder``; the paths written."""
    written = []
    for name in FILES:
        path = folder / name
        path.write_text(file_text(name))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for path in write(Path(args[0]) if args else SQL_DIR):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
