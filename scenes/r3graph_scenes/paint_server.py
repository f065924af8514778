"""A STAND-IN for an image generator, speaking vllm-omni's OpenAI-style image API. Not a model.

It paints prompts about the scene world (coloured shapes, see :mod:`r3graph_scenes.world`) with the
scene renderer (and the same through ``POST /v1/chat/completions`` with ``modalities: ["image"]``,
vllm-omni's BAGEL path): ``POST /v1/images/generations`` lays the prompt out exactly
(:func:`r3graph_scenes.painter.layout`) and, with probability ``error_rate``, makes one mistake a
generator makes (:func:`r3graph_scenes.image_edits.make_mistake`); ``POST /v1/images/edits`` applies
one edit sentence to a painting it made (the PNG carries its scene in a text chunk). So output mode
``image`` (generate, judge, edit) runs end to end on a laptop, with mistakes whose truth is known,
and the HTTP client is tested against the same wire format as a real vllm-omni server. The HTTP side
and the request rules are the core's (:mod:`r3graph.serving.image_api`, shared with the server of a
learned token-image model); this module is the painting only.

Loopback only (127.0.0.1). Run it by hand with::

    python -m r3graph_scenes.paint_server --port 8001 --error-rate 0.3
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from PIL import Image

from r3graph.serving.image_api import ApiError, ImageApiServer, Made, Recorded, SizeRule
from r3graph_scenes.image_edits import MISTAKE_KINDS, make_mistake
from r3graph_scenes.painter import apply_edit, decode_scene, encode_png, layout

__all__ = ["MODEL_ID", "NOTICE", "ApiError", "PaintServer", "Recorded", "main"]

MODEL_ID = "r3graph-scene-painter"
NOTICE = (
    "stand-in for an image generator only: paints scene-world prompts (coloured shapes) with the scene "
    "renderer, sometimes with one deliberate mistake; it is not a model"
)
DEFAULT_SIZE = 256
SIZE_RANGE = (16, 2048)


def _rng(*parts: object) -> random.Random:
    """An RNG fixed by ``parts``: same server seed + same request = same image, in any process."""
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class ScenePainter:
    """The stand-in's :class:`~r3graph.serving.image_api.ImageMaker`: paints scene-world prompts and
    applies edit sentences. ``count`` reports "mistakes" and "ignored_edits" to the server's counts."""

    model_id = MODEL_ID
    notice: str | None = NOTICE
    sizes = SizeRule(default=DEFAULT_SIZE, low=SIZE_RANGE[0], high=SIZE_RANGE[1], square_only=True)

    def __init__(self, error_rate: float, kinds: tuple[str, ...], seed: int, edit_error_rate: float,
                 count: Callable[[str], None]) -> None:
        self.error_rate, self.kinds, self.seed = error_rate, tuple(kinds), seed
        self.edit_error_rate, self.count = edit_error_rate, count
        self._lock = threading.Lock()
        self._unseeded = random.Random(seed)  # requests without a seed draw from here, like a real sampler

    def generate(self, prompt: str, *, n: int, size: tuple[int, int], seed: int | None,
                 fields: Mapping[str, Any]) -> Made:
        rng = self._request_rng("generate", prompt, seed)
        images = []
        for _ in range(n):
            try:
                scene = layout(prompt, rng)
            except ValueError as exc:
                raise ApiError(400, f"cannot paint this prompt: {exc}", "unpaintable_prompt") from None
            if (
                rng.random() < self.error_rate
                and (wrong := make_mistake(scene, rng, self.kinds, prompt=prompt)) is not None
            ):
                scene = wrong[0]
                self.count("mistakes")
            images.append(encode_png(scene, size[0]))
        return Made(images)

    def edit(self, images: list[bytes], prompt: str, *, n: int, size: tuple[int, int] | None,
             seed: int | None, fields: Mapping[str, Any]) -> Made:
        image = images[0]
        scene = decode_scene(image)
        if scene is None:
            raise ApiError(
                400,
                "not an image this stand-in painted: it edits only PNGs from its own "
                "images/generations (they carry their scene)",
                "unknown_image",
            )
        side = size[0] if size is not None else _png_side(image)
        rng = self._request_rng("edit", scene.to_json(), prompt, seed)
        out = []
        for _ in range(n):
            edited = scene
            if rng.random() < self.edit_error_rate:
                self.count("ignored_edits")  # an editor that fails to follow the instruction
            else:
                edited = apply_edit(scene, prompt, rng)
            out.append(encode_png(edited, side))
        return Made(out)

    def _request_rng(self, *parts: object) -> random.Random:
        seed = parts[-1]
        if seed is None:
            with self._lock:
                seed = f"unseeded-{self._unseeded.getrandbits(64)}"
        return _rng(self.seed, *parts[:-1], seed)


class PaintServer(ImageApiServer):
    """The stand-in image server on 127.0.0.1 (see the module docstring). Use as a context manager.

    The HTTP side and the request rules are :class:`~r3graph.serving.image_api.ImageApiServer`'s, the
    painting :class:`ScenePainter`'s. ``counts`` adds "mistakes" and "ignored_edits" to the server's.
    """

    thread_name = "paint-server"

    def __init__(
        self,
        error_rate: float = 0.3,
        kinds: tuple[str, ...] = MISTAKE_KINDS,
        seed: int = 0,
        edit_error_rate: float = 0.0,
        delay_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        log_requests: bool = False,
    ) -> None:
        if host != "127.0.0.1":
            raise ValueError(f"PaintServer binds 127.0.0.1 only (a test stand-in, not a service); got host {host!r}")
        if not (0.0 <= error_rate <= 1.0 and 0.0 <= edit_error_rate <= 1.0):
            raise ValueError("error_rate and edit_error_rate are probabilities in [0, 1]")
        self.painter = ScenePainter(error_rate, tuple(kinds), seed, edit_error_rate, count=self.count)
        self.error_rate, self.kinds, self.seed = error_rate, tuple(kinds), seed
        self.edit_error_rate = edit_error_rate
        super().__init__(self.painter, host=host, port=port, delay_s=delay_s, log_requests=log_requests)


def _png_side(png: bytes) -> int:
    with Image.open(io.BytesIO(png)) as img:
        return int(img.size[0])


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--error-rate", type=float, default=0.3, help="chance a generation has one mistake")
    parser.add_argument("--edit-error-rate", type=float, default=0.0, help="chance an edit is ignored")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each answer")
    parser.add_argument("--log", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)
    server = PaintServer(
        error_rate=args.error_rate,
        edit_error_rate=args.edit_error_rate,
        seed=args.seed,
        delay_s=args.delay,
        port=args.port,
        log_requests=args.log,
    ).start()
    print(f"{server.url}  ({NOTICE}); Ctrl-C stops it", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops it as cleanly as Ctrl-C
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()


def start_stand_in(args: argparse.Namespace) -> tuple[PaintServer, str]:
    """``r3graph run --output image --image-server stand-in`` (registered in :mod:`r3graph_scenes.plugin`):
    the painter in process, started, and what the run says about it."""
    server = PaintServer(error_rate=args.stand_in_error_rate, seed=args.seed or 0).start()
    return server, f"{server.url} ({NOTICE})"
