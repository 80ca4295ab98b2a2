"""Each asset's code version follows its own logic: recorded in every lineage row, changed by an
edit of its sources (and, for the analysis, by its prompt template), untouched by others'."""

from __future__ import annotations

import shutil

from ibkr_assets.assets.code_versions import PACKAGE, STEP_SOURCES, code_version
from ibkr_assets.storage.lineage_store import LineageStore
from ibkr_assets_tests.helpers import run_partitions


def test_an_edit_changes_the_version_of_exactly_the_steps_built_on_it(tmp_path):
    root = tmp_path / "ibkr_assets"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    before = {asset: code_version(asset, root=root) for asset in STEP_SOURCES}
    assert before == {asset: code_version(asset) for asset in STEP_SOURCES}  # same bytes

    signal = root / "domain" / "signal.py"
    signal.write_text(signal.read_text() + "\n# a changed rule\n")
    after = {asset: code_version(asset, root=root) for asset in STEP_SOURCES}
    assert {a for a in STEP_SOURCES if after[a] != before[a]} == {"trading_signal"}
    assert code_version("llm_analysis", "chart_analysis@1") != code_version(
        "llm_analysis", "chart_analysis@2"
    )


def test_every_lineage_row_records_its_assets_code_version(deployment, instance, tmp_path):
    from ibkr_assets.definitions import build_definitions

    deployment()
    assert run_partitions(instance, symbol="AAPL", start="2025-03-14").success
    versions = {
        key.path[-1]: version
        for assets in build_definitions().assets
        for key, version in assets.code_versions_by_key.items()
    }
    rows = LineageStore(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}").lineage_rows()
    by_step = {r["step_name"]: r["code_version"] for r in rows if r["step_name"] in versions}
    assert by_step == {"market_data": versions["market_data"], "indicators": versions["indicators"]}
    assert len(set(versions.values()) - {versions["daily_chart"]}) >= 6  # one per step
