"""Fakes of external boundaries, faithful to the real libraries' behaviour."""
