"""Run every benchmark section and print one table.

Usage: ``python -m benchmarks [--scale N] [--only SECTION ...]``

Each section module exposes ``run(scale: float) -> list[Row]``; a row is a dict with keys
``section``, ``case``, ``value`` (a number), ``unit``, and optionally ``target`` (text) and
``ok`` (bool or None when there is no target).
"""

from __future__ import annotations

import argparse
import importlib
import sys

SECTIONS = {
    "lineage": "benchmarks.lineage_bench",
    "indicators": "benchmarks.indicators_bench",
    "charts": "benchmarks.charts_bench",
    "workflow": "benchmarks.workflow_bench",
    "verify": "benchmarks.verify_bench",
    "portfolio": "benchmarks.portfolio_bench",
    "viewer": "benchmarks.viewer_bench",
    "production": "benchmarks.production_bench",
    "celery": "benchmarks.celery_bench",
}


def _format(rows: list[dict]) -> str:
    headers = ["section", "case", "value", "unit", "target", "ok"]
    cells = [
        [
            str(r["section"]),
            str(r["case"]),
            f"{r['value']:.3f}" if isinstance(r["value"], float) else str(r["value"]),
            str(r["unit"]),
            str(r.get("target") or ""),
            {True: "yes", False: "NO", None: ""}[r.get("ok")],
        ]
        for r in rows
    ]
    widths = [
        max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply problem sizes (default 1)"
    )
    parser.add_argument(
        "--only", nargs="*", choices=sorted(SECTIONS), help="run only these sections"
    )
    args = parser.parse_args(argv)
    rows: list[dict] = []
    for name in args.only or SECTIONS:
        module = importlib.import_module(SECTIONS[name])
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(module.run(args.scale))
    print(_format(rows))
    return 0 if all(r.get("ok") is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
