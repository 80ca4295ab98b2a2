"""The comparisons behind ``ibkr-assets verify``: plain data in, ``Discrepancy`` records out.

Nothing here opens a database, an object store or a Dagster instance: ``gather`` fetches the
rows, objects and materialization records and hands them over, so each rule is small and
tested on its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

CHECKS = ("services", "objects", "materializations", "orders", "portfolio", "orphans")


@dataclass(frozen=True)
class Discrepancy:
    """One thing the record says that is not so: which check, about what, and how it differs."""

    check: str
    subject: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "subject": self.subject, "detail": self.detail}


@dataclass(frozen=True)
class Materialization:
    """One Dagster materialization event of a strategy's asset (from the instance's event log).

    ``manifest`` is the step's object-versions manifest as read from the store (partition ->
    {sha256, ...}), or None when the event names none or it could not be read.
    """

    asset: str
    partition_key: str
    run_id: str
    manifest: Mapping[str, Any] | None = None


def _subject(row: Mapping[str, Any]) -> str:
    return f"{row['step_name']} {row['partition_key']} (row {row['id']}, run {row['run_id'][:8]})"


# --- objects ---------------------------------------------------------------------------------


def key_for_uri(uri: str, base_uri: str) -> str | None:
    """The store key of ``uri`` when it lies in the store whose keys start at ``base_uri``."""
    return uri[len(base_uri) :] if uri.startswith(base_uri) else None


def check_objects(
    rows: Iterable[Mapping[str, Any]],
    read: Callable[[str], bytes | None],
    base_uri: str,
    asset_steps: Iterable[str],
    *,
    workers: int = 8,
) -> tuple[int, list[Discrepancy]]:
    """Every row's object exists and hashes to the sha256 it records.

    ``read(key)`` returns the bytes, or None when there is no such object. A ``success`` row of
    an asset step must name an object. A failed step's ``error`` rows name none; an ``error``
    row that does (a partition its source failed, stored as a marker) is checked like any
    other. Returns (objects checked, discrepancies).
    """
    assets = set(asset_steps)
    found: list[Discrepancy] = []
    todo: list[tuple[Mapping[str, Any], str, str]] = []
    for row in rows:
        ref = (row.get("output_data") or {}).get("object")
        if not ref:
            if row["status"] == "success" and row["step_name"] in assets:
                found.append(Discrepancy("objects", _subject(row), "success row names no object"))
            continue
        key = key_for_uri(ref.get("uri", ""), base_uri)
        if key is None:
            found.append(
                Discrepancy("objects", _subject(row), f"{ref.get('uri')} is not in this store")
            )
            continue
        todo.append((row, key, ref.get("sha256", "")))

    def digest(item: tuple[Mapping[str, Any], str, str]) -> Discrepancy | None:
        row, key, expected = item
        data = read(key)
        if data is None:
            return Discrepancy("objects", _subject(row), f"object missing: {key}")
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            return Discrepancy(
                "objects",
                _subject(row),
                f"{key} has sha256 {actual[:16]}..., the row records {expected[:16]}...",
            )
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        found += [d for d in pool.map(digest, todo) if d is not None]
    return len(todo), found


# --- Dagster event log against the lineage rows ---------------------------------------------


def _attempt_runs(row: Mapping[str, Any]) -> set[str]:
    """The run ids of this row's attempts that were materialized (the current one and earlier):
    all but a failed step's, whose ``error`` rows name no object."""
    attempts = [row, *(row.get("previous_attempts") or [])]
    return {a["run_id"] for a in attempts if a.get("run_id") and _materialized(a)}


def _materialized(attempt: Mapping[str, Any]) -> bool:
    return attempt.get("status") != "error" or bool(
        (attempt.get("output_data") or {}).get("object")
    )


def reconcile_materializations(
    rows: Iterable[Mapping[str, Any]],
    materializations: Iterable[Materialization],
    asset_steps: Iterable[str],
) -> list[Discrepancy]:
    """Each materialization has its lineage row and each row of an asset step its
    materialization, by asset, partition and run; where the event's manifest names the
    partition's object, its sha256 is the row's."""
    assets = set(asset_steps)
    by_run: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    for row in rows:
        if row["step_name"] in assets:
            for run_id in _attempt_runs(row):
                by_run[(row["step_name"], row["partition_key"], run_id)] = row
    seen: set[tuple[str, str, str]] = set()
    found: list[Discrepancy] = []
    for mat in materializations:
        key = (mat.asset, mat.partition_key, mat.run_id)
        seen.add(key)
        row = by_run.get(key)
        subject = f"{mat.asset} {mat.partition_key} (run {mat.run_id[:8]})"
        if row is None:
            found.append(
                Discrepancy("materializations", subject, "materialized, but no lineage row")
            )
            continue
        entry = (mat.manifest or {}).get(mat.partition_key)
        recorded = (row.get("output_data") or {}).get("object") or {}
        if entry and row["run_id"] == mat.run_id and entry.get("sha256") != recorded.get("sha256"):
            found.append(
                Discrepancy(
                    "materializations",
                    subject,
                    f"the event's manifest has sha256 {str(entry.get('sha256'))[:16]}..., "
                    f"the row {str(recorded.get('sha256'))[:16]}...",
                )
            )
    for key, row in by_run.items():
        if key not in seen and key[2] == row["run_id"]:
            found.append(
                Discrepancy(
                    "materializations", _subject(row), f"{row['status']} row, no materialization"
                )
            )
    return found


# --- order records against the broker's book -------------------------------------------------

ORDER_IDENTITY = ("broker_order_id", "role", "side", "order_type", "quantity")


def _identity(order: Mapping[str, Any]) -> tuple:
    prices = tuple(
        None if order.get(p) is None else round(float(order[p]), 6)
        for p in ("limit_price", "stop_price")
    )
    return tuple(order.get(k) for k in ORDER_IDENTITY) + prices


def check_order_records(
    records: Iterable[Mapping[str, Any]], book: Mapping[str, list[Mapping[str, Any]]]
) -> tuple[int, list[Discrepancy]]:
    """Our ``order_records`` against the simulator's ``orders`` (``book``: order_ref -> rows).

    A ``decided`` record has no broker orders; a ``sent``/``reconciled`` one has exactly the
    orders it recorded (ids, roles, sides, types, quantities, prices; statuses move on); a
    ``sending`` record is a send whose result was never recorded; every order in the book has
    a record. Records of another broker (IBKR) are not in this book and are left out.
    Returns (records checked, discrepancies).
    """
    found: list[Discrepancy] = []
    checked = 0
    refs: set[str] = set()
    for record in records:
        ref = record["order_ref"]
        refs.add(ref)
        if record["broker"] != "paper":
            continue
        checked += 1
        at_broker = sorted(_identity(o) for o in book.get(ref, []))
        recorded = sorted(_identity(o) for o in record.get("broker_orders") or [])
        state = record["state"]
        if state == "sending":
            found.append(
                Discrepancy("orders", ref, "state 'sending': sent, but the result was not recorded")
            )
        elif state == "decided" and at_broker:
            found.append(
                Discrepancy("orders", ref, f"decided no order, the book has {len(at_broker)}")
            )
        elif state in ("sent", "reconciled") and at_broker != recorded:
            found.append(
                Discrepancy(
                    "orders",
                    ref,
                    f"record lists {len(recorded)} order(s) that differ from the book's "
                    f"{len(at_broker)}: {_difference(recorded, at_broker)}",
                )
            )
    for ref in sorted(set(book) - refs):
        found.append(Discrepancy("orders", ref, "the book has orders with no order record"))
    return checked, found


def _difference(recorded: list[tuple], at_broker: list[tuple]) -> str:
    only_record = [t[0] for t in recorded if t not in at_broker]
    only_book = [t[0] for t in at_broker if t not in recorded]
    return f"only recorded {only_record or '-'}, only in the book {only_book or '-'}"


# --- portfolio snapshots ---------------------------------------------------------------------


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, Mapping):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def check_snapshots(
    stored: Mapping[dt.date, Mapping[str, Any]], recomputed: Mapping[dt.date, Mapping[str, Any]]
) -> list[Discrepancy]:
    """Each stored snapshot equals the one recomputed from the fills and closes up to its date
    (compared at six decimals, as the database keeps them)."""
    found: list[Discrepancy] = []
    for day in sorted(stored):
        mine, again = _rounded(dict(stored[day])), _rounded(dict(recomputed.get(day) or {}))
        if not again:
            found.append(Discrepancy("portfolio", str(day), "could not be recomputed"))
            continue
        fields = sorted(k for k in mine.keys() | again.keys() if mine.get(k) != again.get(k))
        if fields:
            shown = ", ".join(f"{f} {mine.get(f)!r} != {again.get(f)!r}" for f in fields[:3])
            found.append(
                Discrepancy("portfolio", str(day), f"stored vs recomputed from fills: {shown}")
            )
    return found


# --- orphans ---------------------------------------------------------------------------------

_DATED = re.compile(r"/(\d{4}-\d{2}-\d{2})_[^/]*$")
_MANIFEST = re.compile(r"^manifests/[^/]+/[^/]+/([^/.]+)(?:\.[0-9a-f]{16})?\.json$")


def find_orphans(
    keys: Iterable[str],
    referenced: set[str],
    known_runs: set[str],
    start: dt.date,
    end: dt.date,
) -> list[str]:
    """Keys of the strategy's objects that nothing refers to.

    A dated object (``.../2025-03-03_...``) within ``start`` .. ``end`` must be a row's object
    (its version or latest copy); a manifest (``manifests/{strategy}/{asset}/{run_id}...``) must
    belong to a run that wrote lineage rows. Objects dated outside the range are not judged.
    """
    orphans = []
    for key in keys:
        if key in referenced:
            continue
        manifest = _MANIFEST.match(key)
        if manifest:
            if manifest.group(1) not in known_runs:
                orphans.append(key)
            continue
        dated = _DATED.search(key)
        if dated is None:
            orphans.append(key)  # not of the layout at all
            continue
        try:
            day = dt.date.fromisoformat(dated.group(1))
        except ValueError:
            orphans.append(key)
            continue
        if start <= day <= end:
            orphans.append(key)
    return orphans
