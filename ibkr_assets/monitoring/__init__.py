"""Monitoring: what happened to runs, kept where the lineage viewer and alerts can find it."""
