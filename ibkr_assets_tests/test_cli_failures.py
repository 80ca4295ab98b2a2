"""The command line when something fails: one line per cause, the failed partitions, a non-zero
exit code and never a traceback (bad CSV files, the lineage database or S3 down, the kill
switch). The command runs in this process, on real files, databases and sockets."""

from __future__ import annotations

import datetime as dt
import socket

import pytest

from ibkr_assets.domain.calendar import sessions_between
from ibkr_assets_tests import cli_runner

pytestmark = pytest.mark.slow  # whole backfills with faults

run_cli = cli_runner.run_cli  # a fixture
DAYS = ("--start", "2025-03-13", "--end", "2025-03-14")
BARS = ["Date,Open,High,Low,Close,Volume"] + [
    f"{day},10,11,9,10,1000" for day in sessions_between(dt.date(2025, 1, 2), dt.date(2025, 3, 31))
]


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def causes(out: str) -> dict[str, str]:
    """``{cause: "N partition(s): keys"}`` from the summary's failed-partitions section."""
    lines = out.split("Failed partitions, by cause:\n", 1)[1].splitlines()
    found = {}
    for cause, keys in zip(lines[::2], lines[1::2], strict=False):
        if not cause.startswith("  ") or cause.startswith("    "):
            break
        found[cause.strip()] = keys.strip()
    return found


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("\n".join(line.rsplit(",", 1)[0] for line in BARS), "missing column(s) volume"),
        ("", "cannot be read as CSV"),
    ],
    ids=["missing-column", "empty-file"],
)
def test_a_bad_csv_file_fails_its_partitions_with_one_line(
    run_cli, deployment, tmp_path, content, expected
):
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "AAPL.csv").write_text("\n".join(BARS) + "\n")
    (folder / "MSFT.csv").write_text(content)
    deployment(
        {"symbols": ["AAPL", "MSFT"], "market_data": {"source": "csv", "lookback_bars": 5}},
        CSV_DIR=str(folder),
    )
    code, out, err = run_cli("backfill", "--no-progress", *DAYS)
    assert code == 1
    assert "Traceback" not in out + err
    (cause,) = [c for c in causes(out) if expected in c]
    assert cause.startswith("market_data: BarFormatError: ") and "MSFT.csv" in cause
    listed = causes(out)[cause]  # AAPL too while one symbol's error fails the whole step
    assert "2025-03-13|MSFT" in listed and "2025-03-14|MSFT" in listed
    assert " 0 failed" not in out


def test_the_lineage_database_down_is_one_line_and_exit_1(run_cli, deployment):
    deployment(DATABASE_URL=f"postgresql+psycopg2://postgres@127.0.0.1:{closed_port()}/none")
    for command in (("backfill", "--no-progress", *DAYS, "--symbols", "AAPL"), ("demo",)):
        code, out, err = run_cli(*command)
        assert code == 1
        assert len(err.strip().splitlines()) == 1
        assert err.startswith("error: database: OperationalError: connection to server at")
        assert "Connection refused" in err and "Traceback" not in out + err


def test_s3_down_fails_every_partition_with_the_root_cause(run_cli, deployment, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    deployment(OBJECT_STORE="s3", S3_ENDPOINT_URL=f"http://127.0.0.1:{closed_port()}")
    code, out, err = run_cli("backfill", "--no-progress", *DAYS, "--symbols", "AAPL")
    assert code == 1
    assert "Partitions: 0 done, 2 failed" in out
    found = causes(out)
    (cause,) = [c for c in found if c.startswith("market_data: ")]
    assert cause.startswith("market_data: EndpointConnectionError: Could not connect")
    assert found[cause] == "2 partition(s): 2025-03-13|AAPL, 2025-03-14|AAPL"
    assert "Error occurred while" not in out + err  # Dagster's wrapper is not the cause
    assert "Traceback" not in out + err and "Portfolio 2025-03-14" not in out
    code, out, err = run_cli("demo", "--days", "1", "--symbols", "AAPL")
    assert code == 1
    assert any(c.startswith("market_data: EndpointConnectionError") for c in causes(out))
    assert "Traceback" not in out + err


def test_the_summary_counts_the_orders_the_kill_switch_blocked(run_cli, deployment):
    deployment(KILL_SWITCH="1")
    day = ("--start", "2025-03-14", "--end", "2025-03-14")  # one order per symbol
    code, out, err = run_cli("backfill", "--no-progress", *day, "--symbols", "AAPL,MSFT")
    assert code == 0, out + err
    assert "Kill switch: blocked 2 order(s)" in out


def test_failed_partitions_come_from_the_runs_not_only_from_rows():
    """A failed step with no error row fails its run's partitions even where rows say success;
    an error row names its own partition's cause; the rest of a failed run was not reached."""
    from ibkr_assets.runs import RunOutcome, failed_partitions

    keys = ["2025-03-13|AAPL", "2025-03-13|MSFT", "2025-03-14|AAPL"]
    rows = [
        {"partition_key": k, "step_name": "market_data", "status": "success", "step_number": 1}
        for k in keys
    ] + [
        {"partition_key": "2025-03-13|MSFT", "step_name": "indicators", "status": "error",
         "step_number": 3, "error": "ValueError: bad bar\nsecond line"},
        {"partition_key": "2025-03-13|AAPL", "step_name": "order", "status": "success",
         "step_number": 8},
    ]  # fmt: skip
    failed = RunOutcome("w", ["AAPL", "MSFT"], "r1", False, {"indicators": "Failure: 1 failed"})
    failed.partition_keys = keys
    assert failed_partitions([failed], rows) == {
        "indicators: ValueError: bad bar": ["2025-03-13|MSFT"],
        "not reached (indicators: Failure: 1 failed)": ["2025-03-14|AAPL"],
    }
    store_down = RunOutcome("w", ["AAPL"], "r2", False, {"market_data": "OSError: down"})
    store_down.partition_keys = keys
    assert failed_partitions([store_down], rows[:3]) == {"market_data: OSError: down": keys}
    ok = RunOutcome("w", ["AAPL"], "r3", True)
    ok.partition_keys = keys
    assert failed_partitions([ok], rows[:3]) == {}
