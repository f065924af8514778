"""``r3graph export``: run R3 over images and write one trajectory record per run (JSONL).

    r3graph export --images DIR_OR_FILES... --out runs.jsonl [--max-rounds N] [--reflect NAME]
                   [--base-url URL | --model DIR] [--world MODULE] [--pairs pairs.jsonl] [--trace otlp]
    r3graph export --output image --prompts FILE --image-server learned --out runs.jsonl [--reflect judge]

With ``--output image`` R3 generates an image for each prompt and refines it by edits; every round's
image is written beside the JSONL (see :mod:`r3graph.export_images_cli`).

Ground truth and scores come from a *world* plugged in with ``--world MODULE``: any module with
``ground_truth(image_path)`` and ``score(text, record)`` (and optionally ``SCORE_NAME``). With one,
records carry ``draft_<name>``/``output_<name>`` scores and ``--pairs`` writes preference pairs where
refine scored better; the scene world is ``--world r3graph_scenes.trajectories``. Records are
appended as each run finishes, so an interrupted export keeps what it did. Format:
``docs/trajectory-format.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path
from typing import Any

from r3graph import backends
from r3graph.export import TrajectoryRecord, read_jsonl, to_preference_pairs, trajectory_record, write_jsonl
from r3graph.export_images_cli import add_image_arguments, run_image_export

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


def add_export_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``export`` on an ``argparse`` subparsers object; returns the new parser."""
    p = subparsers.add_parser("export", help="run R3 over images and write trajectories as JSONL",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", nargs="+", metavar="PATH", help="image files and/or folders (text mode)")
    p.add_argument("--out", required=True, type=Path, help="trajectory JSONL to write")
    p.add_argument("--append", action="store_true", help="append to --out instead of replacing it")
    p.add_argument("--instruction", default="Describe the image.")
    p.add_argument("--max-rounds", type=int, default=1)
    p.add_argument("--reflect", default="self_questions", help="self_questions, judge, multi_step or none")
    p.add_argument("--select", choices=["last", "best"], default="last")
    p.add_argument("--base-url", help="a running vLLM server (else the in-process engine)")
    p.add_argument("--model", help="model directory for the in-process engine (default: a plugin's, e.g. scenes-vlm)")
    p.add_argument("--backend", choices=backends.BACKEND_KINDS,
                   help="default: server with --base-url, else engine; scripted = no weights, for tests")
    p.add_argument("--pack", help="prompt pack (default: the one the model directory declares, else default)")
    p.add_argument("--world", help="module giving ground_truth(image) and score(text, record), e.g. "
                   "r3graph_scenes.trajectories")
    p.add_argument("--pairs", type=Path, help="also write preference pairs (refined better than draft; needs --world)")
    p.add_argument("--pair-kind", choices=["final", "step"], default="final")
    p.add_argument("--trace", choices=["none", "console", "otlp"], default="none",
                   help="export spans (otlp reads the standard OTEL_EXPORTER_OTLP_* variables)")
    add_image_arguments(p)
    p.set_defaults(handler=run_export)
    return p


def collect_images(paths: list[str]) -> list[Path]:
    """Files as given, folders expanded to their images (sorted, not recursive)."""
    found: list[Path] = []
    for text in paths:
        path = Path(text).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such image or folder: {text}")
    return found


def load_world(name: str | None) -> Any:
    """The ``--world`` module, checked for what the export calls."""
    if not name:
        return None
    try:
        world = importlib.import_module(name)
    except ImportError as exc:
        raise SystemExit(f"r3graph export: --world {name}: {exc}") from exc
    missing = [f for f in ("ground_truth", "score") if not callable(getattr(world, f, None))]
    if missing:
        raise SystemExit(f"r3graph export: --world {name} has no {' or '.join(missing)}() function")
    return world


def _scores(record: TrajectoryRecord, world: Any) -> dict[str, float]:
    if world is None:
        return {}
    name = getattr(world, "SCORE_NAME", "score")
    draft, output = world.score(record.rounds[0].draft, record), world.score(record.output, record)
    return {} if draft is None or output is None else {f"draft_{name}": draft, f"output_{name}": output}


async def _export(args: argparse.Namespace, backend: backends.Backend, images: list[Path], world: Any) -> int:
    from r3graph import R3Context, R3Error, R3Input, build_r3_graph

    graph = build_r3_graph(backend.model, pack=backend.pack).compile()
    context = R3Context(max_rounds=args.max_rounds, reflect=args.reflect, select=args.select)
    if hasattr(backend.model, "astart"):
        await backend.model.astart()  # engine start-up before the first image, not inside its timeout
    if not args.append:
        args.out.write_text("")
    failed = 0
    for i, image in enumerate(images, 1):
        inputs: R3Input = {"instruction": args.instruction, "images": [str(image)]}
        try:
            result = await graph.ainvoke(inputs, context=context)
        except R3Error as exc:
            failed += 1
            print(f"[{i}/{len(images)}] {image.name}: FAILED {exc}", file=sys.stderr)
            continue
        record = trajectory_record(inputs, result, model=backend.model_name, pack=backend.pack,
                                   context=context, ground_truth=world.ground_truth(image) if world else None)
        record.scores.update(_scores(record, world))
        write_jsonl([record], args.out, append=True)
        scored = "".join(f" {k}={v:.2f}" for k, v in record.scores.items())
        print(f"[{i}/{len(images)}] {image.name}: {record.stop_reason}, {len(record.rounds)} rounds,"
              f" {record.usage.calls} calls{scored}", file=sys.stderr)
    return failed


def run_export(args: argparse.Namespace) -> int:
    """Run the export; exit status 0 when every image gave a record, 1 otherwise."""
    from r3graph.telemetry import configure_tracing

    if getattr(args, "output", "text") == "image":
        return run_image_export(args)
    if not args.images:
        print("r3graph export: --images PATH... is required (or --output image --prompts FILE)", file=sys.stderr)
        return 2
    world = load_world(args.world)
    if args.pairs and world is None:
        print("r3graph export: --pairs needs --world MODULE to score drafts (e.g. r3graph_scenes.trajectories)",
              file=sys.stderr)
        return 2
    images = collect_images(args.images)
    if not images:
        print("r3graph export: no images found", file=sys.stderr)
        return 1
    kind: backends.BackendKind = args.backend or ("server" if args.base_url else "engine")
    backend = backends.make_backend(kind, base_url=args.base_url, model_dir=args.model, pack=args.pack)
    print(f"r3graph export: {len(images)} image(s) with {backend.label}, pack {backend.pack}", file=sys.stderr)
    shutdown_tracing = configure_tracing(args.trace)
    try:
        failed = asyncio.run(_export(args, backend, images, world))
    finally:
        shutdown_tracing()
        if backend.kind == "engine":
            from r3graph.serving import shutdown_engines

            shutdown_engines()
    records = list(read_jsonl(args.out))
    print(f"r3graph export: wrote {len(records)} record(s) to {args.out}", file=sys.stderr)
    if args.pairs:
        n = write_jsonl(to_preference_pairs(records, world.score, kind=args.pair_kind), args.pairs)
        print(f"r3graph export: wrote {n} preference pair(s) to {args.pairs}", file=sys.stderr)
    return 1 if failed else 0
