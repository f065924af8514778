"""Turn run records into the results table, the depth plot and the trajectory JSONL."""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from r3graph.evaluation.stats import paired_bootstrap
from r3graph_scenes.evaluation.quality import ONE_SHOT, Condition, RunRecord


def mean_or_nan(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def summarise(records: dict[str, list[RunRecord]], wall: dict[str, float]) -> list[dict[str, Any]]:
    """One row per condition; deltas are paired against one-shot on the same scenes."""
    base = sorted(records[ONE_SHOT.name], key=lambda r: r.scene_index)
    rows = []
    for name, runs in records.items():
        runs = sorted(runs, key=lambda r: r.scene_index)
        f1 = [r.score.f1 for r in runs]
        em = [float(r.score.exact_match) for r in runs]
        row: dict[str, Any] = {
            "condition": name,
            "scenes": len(runs),
            "f1": mean_or_nan(f1),
            "exact_match": mean_or_nan(em),
            "relation_accuracy": mean_or_nan([r.score.relation_accuracy for r in runs]),
            "hallucination_rate": mean_or_nan([r.score.hallucination_rate for r in runs]),
            "calls_per_scene": mean_or_nan([r.calls for r in runs]),
            "tokens_per_scene": mean_or_nan([r.input_tokens + r.output_tokens for r in runs]),
            "cached_share": sum(r.cached_input_tokens for r in runs) / max(1, sum(r.input_tokens for r in runs)),
            "seconds_per_run": mean_or_nan([r.seconds for r in runs]),
            "wall_seconds_per_scene": wall[name] / max(1, len(runs)),
            # refine made an exactly right first draft wrong / a wrong one exactly right
            "regressions": sum(r.first_score.exact_match and not r.score.exact_match for r in runs),
            "fixes": sum(not r.first_score.exact_match and r.score.exact_match for r in runs),
            "errors": sum(r.error is not None for r in runs),
        }
        if name != ONE_SHOT.name and [r.scene_index for r in runs] == [r.scene_index for r in base]:
            row["delta_f1"] = paired_bootstrap([r.score.f1 for r in base], f1).model_dump()
            row["delta_em"] = paired_bootstrap([float(r.score.exact_match) for r in base], em).model_dump()
        rows.append(row)
    return rows


def _delta(row: dict[str, Any], key: str, base: float) -> str:
    d = row.get(key)
    if not d:
        return "—"
    rel = f" ({100 * d['mean'] / base:+.1f}%)" if base and not math.isnan(base) else ""
    return f"{d['mean']:+.3f}{rel} [{d['low']:+.3f}, {d['high']:+.3f}]"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any], vqa: dict[str, float],
             reflect: dict[str, dict[str, float]]) -> str:
    base = next(r for r in rows if r["condition"] == ONE_SHOT.name)
    lines = [
        "# Quality: one-shot vs R3 (bench/quality.py)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Model: {meta['model']} (pack `{meta['pack']}`), backend {meta['backend']}; {meta['scenes']} held-out "
        f"scenes (seed {meta['seed']}); machine: {meta['machine']}; total {meta['total_minutes']:.1f} min.",
        "",
        "| condition | F1 | exact | relation acc | halluc. | ΔF1 vs one-shot [95% CI] | Δexact [95% CI] | "
        "fixes / regressions | calls | tokens | cached | s/run | wall s/scene |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['condition']} | {r['f1']:.3f} | {r['exact_match']:.3f} | {r['relation_accuracy']:.3f} | "
            f"{r['hallucination_rate']:.3f} | {_delta(r, 'delta_f1', base['f1'])} | "
            f"{_delta(r, 'delta_em', base['exact_match'])} | {r['fixes']} / {r['regressions']} | "
            f"{r['calls_per_scene']:.1f} | {r['tokens_per_scene']:.0f} | {100 * r['cached_share']:.0f}% | "
            f"{r['seconds_per_run']:.2f} | {r['wall_seconds_per_scene']:.2f} |"
        )
    lines += ["", "Understanding on the same scenes (answer stage, exact answers): "
              + ", ".join(f"{k} {v:.3f}" for k, v in vqa.items()), ""]
    lines += ["Reflect against the truth (first round): check accuracy = the model's yes/no answers to its own "
              "checks vs the exact answers; verdict accuracy = 'pass' exactly when the draft is exactly right.", "",
              "| condition | check accuracy (n) | verdict accuracy (n) |", "| --- | --- | --- |"]
    for name, d in reflect.items():
        lines.append(f"| {name} | {d['check_accuracy']:.3f} ({d['checks']:.0f}) | "
                     f"{d['verdict_accuracy']:.3f} ({d['verdicts']:.0f}) |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], conditions: Sequence[Condition], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_name = {r["condition"]: r for r in rows}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, label in ((axes[0], "f1", "caption object F1"), (axes[1], "exact_match", "exact match")):
        ax.axhline(by_name[ONE_SHOT.name][metric], color="black", linestyle="--", label="one-shot")
        for strategy in ("self_questions", "judge", "multi_step", "none"):
            points = sorted((c.depth, by_name[c.name][metric]) for c in conditions
                            if c.reflect == strategy and c.select == "last" and c.depth > 0 and c.name in by_name)
            if points:
                ax.plot([0] + [d for d, _ in points], [by_name[ONE_SHOT.name][metric]] + [v for _, v in points],
                        marker="o", label=strategy if strategy != "none" else "refine w/o reflect")
        ax.set_xlabel("depth (refine rounds)")
        ax.set_ylabel(label)
        ax.set_xticks([0, 1, 2, 3])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_jsonl(records: dict[str, list[RunRecord]], path: Path) -> None:
    """One JSON line per run; gzip-compressed when the name ends in .gz (a full run is ~7 MB raw)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as handle:
        for runs in records.values():
            for record in runs:
                handle.write(json.dumps(record.model_dump(mode="json")) + "\n")
