"""One fixture per real service, started on 127.0.0.1.

PostgreSQL: the server on 127.0.0.1:5432 (override with ``IBKR_ASSETS_TEST_PG_URL``); each test
session works in a fresh database that is dropped at the end. When the server is missing the
PostgreSQL tests skip locally but fail in CI (``CI=true``), so a green CI always means they ran.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from ibkr_assets_tests.helpers import STRATEGY_ID, seed_mlflow_store

PG_ADMIN_URL = os.environ.get(
    "IBKR_ASSETS_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def _postgres_missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"PostgreSQL is required in CI but unavailable: {reason}")
    pytest.skip(f"PostgreSQL unavailable: {reason}")


@pytest.fixture(scope="module", autouse=True)
def _no_leaked_dagster_instance() -> Iterator[None]:
    """Fail the module that leaves a Dagster instance entered: an entered instance makes its
    definitions-state storage current, and a later test that builds definitions would read it
    after the instance is gone (an error far from its cause). Module scope: a module-scoped
    fixture may hold an instance across its tests."""
    from dagster._core.storage.defs_state.base import DefsStateStorage

    before = DefsStateStorage.get()
    yield
    assert DefsStateStorage.get() is before, "a Dagster instance was entered and not exited"


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """URL of a new, empty PostgreSQL database named ``{prefix}_<random>``, dropped afterwards
    (even with connections left open, or refused: a fault test may forbid them)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _postgres_missing(str(exc).splitlines()[0])
    try:
        yield sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(False)
    finally:
        from ibkr_assets.storage.engines import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database for this test session."""
    with fresh_database("ibkr_assets_test") as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """URL of an empty SQLite database file in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'lineage.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """Run the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lineage.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3 API over HTTP on 127.0.0.1 (moto's server), reached through ``endpoint_url``."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server``: its URL and the folder its proxied artifacts land in."""

    url: str
    artifacts: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real ``mlflow server`` on 127.0.0.1 serving artifacts (``mlflow-artifacts:``) from a
    folder of its own, with a SQLite backend store. Started once: it takes seconds."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
               "--port", str(port), "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"),
               "--workers", "1"]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job workers
    with open(root / "server.log", "wb") as log:
        server = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its worker processes stop with it
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = (root / "server.log").read_text(errors="replace")[-2000:]
                    pytest.fail(f"mlflow server did not start:\n{tail}")
                time.sleep(0.3)
        yield MlflowServer(url, root / "artifacts")
    finally:
        _stop_group(server)


def _stop_group(process: subprocess.Popen) -> None:
    """Stop ``process`` and the processes it started (its own session)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(30)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def deployment(monkeypatch, tmp_path):
    """Configure the project as a user would: environment variables and a strategies file.

    Returns a function ``configure(strategy=None, **env)`` that sets ``IBKR_ASSETS_*`` variables
    (keys are the names without the prefix, e.g. ``CSV_DIR="..."``) on top of an isolated home.
    ``strategy`` (fields of one strategy, e.g. ``{"symbols": ["AAPL"], "market_data":
    {"source": "csv"}}``) writes a strategies file with that one strategy, id ``momentum`` as in
    the packaged file, and points ``IBKR_ASSETS_STRATEGIES_FILE`` at it.
    """
    for var in list(os.environ):
        if var.startswith("IBKR_ASSETS_") and var not in {"IBKR_ASSETS_TEST_PG_URL"}:
            monkeypatch.delenv(var)
    monkeypatch.setenv("IBKR_ASSETS_HOME", str(tmp_path / "home"))
    seed_mlflow_store(tmp_path / "home")

    def configure(strategy: dict | None = None, **env: str) -> None:
        if strategy is not None:
            path = tmp_path / "strategies.yaml"
            fields = {"id": STRATEGY_ID, "symbols": ["AAPL", "MSFT", "NVDA"], **strategy}
            path.write_text(yaml.safe_dump({"strategies": [fields]}))
            monkeypatch.setenv("IBKR_ASSETS_STRATEGIES_FILE", str(path))
        for key, value in env.items():
            monkeypatch.setenv(
                key if key.startswith(("AWS_", "IBKR_")) else f"IBKR_ASSETS_{key}", value
            )

    return configure


@pytest.fixture
def instance():
    """A temporary Dagster instance (SQLite storage in a temp folder)."""
    import dagster as dg

    with dg.instance_for_test() as inst:
        yield inst
