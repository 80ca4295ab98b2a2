"""The Kubernetes deployment in deploy/, checked by reading its files (no cluster, no helm).

What a user relies on when running ``helm install -f deploy/helm/values.yaml``: every key set
is one the Dagster chart knows, the instance gets the same settings as docker/dagster.yaml, one
image and one configuration reach the code server, run pods, webserver, daemon and viewer,
secrets come only from Kubernetes secrets the README creates, and every environment variable the
project reads is set there or documented in deploy/README.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ibkr_assets.settings import ENV_VARS, SECRET_FIELDS, load_settings

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
VALUES_FILE = DEPLOY / "helm" / "values.yaml"

# Variables the project reads outside ibkr_assets.settings.ENV_VARS, and the libraries' ones the
# main README documents.
OTHER_VARS = {
    "IBKR_ASSETS_START_DATE",
    "IBKR_ASSETS_KILL_SWITCH",
    "IBKR_ASSETS_ALERT_WEBHOOK_URL",
    "IBKR_ASSETS_MLFLOW_PUBLIC_URL",
    "OPENAI_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "DAGSTER_HOME",
    "DAGSTER_EVENT_BATCH_SIZE",
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN")
SECRET_VARS = {var for var, field in ENV_VARS.items() if field in SECRET_FIELDS} | {
    "IBKR_ASSETS_ALERT_WEBHOOK_URL"
}

# The chart's value keys this deployment may set, transcribed from the chart's schema
# (helm/dagster/schema/schema/charts/: dagster/values.py, dagster/subschema/{postgresql,
# run_launcher,compute_log_manager,webserver,daemon,concurrency,migrate,telemetry,global_}.py,
# dagster_user_deployments/subschema/user_deployments.py). A dict is an object whose keys are
# checked, [dict] a list of such objects, K8S a Kubernetes object (or list) passed through as is.
K8S = "kubernetes object"
_IMAGE = {"repository": str, "tag": str, "pullPolicy": str}
_ENV = {"env": K8S, "envConfigMaps": K8S, "envSecrets": K8S}
_POD = {"resources": K8S, "volumes": K8S, "volumeMounts": K8S, "labels": K8S, "annotations": K8S,
        "nodeSelector": K8S, "affinity": K8S, "tolerations": K8S, "securityContext": K8S,
        "podSecurityContext": K8S}  # fmt: skip
_PROBES = {"readinessProbe": K8S, "livenessProbe": K8S, "startupProbe": K8S}
CHART_KEYS: dict = {
    "global": {"dagsterHome": str, "postgresqlSecretName": str, "serviceAccountName": str},
    "generatePostgresqlPasswordSecret": bool,
    "postgresql": {
        "enabled": bool,
        "postgresqlHost": str,
        "postgresqlUsername": str,
        "postgresqlDatabase": str,
        "postgresqlScheme": str,
        "postgresqlParams": K8S,
        "service": {"port": int},
    },  # fmt: skip
    "dagster-user-deployments": {
        "enabled": bool,
        "enableSubchart": bool,
        "deployments": [
            {
                "name": str,
                "image": _IMAGE,
                "codeServerArgs": K8S,
                "dagsterApiGrpcArgs": K8S,
                "port": int,
                "replicaCount": int,
                "includeConfigInLaunchedRuns": {"enabled": bool},
                **_ENV,
                **_POD,
                **_PROBES,
            }  # fmt: skip
        ],
    },
    "runLauncher": {
        "type": str,
        "config": {
            "k8sRunLauncher": {
                "imagePullPolicy": str,
                "jobNamespace": str,
                "loadInclusterConfig": bool,
                "envConfigMaps": K8S,
                "envSecrets": K8S,
                "envVars": K8S,
                "volumes": K8S,
                "volumeMounts": K8S,
                "labels": K8S,
                "failPodOnRunFailure": bool,
                "resources": K8S,
                "securityContext": K8S,
                "runK8sConfig": {
                    "containerConfig": K8S,
                    "podSpecConfig": K8S,
                    "podTemplateSpecMetadata": K8S,
                    "jobSpecConfig": K8S,
                    "jobMetadata": K8S,
                },
            }  # fmt: skip
        },
    },
    "computeLogManager": {
        "type": str,
        "config": {
            "s3ComputeLogManager": {
                "bucket": str,
                "localDir": str,
                "prefix": str,
                "useSsl": bool,
                "verify": bool,
                "endpointUrl": str,
                "skipEmptyFiles": bool,
                "uploadInterval": int,
                "showUrlOnly": bool,
                "region": str,
            }  # fmt: skip
        },
    },
    "dagsterWebserver": {
        "replicaCount": int,
        "image": _IMAGE,
        "service": {"type": str, "port": int},
        **_ENV,
        **_POD,
        **_PROBES,
    },  # fmt: skip
    "dagsterDaemon": {
        "enabled": bool,
        "image": _IMAGE,
        "runCoordinator": {
            "enabled": bool,
            "type": str,
            "config": {
                "queuedRunCoordinator": {
                    "maxConcurrentRuns": int,
                    "dequeueIntervalSeconds": int,
                    "dequeueUseThreads": bool,
                    "dequeueNumWorkers": int,
                }
            },  # fmt: skip
        },
        "runMonitoring": {
            "enabled": bool,
            "startTimeoutSeconds": int,
            "cancelTimeoutSeconds": int,
            "maxResumeRunAttempts": int,
            "pollIntervalSeconds": int,
            "freeSlotsAfterRunEndSeconds": int,
        },  # fmt: skip
        **_ENV,
        **_POD,
        **_PROBES,
    },
    "concurrency": {
        "enabled": bool,
        "runs": {"maxConcurrentRuns": int, "tagConcurrencyLimits": K8S},
        "pools": {"defaultLimit": int, "granularity": str, "opGranularityRunBuffer": int},
    },
    "migrate": {"enabled": bool},
    "telemetry": {"enabled": bool},
}


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES_FILE.read_text())


@pytest.fixture(scope="module")
def code(values) -> dict:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return deployment


@pytest.fixture(scope="module")
def config_map() -> dict[str, str]:
    doc = yaml.safe_load((DEPLOY / "config.yaml").read_text())
    assert doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "ibkr-assets-env"
    return doc["data"]


@pytest.fixture(scope="module")
def viewer() -> dict:
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "viewer.yaml").read_text())}
    assert set(docs) == {"Deployment", "Service"}
    return docs


@pytest.fixture(scope="module")
def schema_job() -> dict:
    return yaml.safe_load((DEPLOY / "lineage-schema-job.yaml").read_text())


@pytest.fixture(scope="module")
def docs() -> str:
    return (DEPLOY / "README.md").read_text()


def _unknown_keys(node: object, schema: object, path: str) -> Iterator[str]:
    if schema == K8S or node is None:
        return
    if isinstance(schema, list):
        assert isinstance(node, list), f"{path} must be a list"
        for item in node:
            yield from _unknown_keys(item, schema[0], f"{path}[]")
    elif isinstance(schema, dict):
        assert isinstance(node, dict), f"{path} must be a mapping"
        for key, value in node.items():
            if key not in schema:
                yield f"{path}.{key}".lstrip(".")
            else:
                yield from _unknown_keys(value, schema[key], f"{path}.{key}")
    else:
        assert isinstance(node, schema), f"{path} must be {schema.__name__}, got {node!r}"


def _env_entries(container: dict) -> list[dict]:
    env = container.get("env") or []
    if isinstance(env, dict):
        return [{"name": name, "value": value} for name, value in env.items()]
    return env


def _pyproject_value(key: str) -> str:
    text = (REPO / "pyproject.toml").read_text()
    match = re.search(rf'^{re.escape(key)}\s*=\s*"([^"]+)"', text, re.M)
    assert match, f"{key} not found in pyproject.toml"
    return match.group(1)


def _image(image: dict) -> str:
    return f"{image['repository']}:{image['tag']}"


def _viewer_container(viewer) -> dict:
    (container,) = viewer["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def _all_env_lists(values, viewer, schema_job) -> Iterator[tuple[str, list[dict]]]:
    (code,) = values["dagster-user-deployments"]["deployments"]
    yield "code location", _env_entries(code)
    yield "webserver", _env_entries(values["dagsterWebserver"])
    yield "daemon", _env_entries(values["dagsterDaemon"])
    yield "viewer", _env_entries(_viewer_container(viewer))
    (job,) = schema_job["spec"]["template"]["spec"]["containers"]
    yield "schema job", _env_entries(job)


def _documented_vars(text: str) -> set[str]:
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", text))


def _readme_configuration_vars() -> set[str]:
    """Fully spelled variables of the main README's Configuration table (first column)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row)}


def test_values_set_only_keys_the_chart_knows(values):
    unknown = list(_unknown_keys(values, CHART_KEYS, ""))
    assert not unknown, f"keys not in the Dagster chart's schema: {unknown}"


def test_code_location_is_the_project_module_on_the_compose_image(values, code):
    assert values["dagster-user-deployments"]["enabled"] is True
    args = code.get("codeServerArgs") or code.get("dagsterApiGrpcArgs")
    assert args == ["-m", _pyproject_value("module_name")] == ["-m", "ibkr_assets.definitions"]
    assert code["includeConfigInLaunchedRuns"]["enabled"] is True
    # one image for the code server, the webserver, the daemon (and through the code location
    # the run and step pods), the viewer and the schema job
    image = _image(code["image"])
    assert _image(values["dagsterWebserver"]["image"]) == image
    assert _image(values["dagsterDaemon"]["image"]) == image


def test_image_is_docker_dockerfile_plus_dagster_k8s(values):
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM \$\{BASE\}$", dockerfile, re.M)
    assert "docker build -f docker/Dockerfile" in dockerfile
    assert 'pip install ".[celery,k8s]"' in dockerfile  # dagster-k8s from the project's extra
    pyproject = (DEPLOY.parent / "pyproject.toml").read_text()
    assert re.search(r'^k8s = \["dagster-k8s[^"]*"', pyproject, re.M)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    # the chart mounts the instance where the image keeps it (writable by the image's user)
    base = (REPO / "docker" / "Dockerfile").read_text()
    home = re.search(r"DAGSTER_HOME=(\S+)", base).group(1)
    assert values["global"]["dagsterHome"] == home


def test_runs_launch_as_kubernetes_jobs_with_storage_on_external_postgres(values, docs):
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert "k8sRunLauncher" in values["runLauncher"]["config"]
    pg = values["postgresql"]
    assert pg["enabled"] is False
    assert pg["postgresqlHost"] and pg["postgresqlDatabase"] == "dagster"
    # psycopg 3 breaks dagster-postgres (docker/dagster.yaml's rule)
    assert pg["postgresqlScheme"] == "postgresql+psycopg2"
    assert "postgresqlPassword" not in pg
    assert values["generatePostgresqlPasswordSecret"] is False
    secret = values["global"]["postgresqlSecretName"]
    assert re.search(
        rf"create secret generic {secret} \\\s+--from-literal=postgresql-password=", docs
    )


def test_instance_settings_match_docker_dagster_yaml(values):
    instance = yaml.safe_load((REPO / "docker" / "dagster.yaml").read_text())
    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    assert concurrency["pools"]["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"]
    assert (
        concurrency["runs"]["maxConcurrentRuns"]
        == instance["concurrency"]["runs"]["max_concurrent_runs"]
    )
    # the chart refuses a run limit in both places
    qrc = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert qrc.get("maxConcurrentRuns") is None
    daemon = values["dagsterDaemon"]
    assert daemon["enabled"] is True and daemon["runCoordinator"]["enabled"] is True
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    camel = {
        "enabled": "enabled",
        "start_timeout_seconds": "startTimeoutSeconds",
        "cancel_timeout_seconds": "cancelTimeoutSeconds",
        "max_resume_run_attempts": "maxResumeRunAttempts",
        "poll_interval_seconds": "pollIntervalSeconds",
    }
    monitoring = instance["run_monitoring"]
    assert set(monitoring) == set(camel)
    assert {camel[k]: v for k, v in monitoring.items()} == daemon["runMonitoring"]
    assert values["telemetry"]["enabled"] is instance["telemetry"]["enabled"] is False
    assert values["migrate"]["enabled"] is True


def test_step_logs_go_to_the_object_store_bucket(values, config_map):
    instance = yaml.safe_load((REPO / "docker" / "dagster.yaml").read_text())
    logs = values["computeLogManager"]
    assert logs["type"] == "S3ComputeLogManager"
    s3 = logs["config"]["s3ComputeLogManager"]
    assert s3["bucket"] == config_map["IBKR_ASSETS_S3_BUCKET"]
    assert s3["endpointUrl"] == config_map["IBKR_ASSETS_S3_ENDPOINT_URL"]
    assert s3["prefix"] == instance["compute_logs"]["config"]["prefix"]
    assert s3["useSsl"] is instance["compute_logs"]["config"]["use_ssl"]
    # the webserver shows those logs: it needs the S3 keys, from the secret
    webserver_env = {e["name"] for e in _env_entries(values["dagsterWebserver"])}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= webserver_env
    # a non-root webserver cannot bind port 80; the readiness probe follows the port
    port = values["dagsterWebserver"]["service"]["port"]
    assert port >= 1024
    assert values["dagsterWebserver"]["readinessProbe"]["httpGet"]["port"] == port


def test_configuration_reaches_code_server_runs_and_viewer(values, code, config_map, viewer):
    assert [m["name"] for m in code["envConfigMaps"]] == ["ibkr-assets-env"]
    assert [s["name"] for s in code["envSecrets"]] == ["ibkr-assets-secrets"]
    container = _viewer_container(viewer)
    assert {"configMapRef": {"name": "ibkr-assets-env"}} in container["envFrom"]
    # the project's settings accept the ConfigMap as it is
    settings = load_settings(config_map)
    assert settings.object_store == "s3"
    assert settings.tracking_uri.startswith("http://")
    unknown = {n for n in config_map if n.startswith("IBKR_")} - set(ENV_VARS) - OTHER_VARS
    assert not unknown, f"variables the project does not read (typo?): {sorted(unknown)}"
    # the strategies file is in the folder the strategies ConfigMap is mounted on
    folder = str(Path(config_map["IBKR_ASSETS_STRATEGIES_FILE"]).parent)
    volumes = {v["name"]: v for v in code["volumes"]}
    for mounts, vols in (
        (code["volumeMounts"], volumes),
        (
            container["volumeMounts"],
            {v["name"]: v for v in viewer["Deployment"]["spec"]["template"]["spec"]["volumes"]},
        ),
    ):
        (mount,) = [m for m in mounts if m["mountPath"] == folder]
        assert "subPath" not in mount  # a file mount would not see edits
        assert vols[mount["name"]]["configMap"]["name"] == "ibkr-assets-strategies"


def test_no_secret_is_written_in_deploy(values, config_map, viewer, schema_job):
    for name, value in config_map.items():
        assert not SECRET_NAME.search(name), f"{name} belongs in a secret, not the ConfigMap"
        assert name not in SECRET_VARS or "@" not in value, f"{name} holds credentials"
        assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"credentials in {name}"
    for where, entries in _all_env_lists(values, viewer, schema_job):
        for entry in entries:
            name = entry["name"]
            if SECRET_NAME.search(name) or name in SECRET_VARS:
                assert "value" not in entry, f"{where}: {name} written in clear"
                assert "secretKeyRef" in entry["valueFrom"], f"{where}: {name} not from a secret"
    for path in DEPLOY.rglob("*.yaml"):
        assert "postgresqlPassword" not in path.read_text(), path


def test_every_secret_referenced_is_created_by_the_readme(values, code, viewer, schema_job, docs):
    created = set(re.findall(r"create secret generic (\S+)", docs))
    literal_keys = set(re.findall(r"--from-literal=([A-Za-z_][\w-]*)=", docs))
    referenced = {s["name"] for s in code["envSecrets"]} | {
        values["global"]["postgresqlSecretName"]
    }
    for where, entries in _all_env_lists(values, viewer, schema_job):
        for entry in entries:
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                referenced.add(ref["name"])
                assert ref["key"] in literal_keys, f"{where}: key {ref['key']} is never created"
    assert referenced <= created, f"secrets the README never creates: {referenced - created}"
    # the viewer's token is the viewer's alone
    assert "IBKR_ASSETS_VIEWER_TOKEN" not in {e["name"] for e in _env_entries(code)}


def test_every_variable_the_project_reads_is_set_or_documented(
    values, config_map, viewer, schema_job, docs
):
    read = set(ENV_VARS) | OTHER_VARS | _readme_configuration_vars()
    set_here = set(config_map) | {
        entry["name"]
        for _, entries in _all_env_lists(values, viewer, schema_job)
        for entry in entries
    }
    missing = read - set_here - _documented_vars(docs)
    assert not missing, (
        f"set these in deploy/ or document them in deploy/README.md: {sorted(missing)}"
    )


def test_viewer_serves_the_same_image_behind_its_token(code, viewer, schema_job):
    container = _viewer_container(viewer)
    assert container["command"][:2] == ["ibkr-assets", "serve"]
    command = container["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    port = int(command[command.index("--port") + 1])
    assert container["ports"][0]["containerPort"] == port
    assert (
        viewer["Service"]["spec"]["selector"]
        == (viewer["Deployment"]["spec"]["selector"]["matchLabels"])
    )
    env = {e["name"]: e for e in _env_entries(container)}
    token = env["IBKR_ASSETS_VIEWER_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token["name"] == "ibkr-assets-viewer"
    assert env["IBKR_ASSETS_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == (
        "ibkr-assets-secrets"
    )
    assert "/api/health" in " ".join(container["readinessProbe"]["exec"]["command"])
    image = _image(code["image"])
    assert container["image"] == image
    (job,) = schema_job["spec"]["template"]["spec"]["containers"]
    assert job["image"] == image
    assert "create_schema()" in " ".join(job["command"])


def test_readme_documents_each_step_and_is_linked():
    docs = (DEPLOY / "README.md").read_text()
    for step in ("kubectl -n ibkr-assets create secret", "docker push", "helm upgrade --install",
                 "deploy/viewer.yaml", "k8s_job_executor", "lineage-schema-job.yaml"):  # fmt: skip
        assert step in docs, f"deploy/README.md does not show {step!r}"
    assert "deploy/README.md" in (REPO / "README.md").read_text()
    assert "../deploy/README.md" in (REPO / "docker" / "README.md").read_text()
