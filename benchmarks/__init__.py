"""Benchmarks: ``python -m benchmarks`` prints one table. Speed is measured here, never in tests."""
