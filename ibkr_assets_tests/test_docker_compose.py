"""The production stack in docker/, checked by reading its files (no Docker engine needed).

What a user relies on when running ``docker compose up``: every service is there, the Dagster
processes see one and the same configuration, secrets come only from docker/.env, every
variable the compose file needs is documented in .env.example, and the instance, workspace and
image agree with each other.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ibkr_assets.settings import ENV_VARS, load_settings

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yml"

DAGSTER_SERVICES = ("code", "webserver", "daemon")
REQUIRED_SERVICES = {"postgres", "minio", "minio-init", "mlflow", *DAGSTER_SERVICES}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, ... and bare $VAR;
# `$$` is compose's escape for a literal `$` and is removed before matching.
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)((?::?[-?+])[^}]*)?\}|\$([A-Za-z_]\w*)")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return _read_env_example()


def _read_env_example() -> dict[str, str]:
    values = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example line without '=': {line!r}"
            values[name.strip()] = value.strip()
    return values


def _strings(node: object) -> Iterator[str]:
    """Every string (keys and values) in a parsed YAML document: what compose interpolates."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _interpolations(compose: dict) -> list[tuple[str, str]]:
    """(variable, modifier) for every interpolation in the compose file, e.g. ("X", ":?msg")."""
    found = []
    for text in _strings(compose):
        for braced, modifier, bare in INTERPOLATION.findall(text.replace("$$", "")):
            found.append((braced or bare, modifier))
    return found


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {name: str(value) for name, value in env.items()}


def _depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def _pyproject_value(key: str) -> str:
    """A top-level string setting of pyproject.toml (no tomllib: the project supports 3.10)."""
    text = (REPO / "pyproject.toml").read_text()
    match = re.search(rf'^{re.escape(key)}\s*=\s*"([^"]+)"', text, re.M)
    assert match, f"{key} not found in pyproject.toml"
    return match.group(1)


def _arg_after(command: list[str], flag: str) -> str:
    assert flag in command, f"{flag} missing from {command}"
    return command[command.index(flag) + 1]


def test_compose_defines_every_service_of_the_stack(services):
    missing = REQUIRED_SERVICES - set(services)
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["minio"]["image"].startswith("minio/minio")
    assert services["minio-init"]["image"].startswith("minio/mc")
    assert services["mlflow"]["image"].startswith("ghcr.io/mlflow/mlflow")


def test_dagster_services_run_the_code_server_webserver_and_daemon(services):
    code = services["code"]["command"]
    assert code[:3] == ["dagster", "code-server", "start"]
    assert _arg_after(code, "-m") == "ibkr_assets.definitions"
    assert _arg_after(code, "-h") == "0.0.0.0"
    webserver = services["webserver"]["command"]
    assert webserver[0] == "dagster-webserver"
    assert _arg_after(webserver, "-p") == "3000"
    assert _arg_after(webserver, "-w") == "workspace.yaml"
    assert any(str(port).endswith(":3000") for port in services["webserver"]["ports"])
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]


def test_dagster_services_share_one_environment_defined_once(services):
    envs = [_environment(services[name]) for name in DAGSTER_SERVICES]
    assert envs[0], "the code server has no environment"
    assert envs[0] == envs[1] == envs[2], "code, webserver and daemon must see the same variables"
    text = COMPOSE_FILE.read_text()
    assert "x-dagster-env: &dagster-env" in text
    assert text.count("IBKR_ASSETS_OBJECT_STORE:") == 1, "the Dagster environment is repeated"


def test_dagster_environment_points_at_the_stack_services(services):
    env = _environment(services["code"])
    assert env["IBKR_ASSETS_OBJECT_STORE"] == "s3"
    assert env["IBKR_ASSETS_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["IBKR_ASSETS_S3_BUCKET"] == "ibkr-assets"
    assert env["IBKR_ASSETS_DATABASE_URL"].startswith("postgresql+psycopg2://")
    assert "@postgres:5432/" in env["IBKR_ASSETS_DATABASE_URL"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY"):
        assert name in env, f"{name} is not passed to the Dagster services"
    for name in ("IBKR_HOST", "IBKR_PORT", "IBKR_CLIENT_ID"):
        assert name in env, f"{name} is not passed to the Dagster services"
    # The S3 keys are MinIO's credentials, not a second set of secrets.
    minio = _environment(services["minio"])
    assert env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]


def test_project_variables_in_the_dagster_environment_are_ones_the_settings_read(services):
    env = _environment(services["code"])
    project_vars = {name for name in env if name.startswith("IBKR_")}
    unknown = project_vars - set(ENV_VARS)
    assert not unknown, f"variables ibkr_assets.settings does not read (typo?): {sorted(unknown)}"


def test_buckets_used_by_the_stack_are_created_by_minio_init(services):
    script = "\n".join(_strings(services["minio-init"]["command"]))
    bucket = _environment(services["code"])["IBKR_ASSETS_S3_BUCKET"]
    assert f"mc mb --ignore-existing local/{bucket}" in script
    assert "mc mb --ignore-existing local/mlflow" in script
    assert "--artifacts-destination=s3://mlflow" in services["mlflow"]["command"]


def test_mlflow_artifacts_go_through_the_server_to_a_volume(services):
    mlflow = services["mlflow"]["command"]
    assert "--serve-artifacts" in mlflow
    assert not [arg for arg in mlflow if arg.startswith("--default-artifact-root")]
    # the destination bucket lives in MinIO's volume
    assert "--artifacts-destination=s3://mlflow" in mlflow
    assert any(str(v).split(":")[1:2] == ["/data"] for v in services["minio"]["volumes"])
    # the Dagster containers set no artifact root of their own: new experiments get the
    # server's (proxied mlflow-artifacts:), not a folder inside the container
    env = _environment(services["code"])
    assert "IBKR_ASSETS_MLFLOW_ARTIFACT_ROOT" not in env
    settings = load_settings({name: value for name, value in env.items() if "MLFLOW" in name})
    assert settings.tracking_uri == "http://mlflow:5000"
    assert settings.artifact_root is None


def test_no_secret_is_written_in_the_compose_file(services):
    for service_name, service in services.items():
        for name, value in _environment(service).items():
            if not SECRET_NAME.search(name):
                continue
            match = re.fullmatch(r"\$\{([A-Za-z_]\w*)(:\?[^}]+|:-)?\}", value)
            assert match, f"{service_name}.{name} must come from .env as ${{VAR}}, got {value!r}"
            if "PASSWORD" in name:
                assert (match.group(2) or "").startswith(":?"), (
                    f"{service_name}.{name} must be required with ${{VAR:?message}}"
                )


def test_passwords_are_required_never_defaulted(compose):
    for name, modifier in _interpolations(compose):
        if SECRET_NAME.search(name):
            assert modifier in ("", ":-") or modifier.startswith(":?"), (
                f"${{{name}{modifier}}} gives a secret a literal default"
            )
        if "PASSWORD" in name:
            assert modifier.startswith(":?"), f"${{{name}{modifier}}} must use :? (required)"


def test_credentials_inside_urls_come_from_env(compose):
    # Replace each required ${VAR:?...} by a marker, then every user:password in a URL must be
    # made of markers only.
    required = re.compile(r"\$\{[A-Za-z_]\w*:\?[^}]+\}")
    userinfos = [
        userinfo
        for text in _strings(compose)
        for userinfo in re.findall(r"[a-z0-9+]+://([^/@\s]+)@", required.sub("<env>", text))
    ]
    assert userinfos, "expected database URLs with credentials in the compose file"
    for userinfo in userinfos:
        for part in userinfo.split(":"):
            assert part == "<env>", f"literal or optional credential in a URL: {userinfo!r}"


def test_every_compose_variable_is_documented_in_env_example(compose, env_example):
    used = {name for name, _ in _interpolations(compose)}
    assert used, "the compose file interpolates no variables"
    undocumented = used - set(env_example)
    assert not undocumented, f"add to docker/.env.example: {sorted(undocumented)}"
    unused = set(env_example) - used
    assert not unused, f"docker/.env.example lists variables compose never reads: {sorted(unused)}"


def test_env_example_has_a_comment_and_only_placeholder_secrets():
    lines = (DOCKER / ".env.example").read_text().splitlines()
    for index, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        assert index > 0 and lines[index - 1].lstrip().startswith("#"), (
            f"no comment above {line!r} in docker/.env.example"
        )
        name, _, value = line.partition("=")
        if "PASSWORD" in name:
            assert value.startswith("replace-"), f"{name} in .env.example must be a placeholder"


def test_dagster_instance_url_names_the_psycopg2_driver(compose, services):
    env = _environment(services["code"])
    assert env["DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")
    assert "@postgres:5432/" in env["DAGSTER_PG_URL"]
    # Every PostgreSQL URL in the stack names the driver (psycopg 3 breaks dagster-postgres).
    drivers = [m for text in _strings(compose) for m in re.findall(r"postgresql[+\w]*://", text)]
    assert drivers and set(drivers) == {"postgresql+psycopg2://"}


def test_postgres_and_minio_report_health_and_dependants_wait_for_it(services):
    for name in ("postgres", "minio"):
        check = services[name].get("healthcheck", {}).get("test")
        assert check and check[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
    for name, service in services.items():
        for dep, condition in _depends_on(service).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert condition in ("service_healthy", "service_completed_successfully"), (
                f"{name} starts before {dep} is ready ({condition})"
            )
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has none"
    assert _depends_on(services["code"]).get("postgres") == "service_healthy"
    assert _depends_on(services["code"]).get("minio-init") == "service_completed_successfully"


def test_sql_folder_is_mounted_as_postgres_init_scripts(services):
    mounts = [str(v).split(":") for v in services["postgres"]["volumes"]]
    init = [m for m in mounts if len(m) > 1 and m[1] == "/docker-entrypoint-initdb.d"]
    assert init, "sql/ is not mounted into /docker-entrypoint-initdb.d"
    source = (DOCKER / init[0][0]).resolve()
    assert source == REPO / "sql"
    scripts = sorted(p.name for p in source.glob("*.sql"))
    assert {"001_lineage.sql", "002_stock_data.sql", "003_sample_stock_data.sql"} <= set(scripts)


def test_instance_uses_postgres_storage_and_queued_runs():
    instance = yaml.safe_load((DOCKER / "dagster.yaml").read_text())
    assert instance["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_PG_URL"}
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert instance["run_launcher"]["class"] == "DefaultRunLauncher"
    assert instance["telemetry"]["enabled"] is False


def test_instance_config_is_valid_for_dagster(monkeypatch, services):
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._serdes import class_from_code_pointer

    env = _environment(services["code"])
    text = (DOCKER / "dagster.yaml").read_text()
    needed = set(re.findall(r"env:\s*(\w+)", text))
    assert needed - set(env) == set(), "dagster.yaml reads variables compose does not set"
    for name in needed:
        monkeypatch.setenv(name, "http://minio:9000" if "URL" in name else "placeholder")

    config, _ = dagster_instance_config(str(DOCKER))  # raises on a schema error
    for key in ("run_coordinator", "run_launcher", "compute_logs"):
        section = config[key]
        cls = class_from_code_pointer(section["module"], section["class"])
        result = validate_config(cls.config_type(), section.get("config") or {})
        assert result.success, f"{key}: {[e.message for e in result.errors]}"


def test_workspace_points_at_the_code_service_port(services):
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    server = entry["grpc_server"]
    assert server["host"] == "code" and "code" in services
    assert str(server["port"]) == _arg_after(services["code"]["command"], "-p")
    assert server["location_name"] == _pyproject_value("code_location_name")


def test_image_installs_the_project_as_a_non_root_user(services):
    dockerfile = (DOCKER / "Dockerfile").read_text()
    build = services["code"]["build"]
    assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKER / "Dockerfile"
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert re.search(r"^RUN pip install \.", dockerfile, re.M)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "DAGSTER_HOME=/opt/dagster/home" in dockerfile
    assert re.search(
        r"^COPY docker/dagster\.yaml \$\{DAGSTER_HOME\}/dagster\.yaml", dockerfile, re.M
    )
    copied = set()
    for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.M):
        *sources, _ = [part for part in line.split() if not part.startswith("--")]
        for source in sources:
            assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
            copied.add(source)
    # `pip install .` needs the package, its build files and the readme pyproject names.
    assert {"pyproject.toml", "ibkr_assets", _pyproject_value("readme")} <= copied


def test_viewer_service_serves_the_same_image_and_records_behind_its_token(services, compose):
    viewer = services["viewer"]
    command = viewer["command"]
    assert command[:2] == ["ibkr-assets", "serve"]
    assert _arg_after(command, "--host") == "0.0.0.0" and _arg_after(command, "--port") == "8000"
    assert viewer["image"] == services["code"]["image"]
    assert viewer["build"] == services["code"]["build"]
    env = _environment(viewer)
    code_env = _environment(services["code"])
    # the same records: database, object store and strategies as the Dagster processes
    for name in ("IBKR_ASSETS_DATABASE_URL", "IBKR_ASSETS_OBJECT_STORE", "IBKR_ASSETS_S3_BUCKET",
                 "IBKR_ASSETS_S3_ENDPOINT_URL", "IBKR_ASSETS_STRATEGIES_FILE"):  # fmt: skip
        assert env[name] == code_env[name], name
    # binding 0.0.0.0 needs the token, which only comes from .env and is never defaulted
    assert ("IBKR_ASSETS_VIEWER_TOKEN", ":?set IBKR_ASSETS_VIEWER_TOKEN in docker/.env") in (
        _interpolations({"environment": env})
    )
    assert env["IBKR_ASSETS_VIEWER_TOKEN"].startswith("${IBKR_ASSETS_VIEWER_TOKEN:?")
    assert "IBKR_ASSETS_VIEWER_TOKEN" not in code_env  # the Dagster processes do not need it
    assert [str(p) for p in viewer["ports"]] == ["127.0.0.1:8000:8000"]  # the host's loopback
    assert viewer["healthcheck"]["test"][0] == "CMD" and "/api/health" in " ".join(
        viewer["healthcheck"]["test"]
    )
    assert _depends_on(viewer).get("postgres") == "service_healthy"
    assert {"IBKR_ASSETS_VIEWER_TOKEN", "IBKR_ASSETS_DAGSTER_URL"} <= set(ENV_VARS)  # read by serve
