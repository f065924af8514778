"""Self-distillation, measured: fine-tune scenes-imagegen on R3's own trajectories and score one-shot
generation on the held-out prompts before and after, against a control that trains as long without them.

    .venv/bin/python bench/self_distill.py                   # everything (about an hour on a 2-core CPU)
    .venv/bin/python bench/self_distill.py --stage report    # re-write the results from what is in WORK

Stages (each reuses what an earlier one left in --work, .cache/self_distill by default):

1. prompts: --prompts distinct TRAINING prompts (half world captions, half GenEval-template; from
   the generator's own training pairs, scenes/r3graph_scenes/imagegen/data.py), never a held-out one;
2. collect: ``r3graph export --output image`` over them: the learned generator behind the image server
   (sampled, temperature 1, image seed --seed + i for prompt i), scenes-vlm as judge (reflect judge,
   --max-rounds 3), --concurrency runs at once, no run started after --collect-minutes;
3. train: from a copy of the shipped weights, --steps steps on the original training mix, with
   --extra-share of the generation rows from (prompt -> final image the judge passed), encoded by the
   shipped image tokenizer ("distilled"); the same steps and mix with no extra rows ("control: more
   training"); and with the same runs' FIRST drafts instead of their final images ("control: own
   samples");
4. eval: one-shot generation on geneval_prompts(300) (the held-out set), greedy and sampled, scored
   from pixels by the detector; paired bootstrap intervals (same prompts, same sampling seed).

Writes bench/results/self_distillation.md and .json. Weights stay under --work (never committed).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "scenes/r3graph_scenes/models/scenes-imagegen"
RESULTS = REPO / "bench/results"
PROMPT_SEED = 4711  # the sample of training prompts; no other use
COLLECT_SEED = 70000  # image seed of prompt i is COLLECT_SEED + i
CONDITIONS = {"distilled": "final", "control_more_training": None, "control_first_drafts": "first"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stage_prompts(args: argparse.Namespace) -> Path:
    from r3graph_scenes.imagegen.distill import training_prompts

    path = args.work / "prompts.txt"
    path.write_text("\n".join(training_prompts(args.prompts, PROMPT_SEED)) + "\n")
    log(f"prompts: {args.prompts} training prompts -> {path}")
    return path


def stage_collect(args: argparse.Namespace, prompts: Path) -> dict[str, Any]:
    runs = args.work / "runs.jsonl"
    cmd = [sys.executable, "-m", "r3graph.cli", "export", "--output", "image", "--prompts", str(prompts),
           "--image-server", "learned", "--image-model", str(SHIPPED), "--reflect", "judge", "--max-rounds", "3",
           "--seed", str(COLLECT_SEED), "--concurrency", str(args.concurrency),
           "--max-minutes", str(args.collect_minutes), "--out", str(runs)]
    log("collect: " + shlex.join(cmd))
    t0 = time.perf_counter()
    with (args.work / "collect.log").open("w") as out:
        done = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - t0
    log(f"collect: exit {done.returncode} after {wall / 60:.1f} min")
    info = {"command": shlex.join(["r3graph", *cmd[3:]]), "wall_minutes": round(wall / 60, 2), "exit": done.returncode}
    (args.work / "collect.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def collection_counts(runs: Path) -> dict[str, Any]:
    """How many runs, how many the judge passed, and how many of those the detector reads as exact."""
    from r3graph.export_images import load_image, read_image_jsonl
    from r3graph_scenes.evaluation.image_scores import score_image
    from r3graph_scenes.imagegen.distill import GENEVAL_PREFIX

    records = list(read_image_jsonl(runs))
    counts: dict[str, Any] = {"runs": len(records), "errors": sum(r.error is not None for r in records),
                              "stop_reasons": {}, "by_kind": {}}
    for r in records:
        counts["stop_reasons"][str(r.stop_reason)] = counts["stop_reasons"].get(str(r.stop_reason), 0) + 1
        kind = "geneval_template" if r.prompt.startswith(GENEVAL_PREFIX) else "caption"
        first = r.rounds[0].image if r.rounds else None
        row = counts["by_kind"].setdefault(kind, {"runs": 0, "passed": 0, "passed_exact": 0, "first_exact": 0,
                                                  "final_exact": 0, "passed_first_exact": 0})
        first_exact = first is not None and score_image(r.prompt, load_image(runs, first)).exact
        final_exact = r.final is not None and score_image(r.prompt, load_image(runs, r.final)).exact
        row["runs"] += 1
        row["first_exact"] += first_exact
        row["final_exact"] += final_exact
        if r.passed:
            row["passed"] += 1
            row["passed_exact"] += final_exact
            row["passed_first_exact"] += first_exact
    for key in ("runs", "passed", "passed_exact", "first_exact", "final_exact", "passed_first_exact"):
        counts[key] = sum(k[key] for k in counts["by_kind"].values())
    counts["rounds_per_run"] = round(sum(len(r.rounds) for r in records) / max(1, len(records)), 3)
    return counts


def stage_train(args: argparse.Namespace, name: str, which: str | None) -> dict[str, Any]:
    import numpy as np

    from r3graph_scenes.imagegen.distill import distill_pairs, encode_pngs, finetune
    from r3graph_scenes.imagegen.fsq import ImageTokenizer

    pairs = distill_pairs(args.work / "runs.jsonl", which) if which else []  # type: ignore[arg-type]
    tokenizer = ImageTokenizer.load(SHIPPED / "tokenizer")
    codes = encode_pngs(tokenizer, [png for _, png in pairs]) if pairs else np.zeros((0, 64), dtype=np.int64)
    log(f"train {name}: {len(pairs)} extra pairs, {args.steps} steps")
    summary = finetune(SHIPPED, args.work / name, [p for p, _ in pairs], codes, steps=args.steps,
                       extra_share=args.extra_share, seed=args.train_seed, threads=1)
    log(f"train {name}: {summary['minutes']} min")
    return summary


def stage_eval(args: argparse.Namespace, name: str) -> dict[str, Any]:
    from r3graph_scenes.imagegen.distill import generation_flags

    t0 = time.perf_counter()
    flags = generation_flags(SHIPPED if name == "shipped" else args.work / name, args.eval_prompts)
    flags["minutes"] = round((time.perf_counter() - t0) / 60, 2)
    (args.work / f"eval-{name}.json").write_text(json.dumps(flags) + "\n")
    log(f"eval {name}: greedy {sum(flags['greedy'])}, sampled {sum(flags['sampled'])} of {args.eval_prompts}")
    return flags


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / ".cache/self_distill")
    ap.add_argument("--stage", choices=["all", "collect", "train", "eval", "report"], default="all",
                    help="all, or one stage alone (on what --work holds)")
    ap.add_argument("--prompts", type=int, default=1200, help="training prompts to collect on (at most)")
    ap.add_argument("--collect-minutes", type=float, default=16.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--extra-share", type=float, default=0.25, help="share of generation rows from R3's runs")
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--eval-prompts", type=int, default=300)
    ap.add_argument("--results-name", default="self_distillation", help="bench/results/NAME.md and NAME.json")
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    for key, value in {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}.items():
        os.environ.setdefault(key, value)
    stages = {"prompts", "collect", "train", "eval", "report"} if args.stage == "all" else {args.stage}
    if "collect" in stages:
        stage_collect(args, stage_prompts(args))
    times: dict[str, Any] = {}
    if "train" in stages:
        for name in args.conditions:
            times[name] = stage_train(args, name, CONDITIONS[name])
        (args.work / "train.json").write_text(json.dumps(times, indent=1) + "\n")
    if "eval" in stages:
        for name in ["shipped", *args.conditions]:
            stage_eval(args, name)
    sys.path.insert(0, str(Path(__file__).parent))  # the report's own module, beside this script
    from self_distill_report import write_report

    write_report(args, collection_counts(args.work / "runs.jsonl"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
