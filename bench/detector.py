"""How well the pixel-only scene detector reads scene-world images, per render size and under damage.

    .venv/bin/python bench/detector.py            # 1000 held-out scenes per size, a few minutes on 2 cores
    .venv/bin/python bench/detector.py --scenes 200

Scenes come from r3graph_scenes.detector.VALIDATION_SEED (the detector's thresholds were set on other
seeds). Per size: exact-scene accuracy (every object's colour, shape and size, and every pairwise
relation, right) with its one-sided 95% Clopper-Pearson lower bound, per-aspect accuracy and the
largest position error. "Damaged" rows stand in for what a learned generator or tokenizer does to an
image: a Gaussian blur, JPEG compression. Writes bench/results/detector.md and detector.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageFilter

from r3graph.evaluation.stats import binomial_lower_bound
from r3graph_scenes.detector import VALIDATION_SEED, accuracy_on_renders

RESULTS = Path(__file__).parent / "results"
SIZES = (32, 48, 64, 128, 256, 512)
ASPECTS = ("count", "colours", "shapes", "sizes", "positions")


def _jpeg(quality: int) -> Callable[[Image.Image], Image.Image]:
    def damage(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        return Image.open(io.BytesIO(buffer.getvalue()))
    return damage


DAMAGE: dict[str, Callable[[Image.Image], Image.Image]] = {
    "Gaussian blur 1 px": lambda image: image.filter(ImageFilter.GaussianBlur(1)),
    "JPEG quality 90": _jpeg(90),
}


def measure(n: int) -> list[dict[str, Any]]:
    rows = []
    cases = [(size, "clean", None) for size in SIZES]
    cases += [(size, name, fn) for name, fn in DAMAGE.items() for size in (64, 128)]
    for size, damage, fn in cases:
        scenes = n if size <= 256 else max(1, n // 3)  # 512 px is slow on 2 cores; fewer, and said so
        started = time.perf_counter()
        result = accuracy_on_renders(size, scenes, degrade=fn)
        exact = int(result["exact_count"])
        rows.append({"size": size, "damage": damage, **result, "lower_bound_95": binomial_lower_bound(exact, scenes),
                     "ms_per_image": 1000 * (time.perf_counter() - started) / scenes})
        print(f"{size:4d} px {damage:20s} exact {exact}/{scenes}", flush=True)
    return rows


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = ["# Scene detector accuracy (bench/detector.py)", "",
             f"Command: `{meta['command']}`; held-out scenes from seed {meta['seed']}; machine: {meta['machine']} "
             "(shared with other jobs: the timings are disturbed, the accuracies are not).", "",
             "Exact = every object's colour, shape and size and every pairwise relation (the world's `holds`) "
             "right under the best matching of same-kind objects; bound = one-sided 95% Clopper-Pearson lower "
             "bound on the exact rate; max pos. err = largest |dx| or |dy| in image widths.", "",
             "| size px | damage | scenes | exact | 95% lower bound | " + " | ".join(ASPECTS)
             + " | max pos. err | ms/image |", "| --- " * (8 + len(ASPECTS)) + "|"]
    for r in results["rows"]:
        lines.append(f"| {r['size']} | {r['damage']} | {r['n']:.0f} | {r['exact']:.3f} | {r['lower_bound_95']:.3f} | "
                     + " | ".join(f"{r[a]:.3f}" for a in ASPECTS)
                     + f" | {r['max_position_error']:.3f} | {r['ms_per_image']:.1f} |")
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=1000, help="scenes per size (512 px: a third of them)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    started = time.perf_counter()
    rows = measure(args.scenes)
    results = {"rows": rows, "meta": {
        "command": "python bench/detector.py " + shlex.join(sys.argv[1:]), "seed": VALIDATION_SEED,
        "machine": f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} CPUs",
        "total_minutes": (time.perf_counter() - started) / 60}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "detector.md").write_text(markdown(results))
    (out / "detector.json").write_text(json.dumps(results, indent=2) + "\n")
    print((out / "detector.md").read_text())


if __name__ == "__main__":
    main()
