"""A fixture that runs ``ibkr-assets`` in the test's process (faster than a subprocess)."""

from __future__ import annotations

import pytest

from ibkr_assets.dagster_home import write_instance_config


@pytest.fixture
def run_cli(deployment, monkeypatch, tmp_path, capsys):
    """``run_cli(*args) -> (exit code, stdout, stderr)``: ``ibkr-assets`` in this process (it
    builds the definitions for the deployment configured before the call)."""
    from ibkr_assets.cli import main

    home = tmp_path / "dagster_home"
    write_instance_config(home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run
