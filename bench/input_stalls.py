"""Event-loop stalls over the reliability corpus: how long any input holds the loop.

    .venv/bin/python bench/input_stalls.py [--repeats 3]

Every corpus case (tests/reliability/corpus/) runs ``--repeats`` times, interleaved (case order
shuffled per repeat), with a probe task that sleeps 10 ms at a time and records how late it wakes;
the case's outcome is checked as in the test. Per case the *smallest* worst-lateness over the repeats
is the input's own stall (an input that holds the loop does so every time; a busy neighbour on a
shared machine does not), and the largest is reported too. Writes bench/results/input_stalls.json
and input_stalls.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.reliability.corpus import Env, all_cases  # noqa: E402
from tests.reliability.corpus.runner import check_case  # noqa: E402
from tests.reliability.image_host import CORPUS_DNS, FakeDNS, ImageHost  # noqa: E402

RESULTS = REPO / "bench" / "results"


async def measure(repeats: int, seed: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    import r3graph.image_fetch

    r3graph.image_fetch.resolve = FakeDNS(CORPUS_DNS).resolve  # type: ignore[assignment]
    cases = all_cases()
    stalls: dict[str, list[float]] = {c.id: [] for c in cases}  # loop held (OS run-queue waits excluded)
    late: dict[str, list[float]] = {c.id: [] for c in cases}  # plain lateness, contention included
    order = random.Random(seed)
    with ImageHost() as host, tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):
            shuffled = cases[:]
            order.shuffle(shuffled)
            for index, case in enumerate(shuffled):
                folder = Path(tmp) / f"{repeat}-{index}"
                folder.mkdir()
                probe = await check_case(case, Env(folder, host.base, host.port))
                stalls[case.id].append(probe.worst_s)
                late[case.id].append(probe.worst_raw_s)
    return stalls, late


def report(stalls: dict[str, list[float]], late: dict[str, list[float]], repeats: int,
           seconds: float) -> tuple[dict[str, Any], str]:
    cases = {c.id: c for c in all_cases()}
    own = {case_id: min(values) for case_id, values in stalls.items()}
    worst_case = max(own, key=own.__getitem__)
    by_class: dict[str, tuple[float, str]] = {}
    for case_id, value in own.items():
        cls = cases[case_id].cls
        if value >= by_class.get(cls, (-1.0, ""))[0]:
            by_class[cls] = (value, case_id)
    summary = {
        "cases": len(stalls), "repeats": repeats, "seconds": round(seconds, 1),
        "worst_stall_ms": round(own[worst_case] * 1000, 1), "worst_case": worst_case,
        "worst_single_run_ms": round(max(max(v) for v in stalls.values()) * 1000, 1),
        "worst_plain_lateness_ms": round(max(min(v) for v in late.values()) * 1000, 1),
        "cases_over_100ms": sum(v > 0.1 for v in own.values()),
        "by_class_ms": {cls: {"worst_ms": round(v * 1000, 1), "case": cid} for cls, (v, cid) in by_class.items()},
        "per_case_ms": {cid: [round(x * 1000, 1) for x in values] for cid, values in stalls.items()},
        "machine": f"{platform.machine()}, {platform.python_version()}; shared with other jobs",
    }
    top = sorted(own.items(), key=lambda item: -item[1])[:10]
    lines = [
        "# Event-loop stalls over the reliability corpus (`bench/input_stalls.py`)", "",
        f"`.venv/bin/python bench/input_stalls.py --repeats {repeats}`: {len(stalls)} cases x {repeats} "
        f"interleaved repeats, {seconds:.0f} s. A probe sleeps 10 ms at a time on the loop and records its "
        "lateness minus the time the OS kept the loop's thread waiting for a CPU (schedstat); per case the "
        "smallest worst stall over the repeats is the input's own (the machine is shared, so single runs "
        "also carry neighbours' noise).", "",
        f"- worst stall caused by an input: **{summary['worst_stall_ms']} ms** ({worst_case})",
        f"- cases whose every repeat stalled over 100 ms: {summary['cases_over_100ms']} of {len(stalls)}",
        f"- worst single run (noise included): {summary['worst_single_run_ms']} ms",
        f"- plain lateness, OS run-queue waits included (best repeat, worst case): "
        f"{summary['worst_plain_lateness_ms']} ms; load average at the end: {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs", "",
        "| class | worst stall (ms) | case |", "|---|---|---|",
        *[f"| {cls} | {v['worst_ms']} | {v['case']} |" for cls, v in summary["by_class_ms"].items()],
        "", "Ten largest:", "", "| case | stall per repeat (ms) |", "|---|---|",
        *[f"| {cid} | {', '.join(str(x) for x in summary['per_case_ms'][cid])} |" for cid, _ in top],
    ]
    return summary, "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    started = time.monotonic()
    stalls, late = asyncio.run(measure(args.repeats, args.seed))
    summary, markdown = report(stalls, late, args.repeats, time.monotonic() - started)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "input_stalls.json").write_text(json.dumps(summary, indent=1) + "\n")
    (RESULTS / "input_stalls.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
