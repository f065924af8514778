"""How well the pixel-only detector reads the image tokenizer's reconstructions, against the renders.

    .venv/bin/python bench/image_tokenizer.py                  # the shipped tokenizer, 1000 held-out scenes
    .venv/bin/python bench/image_tokenizer.py --scenes 2000 --tokenizer path/to/folder

Scenes come from the tokenizer's held-out seed (r3graph_scenes.imagegen.train_tokenizer.HELD_OUT_SEED,
the detector's validation seed), which neither training nor development decisions used. For the renders
and for their reconstructions (encode -> 64 codes -> decode): exact-scene rate with its one-sided 95%
Clopper-Pearson lower bound, per-aspect rates, largest position error; then pixel MSE, codes used of the
codebook, and encode/decode milliseconds per image (batched, --threads threads). Writes
bench/results/image_tokenizer.md and image_tokenizer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from r3graph_scenes.imagegen.evaluate import ASPECTS, evaluate_tokenizer
from r3graph_scenes.imagegen.fsq import SHIPPED_DIR, ImageTokenizer
from r3graph_scenes.imagegen.train_tokenizer import HELD_OUT_SEED
from r3graph_scenes.world import generate_scenes

RESULTS = Path(__file__).parent / "results"


def markdown(results: dict[str, Any]) -> str:
    meta, res = results["meta"], results["result"]
    lines = ["# Image tokenizer: the detector on reconstructions (bench/image_tokenizer.py)", "",
             f"Command: `{meta['command']}`; tokenizer `{meta['tokenizer']}` ({res['codebook_size']} codes, "
             f"64 per image); held-out scenes from seed {meta['seed']}; machine: {meta['machine']}, "
             f"{meta['threads']} torch thread(s) (shared with other jobs: timings are disturbed, accuracies "
             "are not).", "",
             "Exact = every object's colour, shape and size and every pairwise relation (the world's `holds`) "
             "right under the best matching of same-kind objects; bound = one-sided 95% Clopper-Pearson lower "
             "bound on the exact rate; max pos. err = largest |dx| or |dy| in image widths.", "",
             "| input | scenes | exact | 95% lower bound | " + " | ".join(ASPECTS) + " | max pos. err |",
             "| --- " * (5 + len(ASPECTS)) + "|"]
    for name in ("renders", "reconstructions"):
        r = res[name]
        lines.append(f"| {name} | {r['n']} | {r['exact']:.3f} | {r['lower_bound_95']:.3f} | "
                     + " | ".join(f"{r[a]:.3f}" for a in ASPECTS) + f" | {r['max_position_error']:.3f} |")
    lost = res["lost_by_tokenizer"]
    lines += ["", f"- Scenes the detector reads right on the render and wrong on the reconstruction: {len(lost)}"
              + (f" (indices {lost[:30]})" if lost else ""),
              f"- Pixel MSE, values in [0, 1]: {res['pixel_mse']:.5f}",
              f"- Codes used: {res['codes_used']} of {res['codebook_size']}",
              f"- Encode {res['encode_ms_per_image']:.2f} ms/image, decode {res['decode_ms_per_image']:.2f} "
              "ms/image (batches of 256)", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=1000)
    parser.add_argument("--tokenizer", default=None, help="weights folder (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    tokenizer = ImageTokenizer.load(args.tokenizer)
    result = evaluate_tokenizer(tokenizer, generate_scenes(HELD_OUT_SEED, args.scenes))
    folder = Path(args.tokenizer) if args.tokenizer else SHIPPED_DIR
    try:
        shown = str(folder.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        shown = str(folder)
    results = {"result": result, "meta": {
        "command": "python bench/image_tokenizer.py " + shlex.join(sys.argv[1:]), "seed": HELD_OUT_SEED,
        "tokenizer": shown, "threads": args.threads,
        "machine": f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} CPUs",
        "total_minutes": (time.perf_counter() - started) / 60}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "image_tokenizer.md").write_text(markdown(results))
    (out / "image_tokenizer.json").write_text(json.dumps(results, indent=2) + "\n")
    print((out / "image_tokenizer.md").read_text())


if __name__ == "__main__":
    main()
