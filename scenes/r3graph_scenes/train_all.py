"""Train every shipped scene-world model from scratch, in one command (what ``make train`` runs):

    python -m r3graph_scenes.train_all --models scenes/r3graph_scenes/models

Two lanes run side by side, one core each:

- understanding: scenes-vlm (:mod:`r3graph_scenes.model.train`);
- generation: the image tokenizer (:mod:`r3graph_scenes.imagegen.train_tokenizer`), then scenes-imagegen
  on the tokenizer's codes (:mod:`r3graph_scenes.imagegen.train`).

When the understanding lane ends, the generator takes the freed core (``--threads-later``). Its training
steps are bit-identical on 1 and 2 torch threads on this CPU (bf16 autocast included; checked by
comparing weights after 30 steps), and every schedule runs on steps alone, so neither the moment of the
switch nor the machine's speed changes the weights. On a quiet 2-core machine this takes about 50 minutes
where running the three one after another took about 65.

Each child's output is printed with its model's name in front. ``MODELS/training_schedule.json`` records
every command, when it started and ended (minutes from the start), its exit code, and the total. If a
command fails, the other lane's running command is stopped (only processes this script started) and the
exit code is the failed command's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Step:
    name: str
    argv: list[str]


@dataclass
class Lane:
    name: str
    steps: list[Step]
    # Written when every step of this lane has succeeded (the generator watches it to take the core).
    done_file: Path | None = None
    records: list[dict] = field(default_factory=list)


class StepFailed(RuntimeError):
    def __init__(self, step: Step, returncode: int) -> None:
        super().__init__(f"{step.name} exited with {returncode}: {' '.join(step.argv)}")
        self.returncode = returncode


def default_lanes(models: Path, python: str, core_free: Path) -> list[Lane]:
    """The recipes the model cards give, on one thread each until a core comes free."""
    vlm = [python, "-m", "r3graph_scenes.model.train", "--out", str(models / "scenes-vlm"), "--seed", "0",
           "--steps", "2400", "--lr", "1e-3", "--warmup", "200", "--perception-warmup", "1500",
           "--aux-weight", "1.0", "--self-draft-scenes", "256", "--threads", "1",
           # a guard, not a budget: one thread beside the other lane takes about 38 minutes
           "--max-minutes", "58"]
    tokenizer = [python, "-m", "r3graph_scenes.imagegen.train_tokenizer",
                 "--out", str(models / "scenes-imagegen" / "tokenizer"), "--threads", "1"]
    generator = [python, "-m", "r3graph_scenes.imagegen.train", "--out", str(models / "scenes-imagegen"),
                 "--threads", "1", "--threads-later", "2", "--threads-later-when", str(core_free)]
    return [Lane("understanding", [Step("scenes-vlm", vlm)], done_file=core_free),
            Lane("generation", [Step("tokenizer", tokenizer), Step("scenes-imagegen", generator)])]


async def _relay(stream: asyncio.StreamReader, prefix: str) -> None:
    while line := await stream.readline():
        sys.stdout.write(f"[{prefix}] {line.decode(errors='replace')}")
        sys.stdout.flush()


async def _run_step(step: Step, t0: float, records: list[dict]) -> None:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*step.argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    try:
        await _relay(proc.stdout, step.name)
        returncode = await proc.wait()
    except asyncio.CancelledError:
        # The other lane failed: stop the child this lane started, and wait for it to go.
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        raise
    # Recorded before a failure is raised, so the schedule says which step failed and when.
    shown = ["python", *step.argv[1:]] if step.argv[0] == sys.executable else step.argv  # no local paths
    records.append({"name": step.name, "argv": shown, "returncode": returncode,
                    "started_min": round((started - t0) / 60, 2),
                    "ended_min": round((time.monotonic() - t0) / 60, 2)})
    if returncode:
        raise StepFailed(step, returncode)


async def _run_lane(lane: Lane, t0: float) -> None:
    for step in lane.steps:
        await _run_step(step, t0, lane.records)
    if lane.done_file is not None:
        lane.done_file.touch()


async def run_lanes(lanes: list[Lane]) -> float:
    """Run the lanes side by side; returns the wall minutes. The first failing step cancels the rest."""
    t0 = time.monotonic()
    try:
        async with asyncio.TaskGroup() as group:
            for lane in lanes:
                group.create_task(_run_lane(lane, t0))
    except* StepFailed as failures:
        raise failures.exceptions[0] from None
    return (time.monotonic() - t0) / 60


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("scenes/r3graph_scenes/models"),
                    help="folder to write scenes-vlm/ and scenes-imagegen/ into (the shipped one by default)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="r3graph-train-") as scratch:
        lanes = default_lanes(args.models, sys.executable, Path(scratch) / "core-free")
        if args.dry_run:
            for lane in lanes:
                for step in lane.steps:
                    print(f"{lane.name}: {' '.join(step.argv)}")
            return 0
        (args.models / "scenes-imagegen").mkdir(parents=True, exist_ok=True)
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        returncode, minutes = 0, None
        try:
            minutes = asyncio.run(run_lanes(lanes))
        except StepFailed as failed:
            print(f"train_all: {failed}", file=sys.stderr)
            returncode = failed.returncode
        schedule = {"started": started, "total_minutes": None if minutes is None else round(minutes, 2),
                    "returncode": returncode,
                    "machine": f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} CPUs",
                    "lanes": {lane.name: lane.records for lane in lanes}}
        (args.models / "training_schedule.json").write_text(json.dumps(schedule, indent=1) + "\n")
        if minutes is not None:
            print(f"train_all: every model trained in {minutes:.1f} min; schedule in "
                  f"{args.models / 'training_schedule.json'}")
        return returncode


if __name__ == "__main__":
    sys.exit(main())
