"""MLflow tracking through ``MlflowClient`` only: one run per (strategy, partition, execution).

Several asset steps of one partition log into the same MLflow run, possibly from different
processes, so the run is found (or created) by its ``partition_key`` and ``execution_id`` tags
rather than kept in memory. The fluent API (``mlflow.start_run``) is never used: its active run
is global state, unsafe when partitions run in threads or one process handles several.

``mlflow`` is imported lazily: importing it takes seconds, and most code paths that import this
module (loading the Dagster definitions) never log anything.

Longer than most modules: it is the one place that talks to MLflow (store set-up, runs,
artifacts, bounded retries), so no other module touches MLflow's client.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ibkr_assets.redaction import mask, redact_text

if TYPE_CHECKING:
    from mlflow import MlflowClient

WORKFLOW_TYPE = "trading_signal"
TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")
INIT_LOCK_TIMEOUT_S = 300  # creating a store takes seconds; waiting longer means a stuck process
# MLflow's own defaults (7 retries, backoff factor 2, 120 s per request) hold a call to a server
# that is down for minutes. These bound it: 3 attempts, 0-1 s and 2-3 s apart, 5 s each, so a call
# fails within about 4 s when the port refuses and 20 s when nothing answers. An exported
# variable always wins.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}


class TrackingError(RuntimeError):
    """MLflow could not be reached or refused a request (the message never shows a password)."""


def is_tracking_server(tracking_uri: str) -> bool:
    """True for an MLflow server (``http(s)://``): it keeps the artifacts, not this process."""
    return urlsplit(tracking_uri).scheme in ("http", "https")


def bound_http_requests() -> None:
    """Set ``HTTP_DEFAULTS`` for MLflow's HTTP client where the environment has no value."""
    for name, value in HTTP_DEFAULTS.items():
        if not os.environ.get(name):
            os.environ[name] = value


class MlflowTracker:
    """Experiments ``{strategy_id}/trading_workflow_{symbol}`` and their per-partition runs.

    ``artifact_root``: where new experiments keep their artifacts (``<artifact_root>/<name>``); a
    local path or a URI such as ``s3://bucket/prefix``. ``None`` leaves it to the tracking server.
    """

    def __init__(self, tracking_uri: str, artifact_root: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self._client: MlflowClient | None = None
        self._experiments: dict[str, str] = {}
        self._run_experiments: dict[str, str] = {}
        # (partition key, execution id) -> (run id, tags it is known to carry): later steps of the
        # same partition in this process skip the tag search (five steps log into one run).
        self._runs: dict[tuple[str, str, str], tuple[str, dict[str, str]]] = {}
        # run id -> its params as last seen (MLflow params are write-once), so ``log`` reads
        # the run only for a run this process has not seen yet.
        self._params: dict[str, dict[str, str]] = {}
        # (experiment id, execution id) -> partition key -> its oldest run, from one search:
        # a step over a range looks its runs up at once instead of once per partition.
        self._execution_runs: dict[tuple[str, str], dict[str, Any]] = {}
        # run id -> where its artifacts go, as the run's info said when this process found or
        # created it (MLflow itself would read the whole run again for its first artifact).
        self._artifact_uris: dict[str, str] = {}
        self._artifact_repos: dict[str, Any] = {}
        # Dagster run id -> the MLflow runs used for it in this process (ended by ``end_runs``),
        # and run id -> the terminal status this process last gave it.
        self._open: dict[str, dict[str, None]] = {}
        self._ended: dict[str, str] = {}
        self.unreachable = False  # the last request could not reach the server
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MlflowTracker({redact_text(self.tracking_uri)!r})"

    @property
    def client(self) -> MlflowClient:
        """The client, built on first use (for a SQL store this creates or checks the schema).

        A new SQLite store is migrated by the first client that opens it; several processes
        doing that at once leave it half-migrated and unusable, so they take turns on a lock
        file next to the database (see ``_sqlite_store_setup``).
        """
        with self._lock:
            if self._client is None:
                with self._guard("connecting to the tracking store", any_error=True):
                    from mlflow import MlflowClient

                    if is_tracking_server(self.tracking_uri):
                        bound_http_requests()

                    with _sqlite_store_setup(self.tracking_uri):
                        self._client = MlflowClient(tracking_uri=self.tracking_uri)
                    _sync_wal_commits_normally(self._client)
            return self._client

    @staticmethod
    def experiment_name(strategy_id: str, symbol: str) -> str:
        """``momentum/trading_workflow_AAPL``: one experiment per strategy and symbol."""
        return f"{strategy_id}/trading_workflow_{symbol}"

    def experiment_id(self, strategy_id: str, symbol: str) -> str:
        """Get or create the experiment; ids are cached for the life of the process."""
        name = self.experiment_name(strategy_id, symbol)
        with self._lock:
            cached = self._experiments.get(name)
        if cached is not None:
            return cached
        client = self.client
        from mlflow.exceptions import MlflowException

        with self._guard(f"getting experiment {name!r}"):
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                try:
                    client.create_experiment(name, artifact_location=self._artifact_location(name))
                except MlflowException as exc:
                    if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    # Another process created it between our lookup and our create.
                experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise TrackingError(f"MLflow experiment {name!r} vanished right after its creation")
        if experiment.lifecycle_stage != "active":
            raise TrackingError(
                f"MLflow experiment {name!r} is deleted: restore it or delete it permanently "
                f"(mlflow gc) at {redact_text(self.tracking_uri)}"
            )
        with self._lock:
            self._experiments[name] = experiment.experiment_id
        return experiment.experiment_id

    def run_for_partition(
        self,
        *,
        strategy_id: str,
        symbol: str,
        partition_key: str,
        execution_id: str,
        dagster_run_id: str,
        tags: dict[str, str] | None = None,
    ) -> str:
        """The MLflow run id of this partition in this execution, created on first call.

        Later calls (other steps, re-executions sharing the root run id) return the same run and
        bring ``dagster_run_id`` and ``tags`` up to date. A run that is already FINISHED is kept:
        MLflow accepts logging into it. If two processes create the run at the same moment, both
        keep the oldest one and the other is deleted, so every caller ends up on the same run.
        """
        runs = self.runs_for_partitions(
            strategy_id=strategy_id,
            partitions={partition_key: symbol},
            execution_id=execution_id,
            dagster_run_id=dagster_run_id,
            tags=tags,
        )
        return runs[partition_key]

    def runs_for_partitions(
        self,
        *,
        strategy_id: str,
        partitions: Mapping[str, str],
        execution_id: str,
        dagster_run_id: str,
        tags: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """``run_for_partition`` for many partitions (``{partition_key: symbol}``) at once.

        The runs that do not exist yet are all created first; then one search per experiment
        finds the oldest run of each partition (instead of one search per created run).
        """
        for key, symbol in partitions.items():
            day, sep, key_symbol = key.partition("|")
            if not sep or not day or key_symbol != symbol:
                raise ValueError(f"partition key {key!r} is not of the form DATE|{symbol}")
        extra = {"dagster_run_id": dagster_run_id, **{k: str(v) for k, v in (tags or {}).items()}}
        found: dict[str, str] = {}
        created: dict[str, list[tuple[str, Any]]] = {}  # experiment id -> (partition, new run)
        for key, symbol in partitions.items():
            with self._lock:
                cached = self._runs.get((strategy_id, key, execution_id))
            if cached and all(cached[1].get(k) == v for k, v in extra.items()):
                found[key] = cached[0]
                continue
            experiment_id = self.experiment_id(strategy_id, symbol)
            with self._guard(f"finding the run of partition {key!r}"):
                existing = self._execution_run(experiment_id, key, execution_id)
                if existing is None:
                    run = self.client.create_run(
                        experiment_id,
                        run_name=key,
                        tags={
                            "workflow_type": WORKFLOW_TYPE,
                            "strategy_id": strategy_id,
                            "symbol": symbol,
                            "date": key.partition("|")[0],
                            "partition_key": key,
                            "execution_id": execution_id,
                            **extra,
                        },
                    )
                    created.setdefault(experiment_id, []).append((key, run))
                    continue
                self._update_tags(existing.info.run_id, existing.data.tags, extra)
            found[key] = self._remember((strategy_id, key, execution_id), existing, extra)
        for experiment_id, runs in created.items():
            with self._guard(f"checking the new runs of execution {execution_id!r}"):
                oldest = self._search_execution(experiment_id, execution_id)
                with self._lock:
                    self._execution_runs[(experiment_id, execution_id)] = oldest
                for key, run in runs:
                    winner = oldest.get(key)
                    if winner is not None and winner.info.run_id != run.info.run_id:
                        # another process created this partition's run first: use that one
                        self.client.delete_run(run.info.run_id)
                        self._update_tags(winner.info.run_id, winner.data.tags, extra)
                    found[key] = self._remember(
                        (strategy_id, key, execution_id), winner or run, extra
                    )
        with self._lock:
            self._open.setdefault(dagster_run_id, {}).update(dict.fromkeys(found.values()))
        return found

    def _remember(self, cache_key: tuple[str, str, str], run: Any, extra: dict[str, str]) -> str:
        """Cache the run found for a partition, with its params and the tags it now carries."""
        run_id = run.info.run_id
        with self._lock:
            cached = self._runs.get(cache_key)
            self._params[run_id] = dict(run.data.params)
            self._run_experiments[run_id] = run.info.experiment_id
            self._artifact_uris[run_id] = run.info.artifact_uri
            known = cached[1] if cached and cached[0] == run_id else {}
            self._runs[cache_key] = (run_id, {**known, **extra})
        return run_id

    def log(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float | None] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """Log everything in one ``log_batch`` call; ``None`` metrics are skipped.

        MLflow params are write-once: logging a key again with a different value fails the whole
        batch. A re-executed step may legitimately compute another value (new data, new prompt),
        so the first value stays the param and the new one is recorded as the tag
        ``param_changed.<key>`` instead of losing the step's metrics and tags.
        """
        from mlflow.entities import Metric
        from mlflow.exceptions import MlflowException

        now = int(time.time() * 1000)
        batch_metrics = [
            Metric(key, float(value), now, 0)
            for key, value in (metrics or {}).items()
            if value is not None
        ]
        with self._lock:
            known = self._params.get(run_id) if params else None
        with self._guard(f"logging to run {run_id}"):
            try:
                self._log_batch(run_id, params, batch_metrics, tags, known)
            except MlflowException:
                if known is None:
                    raise
                # another process logged a param since this one last read the run
                self._log_batch(run_id, params, batch_metrics, tags, None)

    def _log_batch(self, run_id, params, metrics, tags, known) -> None:
        """One ``log_batch``; ``known``: the run's params, or None to read them from the run."""
        from mlflow.entities import Param, RunTag

        all_tags = {k: str(v) for k, v in (tags or {}).items()}
        new_params: dict[str, str] = {}
        logged: dict[str, str] = {}
        if params:
            logged = known if known is not None else dict(self.client.get_run(run_id).data.params)
            for key, value in params.items():
                text = str(value)
                if key not in logged:
                    new_params[key] = text
                elif logged[key] != text:
                    all_tags[f"param_changed.{key}"] = text
        if not (new_params or metrics or all_tags):
            return
        self.client.log_batch(
            run_id,
            metrics=metrics,
            params=[Param(k, v) for k, v in new_params.items()],
            tags=[RunTag(k, v) for k, v in all_tags.items()],
        )
        if params:
            with self._lock:
                self._params[run_id] = {**logged, **new_params}

    def log_bytes(self, run_id: str, artifact_path: str, data: bytes) -> None:
        """Store ``data`` as the artifact ``artifact_path`` (e.g. ``charts/daily_chart.png``)."""
        from mlflow.store.artifact import artifact_repo

        # MLflow 3's streaming uploads; older releases (and S3) take a file
        streams = getattr(artifact_repo, "StreamUploadMixin", None)
        path = _artifact_path(artifact_path)
        parent = None if str(path.parent) == "." else str(path.parent)
        with self._guard(f"logging artifact {artifact_path!r} to run {run_id}"):
            repo = self._artifacts(run_id)
            if streams is not None and isinstance(repo, streams):  # local files: no temp copy
                repo.log_artifact_from_stream(io.BytesIO(data), path.name, parent)
                return
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / path.name
                local.write_bytes(data)
                repo.log_artifact(str(local), parent)

    def artifact_uri(self, run_id: str, artifact_path: str) -> str:
        """Where the artifact ``artifact_path`` of ``run_id`` is (or will be) stored."""
        path = _artifact_path(artifact_path)
        with self._lock:
            root = self._artifact_uris.get(run_id)
        if root is None:
            with self._guard(f"getting run {run_id}"):
                root = self.client.get_run(run_id).info.artifact_uri
            with self._lock:
                self._artifact_uris[run_id] = root
        return f"{root.rstrip('/')}/{path}"

    def log_text(self, run_id: str, artifact_path: str, text: str) -> None:
        """Store ``text`` (UTF-8) as the artifact ``artifact_path`` (e.g. ``prompt.txt``)."""
        self.log_bytes(run_id, artifact_path, text.encode("utf-8"))

    def log_json(self, run_id: str, artifact_path: str, obj: Any) -> None:
        """Store ``obj`` as indented JSON; dates, decimals and the like are written as strings."""
        self.log_text(run_id, artifact_path, json.dumps(obj, indent=2, default=str))

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        """Mark the run terminated; later logging into it still works."""
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"status must be one of {TERMINAL_STATUSES}, not {status!r}")
        with self._guard(f"finishing run {run_id}"):
            self.client.set_terminated(run_id, status=status)
        with self._lock:
            self._ended[run_id] = status

    def end_runs(self, dagster_run_id: str, status: str = "FINISHED") -> int:
        """End, as ``status``, the runs this process used for ``dagster_run_id``.

        Runs this process already gave that status are skipped. Returns how many were ended;
        stops at the first failure, since with the server down each call waits for its retries.
        """
        with self._lock:
            runs = self._open.pop(dagster_run_id, {})
            pending = [run_id for run_id in runs if self._ended.get(run_id) != status]
        for done, run_id in enumerate(pending):
            if self.unreachable:
                raise TrackingError(
                    f"{len(pending) - done} MLflow run(s) not ended: "
                    f"{redact_text(self.tracking_uri)} was unreachable"
                )
            try:
                self.finish(run_id, status)
            except TrackingError as exc:
                raise TrackingError(
                    f"{len(pending) - done} MLflow run(s) not ended: {exc}"
                ) from None
        return len(pending)

    def fail_runs(self, dagster_run_id: str) -> int:
        """Mark FAILED every run of ``dagster_run_id``, including those other processes (the
        run's other steps) created or tagged with it. Returns how many were marked."""
        from mlflow.entities import ViewType

        with self._lock:
            self._open.pop(dagster_run_id, None)
        if self.unreachable:
            raise TrackingError(
                f"MLflow runs of {dagster_run_id} not marked FAILED: "
                f"{redact_text(self.tracking_uri)} was unreachable"
            )
        client = self.client
        with self._guard(f"finding the runs of Dagster run {dagster_run_id}"):
            experiments = self._workflow_experiments()
            runs = (
                _all_pages(
                    client.search_runs,
                    experiments,
                    filter_string=f"tags.dagster_run_id = {quote_filter_value(dagster_run_id)}"
                    " and attributes.status != 'FAILED'",
                    run_view_type=ViewType.ACTIVE_ONLY,
                )
                if experiments
                else []
            )
        for run in runs:
            self.finish(run.info.run_id, "FAILED")
        return len(runs)

    def end_abandoned_runs(self, ended_as: Callable[[list[str]], dict[str, str]]) -> int:
        """End the runs left RUNNING by Dagster runs that have ended: ``ended_as(dagster run
        ids)`` maps each of them that has ended to the status its MLflow runs get (FINISHED or
        FAILED); runs of Dagster runs still going, or unknown to the caller, are left alone.
        Those are the runs an execution could not end itself (MLflow was down when it ended).
        Returns how many were ended."""
        from mlflow.entities import ViewType

        with self._guard("finding runs left RUNNING"):
            experiments = self._workflow_experiments()
            runs = (
                _all_pages(
                    self.client.search_runs,
                    experiments,
                    filter_string="attributes.status = 'RUNNING'",
                    run_view_type=ViewType.ACTIVE_ONLY,
                )
                if experiments
                else []
            )
        by_dagster_run = {r.data.tags.get("dagster_run_id") for r in runs} - {None}
        statuses = ended_as(sorted(by_dagster_run)) if by_dagster_run else {}
        ended = 0
        for run in runs:
            status = statuses.get(run.data.tags.get("dagster_run_id", ""))
            if status is not None:
                self.finish(run.info.run_id, status)
                ended += 1
        return ended

    def _workflow_experiments(self) -> list[str]:
        """The ids of every strategy's ``*/trading_workflow_*`` experiments."""
        return [
            e.experiment_id
            for e in _all_pages(
                self.client.search_experiments,
                filter_string="name LIKE '%/trading_workflow_%'",  # `_`: any character
            )
            if "/trading_workflow_" in e.name
        ]

    def run_url(self, run_id: str) -> str | None:
        """Link to the run in the MLflow UI, only for an http(s) tracking server."""
        parts = urlsplit(self.tracking_uri)
        if parts.scheme not in ("http", "https"):
            return None
        with self._lock:
            experiment_id = self._run_experiments.get(run_id)
        if experiment_id is None:
            with self._guard(f"getting run {run_id}"):
                experiment_id = self.client.get_run(run_id).info.experiment_id
        netloc = parts.hostname or ""
        if parts.port is not None:
            netloc = f"{netloc}:{parts.port}"
        base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"

    def _artifacts(self, run_id: str) -> Any:
        """The artifact repository of ``run_id`` (one per run and process)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        with self._lock:
            repo, uri = self._artifact_repos.get(run_id), self._artifact_uris.get(run_id)
        if repo is None:
            if uri is None:
                uri = self.client.get_run(run_id).info.artifact_uri
            repo = get_artifact_repository(uri, tracking_uri=self.tracking_uri)
            with self._lock:
                self._artifact_repos[run_id] = repo
        return repo

    def _execution_run(self, experiment_id: str, partition_key: str, execution_id: str) -> Any:
        """The partition's run in this execution as of this process's one search for all of
        the execution's runs (oldest per partition), or None. A run another process creates
        later is not seen here; creating the run again is then settled by the search that
        follows every creation."""
        scope = (experiment_id, execution_id)
        with self._lock:
            runs = self._execution_runs.get(scope)
        if runs is None:
            runs = self._search_execution(experiment_id, execution_id)
            with self._lock:
                self._execution_runs[scope] = runs
        return runs.get(partition_key)

    def _search_execution(self, experiment_id: str, execution_id: str) -> dict[str, Any]:
        """Partition key -> the oldest active run of the execution (so concurrent callers agree)."""
        from mlflow.entities import ViewType

        runs: dict[str, Any] = {}
        token = None
        while True:
            page = self.client.search_runs(
                [experiment_id],
                filter_string=f"tags.execution_id = {quote_filter_value(execution_id)}",
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=1000,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            for run in page:
                runs.setdefault(run.data.tags.get("partition_key"), run)
            token = page.token
            if not token:
                return runs

    def _update_tags(self, run_id: str, current: Mapping[str, str], wanted: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        changed = [RunTag(k, v) for k, v in wanted.items() if current.get(k) != v]
        if changed:
            self.client.log_batch(run_id, tags=changed)

    def _artifact_location(self, name: str) -> str | None:
        """``<artifact_root>/<name>``; a root with a scheme (``s3:``, ``mlflow-artifacts:``,
        ``file:``) is a URI, anything else a local folder."""
        if self.artifact_root is None:
            return None
        if len(urlsplit(self.artifact_root).scheme) > 1:  # one letter: a Windows drive
            return f"{self.artifact_root.rstrip('/')}/{name}"
        return (Path(self.artifact_root).expanduser().resolve() / name).as_uri()

    @contextmanager
    def _guard(self, action: str, any_error: bool = False) -> Iterator[None]:
        """Turn MLflow, network, database and file errors (or ``any_error``) into TrackingError."""
        try:
            yield
        except Exception as exc:
            if isinstance(exc, TrackingError) or not (
                any_error or isinstance(exc, _tracking_errors())
            ):
                raise
            reason = _unreachable_reason(exc)
            self.unreachable = reason is not None
            if reason is not None:
                raise TrackingError(
                    f"MLflow server {redact_text(self.tracking_uri)} is unavailable ({reason}) "
                    f"while {action}; gave up after "
                    f"{1 + int(os.environ.get('MLFLOW_HTTP_REQUEST_MAX_RETRIES') or 7)} attempts "
                    "(MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT)"
                ) from None
            message = mask(f"{type(exc).__name__}: {exc}", [urlsplit(self.tracking_uri).password])
            raise TrackingError(
                f"MLflow {action} failed (tracking URI {redact_text(self.tracking_uri)}): {message}"
            ) from None
        self.unreachable = False


def quote_filter_value(value: str) -> str:
    """Quote a string constant for an MLflow filter; MLflow has no escapes, only two quotes."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"{value!r} holds both quote characters and cannot be searched in MLflow")


def _artifact_path(artifact_path: str) -> PurePosixPath:
    path = PurePosixPath(artifact_path)
    if not path.name or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"artifact path {artifact_path!r} must be a relative file path")
    return path


def sqlite_database(tracking_uri: str) -> str | None:
    """The database file of a ``sqlite:`` URI; None for other stores and in-memory SQLite."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    import sqlalchemy as sa

    database = sa.engine.make_url(tracking_uri).database
    return None if database in (None, "", ":memory:") else database


@contextmanager
def _sqlite_store_setup(tracking_uri: str) -> Iterator[None]:
    """Serialize the set-up of a SQLite store across processes (no-op for other stores).

    ``<db>.ready`` marks a store that was fully set up, so later clients skip the lock. It is
    removed (under the lock) before a store is created, and the database is checked before the
    marker, so a process never mistakes a store being created for a ready one.
    """
    database = sqlite_database(tracking_uri)
    db = Path(database) if database else None
    ready = Path(f"{database}.ready")
    if db is None or (db.exists() and ready.exists()):
        yield
        return
    from filelock import FileLock

    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{database}.lock", timeout=INIT_LOCK_TIMEOUT_S):
        ready.unlink(missing_ok=True)
        yield
        # Write-ahead log: readers (the MLflow UI) do not block the runs that write, and each
        # of a range's hundreds of commits costs a third. The mode stays with the file.
        with closing(sqlite3.connect(database)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
        ready.touch()


def _sync_wal_commits_normally(client: MlflowClient) -> None:
    """``synchronous=NORMAL`` on the connections of a SQLite store in WAL mode.

    SQLite's recommended setting under a write-ahead log (the embedded event log uses it too):
    a commit survives the process crashing and only a power loss may undo the last ones, and it
    no longer waits for the disk (a range run commits some thousand times). A store in another
    journal mode keeps SQLite's default. Other stores are left alone.
    """
    engine = getattr(getattr(client._tracking_client, "store", None), "engine", None)
    if engine is None or engine.dialect.name != "sqlite":
        return

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        (mode,) = dbapi_connection.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() == "wal":
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    import sqlalchemy as sa

    sa.event.listen(engine, "connect", on_connect)
    engine.dispose()  # the connections opened while the store was set up reopen with it


def _all_pages(search: Any, *args: Any, **kwargs: Any) -> list[Any]:
    """Every result of an MLflow ``search_*`` call, following its page tokens."""
    found: list[Any] = []
    token = None
    while True:
        page = search(*args, **kwargs, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def _unreachable_reason(exc: BaseException) -> str | None:
    """Why the server could not be used (refused, silent, failing), or None for other errors."""
    import requests

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, requests.Timeout):
            return "no answer in time"
        if isinstance(cause, requests.ConnectionError):
            return "connection refused" if "refused" in str(cause).lower() else "connection failed"
        if isinstance(cause, requests.exceptions.RetryError):
            return "it kept answering with errors"
        cause = cause.__cause__ or cause.__context__
    return None


def _tracking_errors() -> tuple[type[BaseException], ...]:
    import requests
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException

    return (MlflowException, requests.RequestException, sqlalchemy.exc.SQLAlchemyError, OSError)
