"""``openlineage_sensor``: exports finished runs' lineage as OpenLineage events, from a cursor.

On (``RUNNING``) by default when the OpenLineage client is configured by the environment
(``OPENLINEAGE_URL``, ``OPENLINEAGE__TRANSPORT__TYPE`` or ``OPENLINEAGE_CONFIG``), else stopped.
A backend that is down makes a tick log a warning and keep its cursor; it never touches a run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

from ibkr_assets.errors import describe_exception
from ibkr_assets.resources.lineage import LineageResource

SWITCHES = ("OPENLINEAGE_URL", "OPENLINEAGE__TRANSPORT__TYPE", "OPENLINEAGE_CONFIG")


def openlineage_configured(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return any(env.get(name) for name in SWITCHES)


def build_openlineage_sensor(namespace: str) -> dg.SensorDefinition:
    @dg.sensor(
        name="openlineage_sensor",
        minimum_interval_seconds=30,
        default_status=(
            dg.DefaultSensorStatus.RUNNING
            if openlineage_configured()
            else dg.DefaultSensorStatus.STOPPED
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext, lineage: LineageResource) -> dg.SensorResult:
        """Sends the OpenLineage events of every run that ended since the cursor (each step and
        partition: START, then COMPLETE or FAIL) to the transport the client is configured
        with; the cursor moves past what the transport accepted, and nothing further."""
        # Imported here: the client costs a few tenths of a second, and every process that
        # loads the definitions (runs, workers, the UI) would pay it with the sensor stopped.
        from openlineage.client import OpenLineageClient

        from ibkr_assets.openlineage.export import export_lineage, upstream_steps

        try:
            client = OpenLineageClient()
            result = export_lineage(
                context.cursor,
                instance=context.instance,
                database_url=lineage.database_url,
                upstream=upstream_steps(context.repository_def.asset_graph),
                namespace=namespace,
                client=client,
            )
            client.close()
        except Exception as exc:  # noqa: BLE001 - a bad configuration must not fail the tick
            reason = f"OpenLineage export did not run: {describe_exception(exc)}"
            context.log.warning(reason)
            return dg.SensorResult(skip_reason=reason)
        summary = f"{result.sent} OpenLineage events sent, {result.runs} runs done"
        if result.error:
            context.log.warning(
                f"OpenLineage export stopped ({summary}): {result.error}; the next tick resumes "
                f"at cursor {result.cursor}"
            )
            summary += f"; stopped: {result.error}"
        return dg.SensorResult(skip_reason=summary, cursor=str(result.cursor))

    return _sensor
