"""bench/self_distillation.md from what bench/self_distill.py left in its work folder.

Text below the NOTES marker in an existing results file is kept (the hand-written reading of the
figures), so re-writing the figures does not drop it."""

from __future__ import annotations

import json
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

from r3graph.evaluation.stats import paired_bootstrap
from r3graph_scenes.imagegen.evaluate_generator import interval

RESULTS = Path(__file__).parent / "results"
NOTES = "<!-- notes: kept when the figures are re-written -->"
NAMES = {"shipped": "shipped (before)", "distilled": "distilled (after: + R3's passed final images)",
         "control_more_training": "control: same steps and mix, no R3 data",
         "control_first_drafts": "control: same steps and mix, the same runs' FIRST drafts"}


def _rate(k: int, n: int) -> str:
    lo, hi = interval(k, n)
    return f"{k / n:.3f} ({k}/{n}, 95% CI {lo:.3f}-{hi:.3f})" if n else "— (0)"


def _delta(a: list[bool], b: list[bool]) -> dict[str, Any]:
    d = paired_bootstrap([float(x) for x in a], [float(x) for x in b], resamples=4000)
    return {"mean": d.mean, "low": d.low, "high": d.high, "gains": sum(y and not x for x, y in zip(a, b, strict=True)),
            "losses": sum(x and not y for x, y in zip(a, b, strict=True))}


def _fmt(d: dict[str, Any]) -> str:
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] ({d['gains']} gained / {d['losses']} lost)"


def write_report(args: Any, counts: dict[str, Any]) -> Path:
    work: Path = args.work
    collect = json.loads((work / "collect.json").read_text()) if (work / "collect.json").is_file() else {}
    train = json.loads((work / "train.json").read_text()) if (work / "train.json").is_file() else {}
    evals = {name: json.loads((work / f"eval-{name}.json").read_text())
             for name in NAMES if (work / f"eval-{name}.json").is_file()}
    prompts = sum(1 for line in (work / "prompts.txt").read_text().splitlines() if line.strip())
    deltas: dict[str, dict[str, Any]] = {}
    pairs = [("distilled", "shipped"), ("distilled", "control_more_training"), ("distilled", "control_first_drafts"),
             ("control_more_training", "shipped"), ("control_first_drafts", "shipped")]
    for after, before in pairs:
        if after in evals and before in evals:
            deltas[f"{after} - {before}"] = {mode: _delta(evals[before][mode], evals[after][mode])
                                             for mode in ("greedy", "sampled")}
    lines = [
        "# Self-distillation of scenes-imagegen on R3's own trajectories (bench/self_distill.py)", "",
        "Command: `python bench/self_distill.py` (all stages; one alone: `--stage collect|train|eval|report`); "
        f"this file written by `{shlex.join(['python', 'bench/self_distill.py', *sys.argv[1:]])}`, work folder "
        f"{work.relative_to(work.parents[1]) if len(work.parents) > 1 else work}; machine: {platform.machine()}, "
        f"Python {platform.python_version()}, 2 CPUs shared with other jobs.", "",
        "## 1. Collection: R3 (image mode) on training prompts", "",
        f"`{collect.get('command', '(not run)')}`  ",
        f"Wall time {collect.get('wall_minutes', '?')} min (two vLLM engines on CPU: the learned generator behind "
        "the image server, sampled at temperature 1 with image seed 70000 + i for prompt i; scenes-vlm as judge, "
        "reflect judge, --max-rounds 3 = 1 generation + up to 3 edits).", "",
        f"Prompts: {prompts} distinct TRAINING prompts (seed 4711; half GenEval-template, half world captions, from "
        "the generator's own training pairs; none held out); runs done before the time budget: "
        f"{counts['runs']} (errors {counts['errors']}); mean rounds per run {counts['rounds_per_run']}; stop reasons "
        f"{counts['stop_reasons']}.", "",
        "| prompts | runs | judge passed the final image | of those, detector reads exact (judge precision) "
        "| first image exact | final image exact |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for kind, row in [*sorted(counts["by_kind"].items()), ("all", counts)]:
        lines.append(f"| {kind} | {row['runs']} | {_rate(row['passed'], row['runs'])} | "
                     f"{_rate(row['passed_exact'], row['passed'])} | {_rate(row['first_exact'], row['runs'])} | "
                     f"{_rate(row['final_exact'], row['runs'])} |")
    lines += ["", "Detector = scenes/r3graph_scenes/detector.py on the PNG's pixels (never the judge, never a stored "
              "scene). "
              f"Of the passed runs, {counts['passed_first_exact']} had an exact FIRST image (the first-drafts control "
              "trains on those runs' first images).", "",
              "## 2. Fine-tuning (copies under the work folder; the shipped weights are never written)", "",
              "| model | extra (prompt -> image) pairs | extra rows per batch of 32 | steps | lr | minutes "
              "| last losses |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, t in train.items():
        last = t["log"][-1] if t["log"] else {}
        losses = ", ".join(f"{k} {v}" for k, v in last.items() if k.endswith("_loss"))
        lines.append(f"| {NAMES[name]} | {t['extra_pairs']} | {t['extra_rows_per_batch']} | {t['steps']} | {t['lr']} | "
                     f"{t['minutes']} | {losses} |")
    lines += ["", "Each batch: 11 edit triples + 21 generation rows of the original training data (data.py, "
              "DataConfig defaults), of which the extra rows replace some; AdamW restarted, warm-up 20 steps then "
              "train.py's cosine to 10%; training seed "
              f"{sorted({t['seed'] for t in train.values()})}; 1 torch thread; bf16 autocast. Extra images are the "
              "PNGs of the runs, re-encoded by the shipped image tokenizer.", "",
              "## 3. One-shot generation on the held-out prompts", "",
              "geneval_prompts(300) at its default seed (content held out of all training, see MODEL_CARD.md), one "
              "image per prompt, scored from pixels by the detector as evaluate_generator.py scores it; sampled = "
              "temperature 1, seed 9001, the same for every model (paired).", "",
              "| model | greedy exact | sampled exact | eval minutes |", "| --- | --- | --- | --- |"]
    for name, e in evals.items():
        n = len(e["greedy"])
        lines.append(f"| {NAMES[name]} | {_rate(sum(e['greedy']), n)} | {_rate(sum(e['sampled']), n)} | "
                     f"{e.get('minutes', '?')} |")
    lines += ["", "Paired differences (same prompts; percentile bootstrap, 4000 resamples, 95%):", "",
              "| difference | greedy | sampled |", "| --- | --- | --- |"]
    for name, d in deltas.items():
        lines.append(f"| {name} | {_fmt(d['greedy'])} | {_fmt(d['sampled'])} |")
    if evals:
        cats = sorted(set(next(iter(evals.values()))["categories"]))
        lines += ["", "Per category, sampled exact (n each):", "",
                  "| category | " + " | ".join(evals) + " |", "| --- |" + " --- |" * len(evals)]
        for cat in cats:
            cells = []
            for e in evals.values():
                flags = [f for f, c in zip(e["sampled"], e["categories"], strict=True) if c == cat]
                cells.append(f"{sum(flags)}/{len(flags)}")
            lines.append(f"| {cat} | " + " | ".join(cells) + " |")
    lines += ["", "## 4. Understanding after", "",
              "Not re-measured, because it cannot have changed: the judge (scenes-vlm, the understanding side) is a "
              "separate model that this experiment does not train; only the generator's weights move. Its "
              "understanding figures are those of bench/results/quality*.md and its judging on this data is the "
              "precision column above. (The issue's premise is one network that understands and generates; here "
              "they are two, see issue 14 item 2.)", ""]
    name = getattr(args, "results_name", "self_distillation")
    out = RESULTS / f"{name}.md"
    notes = ""
    if out.is_file() and NOTES in out.read_text():
        notes = out.read_text().split(NOTES, 1)[1]
    out.write_text("\n".join(lines) + "\n" + NOTES + (notes or "\n"))
    (RESULTS / f"{name}.json").write_text(json.dumps(
        {"collection": counts, "collect": collect, "train": train, "deltas": deltas,
         "eval": {k: {m: sum(v[m]) for m in ("greedy", "sampled")} | {"n": len(v["greedy"])}
                  for k, v in evals.items()}}, indent=1) + "\n")
    return out
