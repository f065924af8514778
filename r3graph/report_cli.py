"""``r3graph report``: turn trajectories written by ``r3graph export`` into one HTML page.

    r3graph report runs.jsonl --out runs.html [--limit N]

The page is self-contained (images inline, no scripts, loads nothing); referenced input images are
embedded when found next to the JSONL file or where the export ran, and their hash still matches.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from r3graph.errors import R3InputError


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``report`` on an ``argparse`` subparsers object; returns the new parser."""
    p = subparsers.add_parser("report", help="write an HTML report of trajectories from `r3graph export`",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trajectories", type=Path, help="trajectory JSONL written by `r3graph export`")
    p.add_argument("--out", type=Path, default=None, help="HTML file to write (default: beside the JSONL, .html)")
    p.add_argument("--limit", type=int, default=None, help="only the first N runs")
    return p


def run_report(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from r3graph.report import write_trajectory_report

    source: Path = args.trajectories
    if not source.is_file():
        raise R3InputError(f"{source}: no such trajectory file; write one with `r3graph export --out {source}`")
    out = args.out or source.with_suffix(".html")
    try:
        path, count = write_trajectory_report(source, out, limit=args.limit)
    except (ValueError, ValidationError) as exc:  # json's and pydantic's errors are ValueErrors
        first = str(exc).splitlines()[0]
        raise R3InputError(f"{source}: not a trajectory file from `r3graph export` ({first})") from None
    print(f"r3graph report: {count} run(s) -> {path}", file=sys.stderr)
    return 0
