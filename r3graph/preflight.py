"""What ``r3graph run`` checks before it starts an engine, a server or an image generator.

An engine takes tens of seconds to start on a CPU; a typo in a flag or an unreadable photo must not
cost that wait. Every check raises a typed error (:class:`R3ConfigError` for options,
:class:`R3InputError` for the instruction and images) whose message names the flag to change. The
images go through the same normalisation the graph's prepare step uses
(:func:`r3graph.images.normalise_image`), with the run's limits, so what passes here passes there.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r3graph.context import R3Context
from r3graph.errors import R3ConfigError, R3InputError
from r3graph.images import normalise_image
from r3graph.nodes.prepare import MAX_IMAGES, MAX_INSTRUCTION_CHARS
from r3graph.prompts import load_pack
from r3graph.reflect import resolve_strategy

# R3Context field -> the `run` flag that sets it, so an error names what the person typed.
FLAG_FOR_FIELD = {
    "image.size": "--size", "image.steps": "--steps", "image.guidance": "--guidance", "image.seed": "--seed",
    "max_rounds": "--max-rounds", "select": "--select", "output": "--output", "reflect": "--reflect",
}


@dataclass
class CheckedRun:
    """A run that passed the checks: its context and its images as the data URLs the graph gets."""

    context: R3Context
    images: list[str]


def _flagged(exc: R3ConfigError) -> R3ConfigError:
    message = str(exc).removeprefix("invalid R3Context: ")
    for field, flag in FLAG_FOR_FIELD.items():
        message = re.sub(rf"(^|; ){re.escape(field)}:", rf"\g<1>{flag}:", message)
    return R3ConfigError(message)


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://")) and len(text) > len("https://")


def check_options(args: argparse.Namespace) -> R3Context:
    """Everything but the images: instruction, flags, the model and where outputs go."""
    instruction = (args.instruction or "").strip()
    if not instruction:
        raise R3InputError("--instruction is empty: say what to do, e.g. --instruction 'Describe the image.'")
    if len(instruction) > MAX_INSTRUCTION_CHARS:
        raise R3InputError(f"--instruction is {len(instruction)} characters; the limit is {MAX_INSTRUCTION_CHARS}")
    if args.output == "text" and not args.image:
        raise R3InputError("--image FILE is required (or --output image to generate one from --instruction)")
    if args.output == "image" and args.image:
        raise R3InputError("--output image generates from --instruction alone: drop --image")
    if len(args.image or []) > MAX_IMAGES:
        raise R3InputError(f"{len(args.image)} --image files; the limit is {MAX_IMAGES}")
    try:
        context = R3Context(
            max_rounds=args.max_rounds, reflect=args.reflect, select=args.select, output=args.output,
            image={"size": args.size, "steps": args.steps, "guidance": args.guidance, "seed": args.seed,
                   "plan": args.plan},
        )
    except R3ConfigError as exc:
        raise _flagged(exc) from None
    resolve_strategy(context.reflect)  # an unknown name fails here, naming the ones there are
    if args.pack:
        load_pack(args.pack)
    if args.base_url:
        if not _is_url(args.base_url):
            raise R3ConfigError(f"--base-url {args.base_url!r} is not an http(s) URL, e.g. http://127.0.0.1:8000")
    else:
        if args.model is None:  # a plugin's default model (the run uses what is checked here)
            from r3graph.plugins import require_model_dir

            args.model = str(require_model_dir())
        if not (Path(args.model) / "config.json").is_file():
            raise R3ConfigError(f"--model {args.model}: no model there (config.json missing); pass an HF-format "
                                "model directory, or --base-url URL of a running server")
    if args.output == "image":
        _check_image_server(args.image_server)
    if args.report and not Path(args.report).expanduser().resolve().parent.is_dir():
        raise R3ConfigError(f"--report {args.report}: the folder {Path(args.report).parent} does not exist")
    return context


def _check_image_server(name: str) -> None:
    """``learned`` (a plugin's token-image model), a plugin's named server, or an http(s) URL."""
    from r3graph.plugins import SCENES_HINT, image_server_names, require_image_model_dir

    if _is_url(name):
        return
    if name == "learned":
        model_dir = require_image_model_dir()
        if not (model_dir / "config.json").is_file():
            raise R3ConfigError(f"--image-server learned: no learned generator at {model_dir} (config.json missing)"
                                "; pass an http(s) URL of an image server")
        return
    names = ["learned", *image_server_names()]
    if name not in names:
        hint = f"; 'stand-in' comes with r3graph-scenes: {SCENES_HINT}" if name == "stand-in" else ""
        raise R3ConfigError(f"--image-server {name!r}: pass {', '.join(map(repr, names))} or an http(s) URL{hint}")


async def _normalised(paths: list[str], context: R3Context) -> list[str]:
    urls = []
    for i, path in enumerate(paths):
        try:
            urls.append(await normalise_image(path, index=i, max_bytes=context.max_image_bytes,
                                              max_pixels=context.max_image_pixels))
        except R3InputError as exc:  # the library says images[i]; the person typed --image PATH
            raise R3InputError(str(exc).replace(f"images[{i}]", f"--image {path}", 1)) from None
    return urls


def check_run(args: argparse.Namespace) -> CheckedRun:
    """All of ``run``'s checks; the images come back normalised, so the run does not decode them again."""
    context = check_options(args)
    images: list[Any] = list(args.image or [])
    return CheckedRun(context=context, images=asyncio.run(_normalised(images, context)))
