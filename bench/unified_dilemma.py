"""The understanding-vs-generation dilemma on one tiny network, at equal compute (issue 14, item 6).

    .venv/bin/python bench/unified_dilemma.py --run  # train U, U+G, G in turn, evaluate each (~75 min, shared CPU)
    .venv/bin/python bench/unified_dilemma.py        # only rewrite the report from .cache/unified/*/eval.json

Three models of scenes-imagegen's shape (:mod:`r3graph_scenes.imagegen.unified_train`): U (caption, VQA,
judge over the generator's image codes), G (generation + edit, the shipped recipe) and U+G (half of each
batch each), same steps, batch size, schedule and seed; evaluated item by item on held-out data
(:mod:`r3graph_scenes.imagegen.unified_eval`). Writes bench/results/unified_dilemma.md and .json.
Weights stay under .cache/unified/ (not shipped).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from r3graph.evaluation.stats import paired_bootstrap
from r3graph_scenes.imagegen.evaluate_generator import interval
from r3graph_scenes.imagegen.unified_data import UnifiedVocab
from r3graph_scenes.imagegen.vocab import Vocab

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
RUNS = ROOT / ".cache" / "unified"
ORDER = ("u", "ug", "g")  # training order: the dilemma's pair first
NAMES = {"u": "U (understanding only)", "g": "G (generation + edit only)", "ug": "U+G (both, half the batch each)"}
FAMILIES = ("existence", "colour", "shape", "count", "relation")


def run_dir(mode: str, seed: int) -> Path:
    return RUNS / (mode if seed == 0 else f"{mode}-s{seed}")


def run_all(steps: int, warmup: int, threads: int, seed: int, modes: Sequence[str]) -> None:
    for mode in modes:
        out = run_dir(mode, seed)
        for cmd in ([sys.executable, "-m", "r3graph_scenes.imagegen.unified_train", "--mode", mode, "--steps",
                     str(steps), "--warmup", str(warmup), "--threads", str(threads), "--seed", str(seed),
                     "--out", str(out)],
                    [sys.executable, "-m", "r3graph_scenes.imagegen.unified_eval", "--model", str(out), "--out",
                     str(out / "eval.json"), "--threads", str(threads)]):
            print(" ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT)


def fmt_rate(flags: Sequence[bool]) -> str:
    k, n = int(sum(flags)), len(flags)
    lo, hi = interval(k, n)
    return f"{k / n:.3f} ({k}/{n}, {lo:.3f}-{hi:.3f})"


def fmt_diff(a: Sequence[float], b: Sequence[float]) -> str:
    d = paired_bootstrap([float(x) for x in a], [float(x) for x in b], resamples=4000)
    star = " *" if d.significant else ""
    return f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}]{star}"


def metrics(ev: dict) -> dict[str, list]:
    """Every per-item measure, by row name (the same items for every model)."""
    out: dict[str, list] = {}
    if "understanding" in ev:
        out |= understanding_metrics(ev["understanding"])
    if "generation" in ev:
        out |= generation_metrics(ev["generation"])
    return out


def understanding_metrics(und: dict) -> dict[str, list]:
    out: dict[str, list] = {
        "caption exact (scene metric)": [x["exact"] for x in und["caption"]],
        "caption exact (string)": [x["string_exact"] for x in und["caption"]],
        "VQA overall": [x["correct"] for x in und["vqa"]],
    }
    out |= {f"VQA {f}": [x["correct"] for x in und["vqa"] if x["family"] == f] for f in FAMILIES}
    out["judge decision (pass iff right)"] = [x["decision"] for x in und["judge"]]
    out["judge flags a wrong painting"] = [x["decision"] for x in und["judge"] if x["expected"] != "pass"]
    out["judge passes a right image"] = [x["decision"] for x in und["judge"] if x["expected"] == "pass"]
    out["judge writes the exact edit (wrong paintings)"] = [x["exact"] for x in und["judge"] if x["expected"] != "pass"]
    return out


def generation_metrics(gen: dict) -> dict[str, list]:
    out: dict[str, list] = {"generation exact (detector)": [x["exact"] for x in gen["generation"]]}
    for cat in sorted({x["category"] for x in gen["generation"]}):
        out[f"generation exact: {cat}"] = [x["exact"] for x in gen["generation"] if x["category"] == cat]
    for aspect in ("objects", "colours", "counts"):
        out[f"generation {aspect}"] = [x[aspect] for x in gen["generation"]]
    out["edit fixes the painting"] = [x["fixed"] for x in gen["edit"]]
    out["edit = exact editor's result"] = [x["target"] for x in gen["edit"]]
    return out


def chance(ev: dict) -> dict[str, list]:
    """Answers that need no image: the training data's majority answer per VQA family and most frequent
    caption; the judge always giving the larger class's decision."""
    und, maj = ev["understanding"], ev["chance"]
    out: dict[str, list] = {
        "caption exact (string)": [x["truth"] == maj["caption_majority"] for x in und["caption"]],
        "VQA overall": [x["answer"] == maj["vqa_majority"][x["family"]] for x in und["vqa"]],
    }
    out |= {f"VQA {f}": [x["answer"] == maj["vqa_majority"][f] for x in und["vqa"] if x["family"] == f]
            for f in FAMILIES}
    wrong = [x["expected"] != "pass" for x in und["judge"]]
    majority_wrong = 2 * sum(wrong) >= len(wrong)
    out["judge decision (pass iff right)"] = [w == majority_wrong for w in wrong]
    return out


def nll(ev: dict, kind: str) -> list[float]:
    return [x["nll"] for x in ev["generation"][kind]]


def _rows(m: dict[str, dict[str, list]], models: list[str], gen: bool) -> list[str]:
    rows: list[str] = []
    for k in models:
        rows += [r for r in m[k] if r.startswith(("generation", "edit")) == gen and r not in rows]
    return rows


def _header(models: list[str], extra: str) -> list[str]:
    return ["| | " + " | ".join(NAMES[k].split(" (")[0] for k in models) + f" | {extra} |",
            "|---|" + "---|" * (len(models) + extra.count("|") + 1)]


def report(evals: dict[str, dict], logs: dict[str, dict], vlm: dict | None) -> tuple[str, dict]:
    m = {k: metrics(v) for k, v in evals.items()}
    und_models = [k for k in evals if "understanding" in evals[k]]
    gen_models = [k for k in evals if "generation" in evals[k]]
    n_new = len(UnifiedVocab(1000)) - len(Vocab(1000))
    a = next(iter(logs.values()))["args"]
    lines = ["# Understanding vs generation in one tiny network, at equal compute", "",
             "Issue 14 item 6 (the paper's dilemma). Three models of scenes-imagegen's shape (Llama, 4 layers, "
             f"hidden 256, MLP 512, the generator's word+code vocabulary plus {n_new} understanding tokens appended "
             f"after the codes), same steps ({a['steps']}), batch size ({a['batch_size']} sequences), schedule "
             f"(AdamW, peak {a['lr']}, {a['warmup']} warm-up steps, cosine to 10%), init/batch seed {a['seed']}, "
             f"data seed 2611, {a['threads']} torch thread each, trained one at a time on a 2-core CPU shared with "
             "three other workers (load average up to about 23 during the runs, so s/step varies):", ""]
    for mode, log in logs.items():
        last = log["log"][-1]
        losses = ", ".join(f"{k} {v}" for k, v in last.items() if k.endswith("_loss"))
        lines.append(f"- **{NAMES[mode]}**: sequences per step {log['plan']}; {log['steps_done']} steps in "
                     f"{log['train_minutes']} min ({last['s_per_step']} s/step); train loss over the last 25 steps: "
                     f"{losses}; evaluation {evals[mode]['eval_minutes']} min. `{log['command']}`")
    lines += ["", "Each model is evaluated on the side(s) it was trained for (the other side's task tokens were "
              "never in its training, so that score is chance by construction).", ""]
    ch: dict[str, list] = {}
    if und_models:
        ref = evals[und_models[0]]
        ch = chance(ref)
        pair = {"u", "ug"} <= set(und_models)
        lines += ["Held out: understanding on the shipped image tokenizer's codes of 300 renders of seed 12345 "
                  "(scenes-vlm's held-out scenes, and with `Random(12346)` its very questions), judge on "
                  "`held_out_edits(150)` (seed 7707; the wrong painting -> the judge's edit; the exact editor's "
                  "result -> pass, or the edit it still needs), greedy, decoding restricted to words. "
                  "Rates: k/n with two-sided 95% Clopper-Pearson. Differences: paired bootstrap over the same "
                  "items (4000 resamples, 95%), * = the interval excludes 0.", "",
                  "## Understanding: does adding generation cost understanding?", "",
                  *_header(und_models, "U+G - U | chance (no image)")]
        for row in _rows(m, und_models, gen=False):
            cells = [fmt_rate(m[k][row]) for k in und_models]
            diff = fmt_diff(m["u"][row], m["ug"][row]) if pair else "-"
            lines.append(f"| {row} | " + " | ".join(cells) + f" | {diff} | "
                         f"{fmt_rate(ch[row]) if row in ch else '-'} |")
        f1 = {k: [x["f1"] for x in evals[k]["understanding"]["caption"]] for k in und_models}
        lines.append("| caption F1 (mean) | " + " | ".join(f"{sum(v) / len(v):.3f}" for v in f1.values())
                     + f" | {fmt_diff(f1['u'], f1['ug']) if pair else '-'} | - |")
        for task in ("caption", "vqa", "judge"):
            if not all("nll" in x for k in und_models for x in evals[k]["understanding"][task]):
                continue
            vals = {k: [x["nll"] for x in evals[k]["understanding"][task]] for k in und_models}
            lines.append(f"| held-out NLL of the right {task} answer, per token (lower is better) | "
                         + " | ".join(f"{sum(v) / len(v):.3f}" for v in vals.values())
                         + f" | {fmt_diff(vals['u'], vals['ug']) if pair else '-'} | - |")
        lines += ["", "Chance: the training data's majority answer per family "
                  f"({ref['chance']['vqa_majority']}), and its most frequent caption; judge decision: always the "
                  "larger class (\"edit\" or \"pass\")."]
    if vlm:
        v = vlm["vqa"]
        lines += ["", "Reference, scenes-vlm (Idefics3, the shipped understanding model, trained separately and much "
                  "longer, reading the renders of the same 300 scenes, same questions; bench/results/scenes-vlm.json): "
                  f"caption exact {vlm['caption']['exact_match']:.3f}, F1 {vlm['caption']['f1']:.3f}; "
                  f"VQA overall {v['overall']:.3f}, "
                  + ", ".join(f"{f} {v[f]:.3f} (n={v['n'][f]})" for f in FAMILIES) + "."]
    if gen_models:
        pair = {"g", "ug"} <= set(gen_models)
        lines += ["", "## Generation: does adding understanding cost generation?", "",
                  "`geneval_prompts(300)` (default seed) and `held_out_edits(300)`, greedy, decoding restricted to "
                  "codes, images read from pixels by the detector (as the shipped model card).", "",
                  *_header(gen_models, "U+G - G")]
        for row in _rows(m, gen_models, gen=True):
            cells = [fmt_rate(m[k][row]) for k in gen_models]
            diff = fmt_diff(m["g"][row], m["ug"][row]) if pair else "-"
            lines.append(f"| {row} | " + " | ".join(cells) + f" | {diff} |")
        for kind, label in (("generation", "held-out NLL of a right image's codes, per code (lower is better)"),
                            ("edit", "held-out NLL of the exact edit's codes, per code")):
            vals = {k: nll(evals[k], kind) for k in gen_models}
            diff = fmt_diff(vals["g"], vals["ug"]) if pair else "-"
            lines.append(f"| {label} | " + " | ".join(f"{sum(x) / len(x):.3f}" for x in vals.values())
                         + f" | {diff} |")
    data = {"metrics": {k: {r: {"k": int(sum(v)), "n": len(v)} for r, v in mk.items()} for k, mk in m.items()},
            "chance": {r: {"k": int(sum(v)), "n": len(v)} for r, v in ch.items()},
            "nll": {k: {kind: sum(nll(evals[k], kind)) / len(nll(evals[k], kind)) for kind in ("generation", "edit")}
                    for k in gen_models},
            "training": {k: {kk: vv for kk, vv in v.items() if kk != "log"} | {"last": v["log"][-1]}
                         for k, v in logs.items()}}
    return "\n".join(lines) + "\n", data


def _mean_diff(a: dict, b: dict, side: str, task: str, key: str) -> str:
    xa, xb = [float(x[key]) for x in a[side][task]], [float(x[key]) for x in b[side][task]]
    return f"{sum(xa) / len(xa):.3f} -> {sum(xb) / len(xb):.3f}, {fmt_diff(xa, xb)}"


def replicates(steps: int) -> str:
    """The headline differences again for runs of other init/batch seeds (training-seed variation, which
    the paired bootstrap over items does not cover)."""
    lines: list[str] = []
    for d in sorted(RUNS.glob("*-s*/eval.json")):
        mode, seed = d.parent.name.split("-s")
        if mode != "ug":
            continue
        ug = json.loads(d.read_text())
        for other, side, rows in (("u", "understanding", (("vqa", "correct"), ("vqa", "nll"), ("caption", "nll"),
                                                           ("judge", "decision"), ("judge", "nll"))),
                                  ("g", "generation", (("generation", "exact"), ("generation", "nll"),
                                                       ("edit", "nll")))):
            f = run_dir(other, int(seed)) / "eval.json"
            if not f.is_file():
                continue
            base = json.loads(f.read_text())
            cells = [f"{task} {key}: {_mean_diff(base, ug, side, task, key)}" for task, key in rows]
            lines.append(f"- seed {seed}, {NAMES[other].split(' (')[0]} -> U+G: " + "; ".join(cells))
    if not lines:
        return ""
    return ("\n## Replicate with another init/batch seed\n\nSame recipe (" + str(steps) + " steps), "
            "`--seed` changed; value of the specialist -> value of U+G, then U+G minus the specialist with its "
            "paired-bootstrap interval:\n\n" + "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="store_true", help="train and evaluate the three models first")
    # 350 steps: what three runs and their evaluations fit in ~70 min on a 2-core machine shared with
    # three other workers (1.6-3 s a step on one thread); warm-up a tenth of it.
    ap.add_argument("--steps", type=int, default=350)
    ap.add_argument("--warmup", type=int, default=35)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="init and batch seed of the runs --run makes")
    ap.add_argument("--modes", default=",".join(ORDER), help="which runs --run makes, in order")
    ap.add_argument("--conclusion", default=str(RESULTS / "unified_dilemma_conclusion.md"),
                    help="hand-written conclusion appended to the report when the file exists")
    args = ap.parse_args(argv)
    if args.run:
        run_all(args.steps, args.warmup, args.threads, args.seed, args.modes.split(","))
    evals = {k: json.loads((RUNS / k / "eval.json").read_text()) for k in ORDER if (RUNS / k / "eval.json").is_file()}
    if not evals:
        raise SystemExit(f"no evaluations under {RUNS}; run with --run first")
    logs = {k: json.loads((RUNS / k / "training_log.json").read_text()) for k in evals}
    vlm_file = RESULTS / "scenes-vlm.json"
    vlm = json.loads(vlm_file.read_text()) if vlm_file.is_file() else None
    text, data = report(evals, logs, vlm)
    text += replicates(args.steps)
    conclusion = Path(args.conclusion)
    if conclusion.is_file():
        text += "\n" + conclusion.read_text()
    (RESULTS / "unified_dilemma.md").write_text(text)
    (RESULTS / "unified_dilemma.json").write_text(json.dumps(data, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
