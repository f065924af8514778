"""Breakdowns of an image-mode run: per GenEval category (what R3 fixes and breaks in each), and how
well the pixel detector read the benchmark's own images (the stand-in's stored scene as the oracle)."""

from __future__ import annotations

from typing import Any

from r3graph.evaluation.stats import binomial_lower_bound, paired_bootstrap
from r3graph_scenes.evaluation.image_quality import ONE_SHOT, ImageRunRecord
from r3graph_scenes.evaluation.image_scores import ASPECTS
from r3graph_scenes.evaluation.report import mean_or_nan


def summarise_categories(records: dict[str, list[ImageRunRecord]]) -> dict[str, list[dict[str, Any]]]:
    """For each prompt category (in order of first appearance), one row per condition: accuracy of the
    final and first image, per-aspect accuracy, fixes and regressions, the judge's recall and pass rate
    on right images (first image), and the paired bootstrap difference to one-shot on the same prompts."""
    base = {r.index: r for r in records[ONE_SHOT.name]}
    categories = list(dict.fromkeys(r.category for r in sorted(base.values(), key=lambda r: r.index)))
    out: dict[str, list[dict[str, Any]]] = {}
    for category in categories:
        rows = []
        for name, runs in records.items():
            mine = sorted((r for r in runs if r.category == category), key=lambda r: r.index)
            if not mine:
                continue
            row: dict[str, Any] = {
                "condition": name, "prompts": len(mine), "exact": mean_or_nan([r.score.exact for r in mine]),
                "first_exact": mean_or_nan([r.first_score.exact for r in mine]),
                "fixes": sum(not r.first_score.exact and r.score.exact for r in mine),
                "regressions": sum(r.first_score.exact and not r.score.exact for r in mine),
            }
            for aspect in ASPECTS:
                values = [getattr(r.score, aspect) for r in mine]
                row[aspect] = mean_or_nan([float(v) for v in values if v is not None])
            # the judge on the first image: which link fails here (flagging wrong images, or passing right ones)
            first = [r.judged[0] for r in mine if r.judged]
            row["judge_recall"] = mean_or_nan([j.verdict == "revise" for j in first if not j.correct])
            row["judge_pass_on_right"] = mean_or_nan([j.verdict == "pass" for j in first if j.correct])
            if name != ONE_SHOT.name and all(r.index in base for r in mine):
                row["delta_exact"] = paired_bootstrap([float(base[r.index].score.exact) for r in mine],
                                                      [float(r.score.exact) for r in mine]).model_dump()
            rows.append(row)
        out[category] = rows
    return out


def detector_accuracy(runs: list[ImageRunRecord]) -> dict[str, float]:
    """How often the detector read an image exactly as the stand-in painted it (every image of every run,
    edits included; a first image shared by conditions counts once per condition), with the one-sided 95%
    lower bound; and how often the final image's exact score from pixels equals the score from the truth."""
    reads = [a for r in runs for a in r.detector_agrees]
    scored = [r.score.exact == r.truth_exact for r in runs if r.truth_exact is not None]
    agree = sum(reads)
    return {
        "images": float(len(reads)), "exact_reads": float(agree),
        "accuracy": agree / len(reads) if reads else float("nan"),
        "lower_bound_95": binomial_lower_bound(agree, len(reads)) if reads else float("nan"),
        "final_scores": float(len(scored)), "final_score_agreement": mean_or_nan(scored),
    }


def summarise_depths(records: dict[str, list[ImageRunRecord]], depths: tuple[int, ...] = (1, 2, 3, 4)
                     ) -> list[dict[str, Any]]:
    """Each condition cut at each depth it reached: overall accuracy of the image after ``d`` rounds
    (a run that stopped earlier keeps its last image, as a run with max_rounds=d would), paired
    against one-shot on the same prompts."""
    base = {r.index: r for r in records[ONE_SHOT.name]}
    rows = []
    for name, runs in records.items():
        reached = max((len(r.round_exact) - 1 for r in runs), default=0)
        if name == ONE_SHOT.name or reached < 1:
            continue
        mine = sorted((r for r in runs if r.round_exact and r.index in base), key=lambda r: r.index)
        for depth in depths:
            if depth > reached:
                break
            at = [r.round_exact[min(depth, len(r.round_exact) - 1)] for r in mine]
            first = [base[r.index].score.exact for r in mine]
            rows.append({"condition": name, "depth": depth, "prompts": len(mine), "exact": mean_or_nan(at),
                         "one_shot": mean_or_nan(first),
                         "fixes": sum(a and not f for a, f in zip(at, first, strict=True)),
                         "regressions": sum(f and not a for a, f in zip(at, first, strict=True)),
                         "delta_exact": paired_bootstrap([float(f) for f in first],
                                                         [float(a) for a in at]).model_dump()})
    return rows
