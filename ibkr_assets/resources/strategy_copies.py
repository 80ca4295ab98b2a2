"""Resources whose strategy-level settings come from the strategies file.

A resource is configured once per deployment (hosts, credentials, limits of the machine). The
fields a strategy chooses (its data source, analyst, risk limits, broker account) are applied
by ``for_strategy``, which hands each strategy its own copy. The copy is kept for the life of
the resource, so whatever it builds lazily (a source, a client, a broker connection) is reused.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

import dagster as dg

R = TypeVar("R", bound=dg.ConfigurableResource)
_LOCK = threading.Lock()  # one copy per strategy even if two threads ask at once


def copy_for_strategy(resource: R, copies: dict[str, Any], strategy_id: str, **fields: Any) -> R:
    """``resource`` with ``fields`` replaced, one copy per ``strategy_id`` (kept in ``copies``)."""
    with _LOCK:
        if strategy_id not in copies:
            values = {name: getattr(resource, name) for name in type(resource).model_fields}
            copies[strategy_id] = type(resource)(**{**values, **fields})
        return copies[strategy_id]
