"""Result rows as plain dicts, and keyset pages.

Timestamps come back as aware UTC datetimes on both databases (SQLite returns them naive).
A cursor is the id of the last row of a page: the next page continues after it, so a page
never skips or repeats a row when new rows arrive meanwhile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_LIMIT = 1000


def plain(row: Mapping[str, Any]) -> dict[str, Any]:
    """One result row as a dict, datetimes as aware UTC."""
    out = dict(row)
    for name, value in out.items():
        if isinstance(value, dt.datetime):
            utc = dt.timezone.utc
            out[name] = value.replace(tzinfo=utc) if value.tzinfo is None else value.astimezone(utc)
    return out


def plain_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [plain(r) for r in rows]


@dataclass(frozen=True)
class Page:
    """Up to ``limit`` rows; ``next_cursor`` is None on the last page."""

    items: list[dict[str, Any]]
    limit: int
    next_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**self.extra, "items": self.items, "limit": self.limit,
                "next_cursor": self.next_cursor}  # fmt: skip


def page_of(rows: list[dict[str, Any]], limit: int, key: str = "id") -> Page:
    """``rows`` fetched with ``limit + 1``: the extra row only says another page exists."""
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, limit, str(rows[-1][key]))
    return Page(rows, limit, None)


def parse_cursor(cursor: str | None) -> int | None:
    """A cursor back to the id it holds; ValueError for anything else."""
    if cursor is None or cursor == "":
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise ValueError(f"cursor must be a next_cursor value from an earlier page, got {cursor!r}")
    return int(cursor)
