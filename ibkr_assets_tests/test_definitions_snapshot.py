"""What the code location defines, pinned: a change to any asset, check, job, schedule, sensor or
resource name shows up here as a reviewed diff of ``snapshots/definitions.json``.

After an intended change: ``IBKR_ASSETS_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest -n 0
ibkr_assets_tests/test_definitions_snapshot.py`` rewrites the file.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import dagster as dg
import pytest

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
UPDATE = os.environ.get("IBKR_ASSETS_UPDATE_SNAPSHOTS") == "1"  # read before fixtures clear it


def _summary(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "partitioned": node.partitions_def is not None,
            "checks": sorted(c.name for c in node.check_keys),
            "pools": sorted(node.pools or ()),
        }
    repo = defs.get_repository_def()
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "schedules": sorted(
            f"{s.name} {s.cron_schedule} {s.execution_timezone}" for s in repo.schedule_defs
        ),
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "resources": sorted(defs.resources or {}),
    }


def test_the_definitions_match_the_snapshot(deployment):
    deployment()  # the packaged strategies file, the embedded default
    from ibkr_assets.definitions import build_definitions

    current = _summary(build_definitions())
    if UPDATE:
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_importing_the_definitions_module_reads_no_configuration(deployment, tmp_path):
    """Dagster builds the definitions when it loads them; importing the module (a worker, a
    tool, a test) reads neither the settings nor the strategies file."""
    deployment(STRATEGIES_FILE=str(tmp_path / "missing.yaml"), DATABASE_URL="not a url")
    import ibkr_assets.definitions as definitions

    importlib.reload(definitions)  # would raise if it built the definitions
    with pytest.raises(Exception, match="missing.yaml"):
        definitions.defs()  # loading them reads the configuration, and says what is wrong
