"""The result of one ``verify`` and the table it prints."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ibkr_assets.verification.checks import CHECKS, Discrepancy


@dataclass
class VerificationResult:
    """What one verify found. ``checked``: items looked at per check (None: not checked, with
    the reason in ``skipped``); ``orphans`` are listed whether deleted or not."""

    strategy_id: str
    start: dt.date
    end: dt.date
    checked: dict[str, int | None] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    discrepancies: list[Discrepancy] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    orphans_deleted: int = 0
    duration_ms: int = 0

    @property
    def ok(self) -> bool:
        return not self.discrepancies

    def found(self, check: str) -> int:
        return sum(1 for d in self.discrepancies if d.check == check)

    def summary(self) -> dict[str, dict]:
        """Per check: items checked, discrepancies, and why it was skipped if it was."""
        return {
            check: {
                "checked": self.checked.get(check),
                "discrepancies": self.found(check),
                **({"skipped": self.skipped[check]} if check in self.skipped else {}),
            }
            for check in CHECKS
        }


_WHAT = {
    "services": "database, object store, MLflow reachable",
    "objects": "row objects exist, sha256 matches",
    "materializations": "Dagster events <-> lineage rows",
    "orders": "order records agree with the book",
    "portfolio": "snapshots = recomputed from fills",
    "orphans": "objects no row references",
}


def format_table(result: VerificationResult, shown: int = 50) -> str:
    """The summary table, then each discrepancy (the first ``shown``) and the orphans."""
    lines = [
        f"verify '{result.strategy_id}' {result.start} .. {result.end}: "
        f"{'OK' if result.ok else f'{len(result.discrepancies)} discrepancy(ies)'} "
        f"({result.duration_ms / 1000:.1f} s)",
        "",
        f"  {'check':<17} {'what':<42} {'checked':>8} {'found':>6}  result",
    ]
    for check in CHECKS:
        checked = result.checked.get(check)
        found = result.found(check)
        status = "ok" if not found else "FAIL"
        if check in result.skipped:
            status = f"skipped: {result.skipped[check]}"
        elif check == "orphans" and result.orphans_deleted:
            status = f"{status} ({result.orphans_deleted} deleted)"
        lines.append(
            f"  {check:<17} {_WHAT[check]:<42} {'-' if checked is None else checked:>8} "
            f"{found:>6}  {status}"
        )
    problems = [d for d in result.discrepancies if d.check != "orphans"]
    if problems:
        lines += ["", "Discrepancies:"]
        lines += [f"  [{d.check}] {d.subject}: {d.detail}" for d in problems[:shown]]
        if len(problems) > shown:
            lines.append(f"  ... and {len(problems) - shown} more")
    if result.orphans:
        verb = "deleted" if result.orphans_deleted else "not deleted; --delete-orphans removes them"
        lines += ["", f"Orphan objects ({len(result.orphans)}, {verb}):"]
        lines += [f"  {key}" for key in result.orphans[:shown]]
        if len(result.orphans) > shown:
            lines.append(f"  ... and {len(result.orphans) - shown} more")
    return "\n".join(lines)
