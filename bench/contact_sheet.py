"""A contact sheet of R3 in output mode "image": for a few held-out GenEval-style prompts, the prompt,
the first image, each reflection (the judge's edit) with the edited image, and the final image.

    .venv/bin/python bench/contact_sheet.py [--prompts 6] [--generator learned|stand-in] [--depth 4]

The judge is the backend chosen as in the other benchmarks (the shipped ``scenes-vlm`` on the
in-process engine by default); the generator is the learned token-image model served by vLLM behind
the image API (or the stand-in painter). Every image's overall score is read from its pixels by the
scene world's detector (a tick or a cross under it). Writes bench/results/contact_sheet.png and
contact_sheet.md (the same content as text).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import textwrap
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from r3graph import R3Context, R3Error, build_r3_graph
from r3graph.backends import add_backend_arguments, started_backend
from r3graph.image_generation import ImageParams
from r3graph.serving.image_client import OmniImageClient
from r3graph_scenes.evaluation.image_quality import geneval_cases
from r3graph_scenes.evaluation.image_scores import score_image

sys.path.insert(0, str(Path(__file__).parent))
from image_quality import LEARNED_MODEL_DIR, RESULTS, SERVER_LOG  # the benchmark's own defaults

CELL = 128  # images are drawn at this side (nearest neighbour: the pixels the judge saw, enlarged)
TEXT_H = 76
PAD = 8
PROMPT_W = 220


def _generator(args: argparse.Namespace) -> Any:
    if args.generator == "learned":
        from r3graph.serving.image_server import ImageServerProcess

        return ImageServerProcess(args.generator_model, log_path=SERVER_LOG)
    from r3graph_scenes.paint_server import PaintServer

    return PaintServer(error_rate=0.5, seed=0)


async def collect(args: argparse.Namespace) -> list[dict[str, Any]]:
    """R3 (judge, to --depth) on the first --prompts prompts of each category, as rows of the sheet."""
    cases = geneval_cases(args.pool)
    chosen: list[Any] = []
    seen: set[str] = set()
    for case in cases:  # a few prompts per category, in order, until --prompts are chosen
        if len(chosen) < args.prompts and (case.category not in seen or len(seen) * 2 > args.prompts):
            chosen.append(case)
            seen.add(case.category)
    rows = []
    async with started_backend(args, print) as backend:
        with _generator(args) as server:
            async with OmniImageClient(server.url, model=getattr(server, "served_model_name", "") or "") as client:
                graph = build_r3_graph(backend.model, pack=backend.pack, image_backend=client).compile()
                for case in chosen:
                    context = R3Context(output="image", reflect="judge", max_rounds=args.depth,
                                        image=ImageParams(seed=case.index, size="64x64"))
                    try:
                        result = await graph.ainvoke({"instruction": case.prompt}, context=context)
                        rounds = result["rounds"]
                    except R3Error as exc:  # the work done travels with the error
                        rounds = exc.rounds
                    steps = []
                    for r in rounds:
                        r = r if hasattr(r, "image") else type(rounds[0]).model_validate(r)
                        critique = r.reflection.critique if r.reflection else ""
                        verdict = r.reflection.verdict if r.reflection else ""
                        steps.append({"image": r.image, "edit": r.draft if r.index else "",
                                      "judge": critique if verdict == "revise" else "(passes)" if verdict else "",
                                      "exact": score_image(case.wanted, r.image).exact})
                    rows.append({"prompt": case.prompt, "category": case.category, "steps": steps})
    return rows


def _font() -> Any:
    try:
        return ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def draw(rows: list[dict[str, Any]]) -> Image.Image:
    columns = max(len(r["steps"]) for r in rows)
    width = PROMPT_W + columns * (CELL + PAD) + PAD
    row_h = CELL + TEXT_H + PAD
    sheet = Image.new("RGB", (width, row_h * len(rows) + PAD), "white")
    pen, font = ImageDraw.Draw(sheet), _font()
    for i, row in enumerate(rows):
        top = PAD + i * row_h
        pen.multiline_text((PAD, top), f"[{row['category']}]\n" + "\n".join(textwrap.wrap(row["prompt"], 30)),
                           fill="black", font=font)
        for j, step in enumerate(row["steps"]):
            left = PROMPT_W + j * (CELL + PAD)
            if step["image"]:
                image = Image.open(io.BytesIO(step["image"])).convert("RGB")
                image = image.resize((CELL, CELL), Image.Resampling.NEAREST)
                sheet.paste(image, (left, top))
            mark, colour = ("right", "green") if step["exact"] else ("wrong", "red")
            label = ("first" if j == 0 else f"edit {j}: {step['edit']}") + f" [{mark}]"
            if step["judge"]:
                label += f"\njudge: {step['judge']}"
            pen.multiline_text((left, top + CELL + 2), "\n".join(textwrap.wrap(label, 22)[:4]), fill=colour,
                               font=font)
    return sheet


def markdown(rows: list[dict[str, Any]], command: str, generator: str) -> str:
    lines = [f"# Contact sheet: R3 (judge) on the {generator} generator", "", f"Command: `{command}`", "",
             "Each image's right/wrong is read from its pixels by the scene world's detector.", "",
             "![contact sheet](contact_sheet.png)", ""]
    for row in rows:
        lines.append(f"- **{row['prompt']}** ({row['category']})")
        for j, step in enumerate(row["steps"]):
            what = "first image" if j == 0 else f"edit {j} `{step['edit']}`"
            judge = f"; judge: {step['judge']}" if step["judge"] else ""
            lines.append(f"  - {what}: {'right' if step['exact'] else 'wrong'}{judge}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--pool", type=int, default=300, help="held-out prompts to choose from (the benchmark's)")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--generator", choices=("learned", "stand-in"), default="learned")
    parser.add_argument("--generator-model", default=str(LEARNED_MODEL_DIR))
    add_backend_arguments(parser)
    args = parser.parse_args()
    rows = asyncio.run(collect(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    draw(rows).save(RESULTS / "contact_sheet.png", optimize=True)
    command = "python bench/contact_sheet.py " + " ".join(sys.argv[1:])
    text = markdown(rows, command, args.generator)
    (RESULTS / "contact_sheet.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
