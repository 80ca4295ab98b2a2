"""Pure domain logic: no Dagster, no I/O. Everything here is a function of its arguments."""
