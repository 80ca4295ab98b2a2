"""OpenLineage export: every step and partition of the lineage table as OpenLineage run events.

``events`` builds the events from lineage rows (no Dagster), ``rows`` reads those rows,
``export`` walks the Dagster event log from a cursor and hands the events to the client's
transport, ``sensor`` is the thin Dagster layer around it.
"""
