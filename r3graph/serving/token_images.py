"""A learned image generator whose images are code tokens, run by vLLM: the maker behind the image API.

The model directory is an HF causal LM (any architecture vLLM loads) whose vocabulary holds image code
tokens, plus ``r3graph.json``, which says how to drive it::

    {"kind": "image-tokens", "tokens_per_image": 64, "code_token_offset": 40, "codebook_size": 16,
     "image_tokenizer": "package.module:Class", "image_tokenizer_path": "tokenizer",
     "generation_prompt": "<bos> <gen> {prompt} <boi>",
     "edit_prompt": "<bos> <edit> <boi> {source} <eoi> {instruction} <boi>"}

Code ``k`` is token id ``code_token_offset + k``. The image tokenizer class (imported from the dotted
path, so only code already installed runs: the same trust as the model itself) has ``load(path)``,
``encode(list of PIL images) -> (n, tokens_per_image)`` codes and ``decode(codes) -> list of PIL
images``. Nothing here knows what the codes mean.

A generation fills ``{prompt}``; an edit encodes the input image and fills ``{source}`` with its codes
as ``<cN>`` tokens and ``{instruction}``. vLLM then samples exactly ``tokens_per_image`` tokens, every
one a code: ``allowed_token_ids`` (the K code ids) with ``min_tokens = max_tokens``, vLLM's own
restriction. The codes are decoded to pixels and resized to the requested size (nearest neighbour up,
so an image's code cells stay sharp and re-encode exactly; box filter down).

Sampling, as vllm-omni users expect of a seed: the same ``seed`` gives the same image (image ``i`` of
``n`` uses ``seed + i``, so they differ); no seed draws a fresh one. ``temperature`` (server default,
or the request field) 0 is greedy. Unknown words are read as the tokenizer's unknown token and
reported: ``revised_prompt`` is then the prompt as read, each unknown word shown as that token
(``unknown_words="error"`` refuses such prompts with a 400 instead).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import importlib
import io
import json
import threading
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from r3graph.errors import R3ConfigError
from r3graph.serving._loop import ENGINE_LOOP
from r3graph.serving.env import default_enforce_eager
from r3graph.serving.image_api import ApiError, Made, SizeRule, png_size
from r3graph.serving.registry import EngineSpec, acquire, release

UnknownWords = Literal["warn", "error"]
ANY_SHAPE = SizeRule(square_only=False)  # vllm-omni takes any WxH; the codes are resized to it
_REQUIRED = {"kind": str, "tokens_per_image": int, "code_token_offset": int, "codebook_size": int,
             "image_tokenizer": str, "image_tokenizer_path": str, "generation_prompt": str, "edit_prompt": str}


@dataclass(frozen=True)
class TokenImageSpec:
    """``r3graph.json`` of a token-image model directory, checked (see the module docstring)."""

    model_dir: Path
    tokens_per_image: int
    code_token_offset: int
    codebook_size: int
    image_tokenizer: str
    image_tokenizer_path: str
    generation_prompt: str
    edit_prompt: str
    image_side: int  # pixels a side the image tokenizer reads ("image_size", default 64; its own attribute wins)
    max_positions: int  # the model's context: prompt + tokens_per_image must fit

    @classmethod
    def load(cls, model_dir: str | Path) -> TokenImageSpec:
        root = Path(model_dir)
        where = root / "r3graph.json"
        try:
            meta = json.loads(where.read_text())
            config = json.loads((root / "config.json").read_text())
        except FileNotFoundError as exc:
            missing = Path(exc.filename).name
            raise R3ConfigError(f"{root}: not a token-image model directory ({missing} missing)") from None
        except ValueError as exc:
            raise R3ConfigError(f"{where}: not valid JSON ({exc})") from None
        bad = [f"{k} ({t.__name__})" for k, t in _REQUIRED.items() if not isinstance(meta.get(k), t)]
        if bad:
            raise R3ConfigError(f"{where}: missing or wrong type: {', '.join(bad)}")
        if meta["kind"] != "image-tokens":
            raise R3ConfigError(f"{where}: kind is {meta['kind']!r}; this server serves 'image-tokens' models")
        for key, holes in (("generation_prompt", ("{prompt}",)), ("edit_prompt", ("{source}", "{instruction}"))):
            for hole in holes:
                if meta[key].count(hole) != 1:
                    raise R3ConfigError(f"{where}: {key} must hold {hole} exactly once, got {meta[key]!r}")
        vocab = int(config.get("vocab_size") or 0)
        if meta["codebook_size"] < 1 or meta["tokens_per_image"] < 1 or meta["code_token_offset"] < 0:
            raise R3ConfigError(f"{where}: codebook_size and tokens_per_image must be positive")
        if vocab and meta["code_token_offset"] + meta["codebook_size"] > vocab:
            raise R3ConfigError(f"{where}: code tokens {meta['code_token_offset']}..+{meta['codebook_size']} "
                                f"lie outside the model's vocabulary of {vocab}")
        return cls(model_dir=root, tokens_per_image=meta["tokens_per_image"],
                   code_token_offset=meta["code_token_offset"], codebook_size=meta["codebook_size"],
                   image_tokenizer=meta["image_tokenizer"], image_tokenizer_path=meta["image_tokenizer_path"],
                   generation_prompt=meta["generation_prompt"], edit_prompt=meta["edit_prompt"],
                   image_side=int(meta.get("image_size", 64)),
                   max_positions=int(config.get("max_position_embeddings") or 0))

    @property
    def code_ids(self) -> list[int]:
        return list(range(self.code_token_offset, self.code_token_offset + self.codebook_size))

    def load_image_tokenizer(self) -> Any:
        module_name, _, attr = self.image_tokenizer.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise R3ConfigError(f"image_tokenizer {self.image_tokenizer!r} cannot be imported "
                                f"({type(exc).__name__}: {exc}); install the package that provides it") from None
        return cls.load(str(self.model_dir / self.image_tokenizer_path))


def _fill(template: str, hole: str, text: str, source: str | None = None) -> tuple[str, int, int]:
    """The prompt with ``text`` in ``hole`` (and ``source`` in ``{source}``), and where ``text`` lies.
    ``{source}`` goes in first, so a user's text holding "{source}" is never expanded."""
    if source is not None:
        template = template.replace("{source}", source)
    before, after = template.split(hole, 1)
    return before + text + after, len(before), len(before) + len(text)


class TokenImageMaker:
    """:class:`~r3graph.serving.image_api.ImageMaker` over a token-image model and a shared vLLM engine.

    ``start()`` starts (or joins) the in-process engine (see :mod:`r3graph.serving.registry`: one per
    configuration, on the engine loop thread); ``stop()`` lets go of it. ``count`` receives
    "code_tokens", "prompt_tokens", "cached_tokens" and "unknown_words"; ``recent_codes`` keeps the
    last images' codes (what the model sampled, for tests and debugging).
    """

    def __init__(self, model_dir: str | Path, *, served_model_name: str | None = None, temperature: float = 1.0,
                 sizes: SizeRule = ANY_SHAPE, unknown_words: UnknownWords = "warn",
                 block_size: int = 32, enforce_eager: bool | None = None, timeout_s: float = 300.0,
                 count: Callable[..., None] | None = None) -> None:
        if unknown_words not in ("warn", "error"):
            raise R3ConfigError(f"unknown_words must be 'warn' or 'error', got {unknown_words!r}")
        if not 0.0 <= temperature <= 2.0:
            raise R3ConfigError(f"temperature must be in [0, 2], got {temperature}")
        self.spec = TokenImageSpec.load(model_dir)
        self.model_id = served_model_name or self.spec.model_dir.resolve().name
        self.notice: str | None = None
        self.sizes, self.temperature, self.unknown_words = sizes, temperature, unknown_words
        self.timeout_s = timeout_s
        self.count = count or (lambda key, by=1: None)
        self.recent_codes: collections.deque[tuple[int, ...]] = collections.deque(maxlen=64)
        self.engine_spec = EngineSpec.create(
            model=str(self.spec.model_dir), max_model_len=self.spec.max_positions or None,
            enforce_eager=default_enforce_eager() if enforce_eager is None else enforce_eager,
            block_size=block_size, enable_prefix_caching=True, compact_json=False,
            # Prompts arrive as token ids and only token ids come back: vLLM needs no tokenizer.
            engine_kwargs={"skip_tokenizer_init": True},
        )
        self._lock = threading.Lock()
        self._held = False
        # The tokenizers load now: a broken model directory fails here, before vLLM spends a minute starting.
        from tokenizers import Tokenizer

        try:
            self._tokenizer = Tokenizer.from_file(str(self.spec.model_dir / "tokenizer.json"))
        except Exception as exc:
            raise R3ConfigError(f"{self.spec.model_dir}/tokenizer.json cannot be read ({exc})") from None
        self._check_templates()
        self._images = self.spec.load_image_tokenizer()
        # The side the image tokenizer reads: its own word first (``image_size``), else r3graph.json's.
        self.image_side = int(getattr(self._images, "image_size", None) or self.spec.image_side)

    def _check_templates(self) -> None:
        """The templates' own tokens are known and each ``<cN>`` is one code token: otherwise every
        request would fail (or quietly mean something else), so the directory is refused up front."""
        k, lo = self.spec.tokens_per_image, self.spec.code_token_offset
        codes = [f"<c{i % self.spec.codebook_size}>" for i in range(k)]
        expected = [lo + i % self.spec.codebook_size for i in range(k)]
        unk_token = getattr(self._tokenizer.model, "unk_token", None)
        unk_id = self._tokenizer.token_to_id(unk_token) if unk_token else None
        for name, text in (("generation_prompt", self.spec.generation_prompt.replace("{prompt}", "")),
                           ("edit_prompt", self.spec.edit_prompt.replace("{instruction}", "")
                            .replace("{source}", " ".join(codes)))):
            try:
                ids = self._tokenizer.encode(text, add_special_tokens=False).ids
            except Exception as exc:
                raise R3ConfigError(f"{self.spec.model_dir}: tokenizer.json cannot read the {name} ({exc})") from None
            if unk_id is not None and unk_id in ids:
                raise R3ConfigError(f"{self.spec.model_dir}: the {name} holds words tokenizer.json does not know")
            if name == "edit_prompt" and [i for i in ids if lo <= i < lo + self.spec.codebook_size] != expected:
                raise R3ConfigError(f"{self.spec.model_dir}: tokenizer.json does not read <c0>..<c{k - 1}> as the "
                                    f"code tokens {lo}.. (code_token_offset): check r3graph.json against it")

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> TokenImageMaker:
        """Start (or join) the shared vLLM engine; blocks until it serves."""
        if not self._held:
            try:
                acquire(self.engine_spec).result()
            except BaseException:
                release(self.engine_spec)  # acquire counted us as a user: a failed start must not leak it
                raise
            self._held = True
        return self

    def stop(self) -> None:
        held, self._held = self._held, False
        if held:
            release(self.engine_spec)

    # -- ImageMaker ---------------------------------------------------------------------------------
    def generate(self, prompt: str, *, n: int, size: tuple[int, int], seed: int | None,
                 fields: Mapping[str, Any]) -> Made:
        text, start, end = _fill(self.spec.generation_prompt, "{prompt}", prompt)
        ids, revised = self._encode(text, start, end, expected_codes=0)
        return self._make(ids, revised, n, size, seed, fields)

    def edit(self, images: list[bytes], prompt: str, *, n: int, size: tuple[int, int] | None, seed: int | None,
             fields: Mapping[str, Any]) -> Made:
        if len(images) > 1:  # vllm-omni's words for a model that takes one input image
            raise ApiError(400, "Received multiple input images. Only a single image is supported by this model.")
        if size is None:
            size = png_size(images[0])
        codes = self._encode_image(images[0])
        source = " ".join(f"<c{c}>" for c in codes)
        text, start, end = _fill(self.spec.edit_prompt, "{instruction}", prompt, source)
        ids, revised = self._encode(text, start, end, expected_codes=self.spec.tokens_per_image)
        return self._make(ids, revised, n, size, seed, fields)

    # -- prompt and image work ------------------------------------------------------------------------
    def _encode(self, text: str, start: int, end: int, expected_codes: int) -> tuple[list[int], str | None]:
        """Token ids of ``text``; the user's span ``[start, end)`` is checked for unknown words."""
        try:
            enc = self._tokenizer.encode(text, add_special_tokens=False)
        except Exception as exc:  # e.g. a WordLevel tokenizer without an unknown token
            raise ApiError(400, f"the model's tokenizer cannot read this prompt ({exc})", "unknown_words") from None
        unk_token = getattr(self._tokenizer.model, "unk_token", None)
        unk_id = self._tokenizer.token_to_id(unk_token) if unk_token else None
        unknown = [(s, e) for i, (s, e) in zip(enc.ids, enc.offsets, strict=True)
                   if unk_id is not None and i == unk_id and start <= s < end]
        ids = list(enc.ids)
        lo, hi = self.spec.code_token_offset, self.spec.code_token_offset + self.spec.codebook_size
        if sum(lo <= i < hi for i in ids) != expected_codes:
            raise ApiError(400, "the prompt may not contain image code tokens (<cN>)", "code_tokens_in_prompt")
        if len(ids) + self.spec.tokens_per_image > self.spec.max_positions > 0:
            raise ApiError(400, f"the prompt is {len(ids)} tokens; with the {self.spec.tokens_per_image} image "
                           f"tokens that is over the model's {self.spec.max_positions} positions", "prompt_too_long")
        if not unknown:
            return ids, None
        words = [text[s:e] for s, e in unknown]
        self.count("unknown_words", len(words))
        if self.unknown_words == "error":
            raise ApiError(400, f"words the model does not know: {', '.join(map(repr, words))}", "unknown_words")
        revised, last = [], start
        for s, e in unknown:
            revised += [text[last:s], str(unk_token)]
            last = e
        return ids, "".join([*revised, text[last:end]])

    def _encode_image(self, png: bytes) -> list[int]:
        small = source_image(png, self.image_side)
        codes = _rows(self._images.encode([small]))[0]
        if len(codes) != self.spec.tokens_per_image:
            raise ApiError(500, f"the image tokenizer gave {len(codes)} codes, not {self.spec.tokens_per_image}",
                           "image_tokenizer")
        return codes

    def _temperature(self, fields: Mapping[str, Any]) -> float:
        value = fields.get("temperature")
        if value in (None, ""):
            return self.temperature
        try:
            t = float(value)
        except (TypeError, ValueError):
            t = -1.0
        if not 0.0 <= t <= 2.0:
            raise ApiError(400, f"temperature must be a number in [0, 2], got {value!r}")
        return t

    def _make(self, ids: list[int], revised: str | None, n: int, size: tuple[int, int], seed: int | None,
              fields: Mapping[str, Any]) -> Made:
        temperature = self._temperature(fields)
        future = ENGINE_LOOP.submit(self._sample(ids, n, seed, temperature))
        try:
            outputs = future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()  # cancels the task on the engine loop, which aborts the vLLM requests
            raise ApiError(500, f"the model took longer than {self.timeout_s:.0f} s", "engine_timeout") from None
        images, produced, cached = [], 0, 0
        for tokens, num_cached in outputs:
            lo = self.spec.code_token_offset
            codes = [t - lo for t in tokens]
            if len(codes) != self.spec.tokens_per_image or not all(0 <= c < self.spec.codebook_size for c in codes):
                raise ApiError(500, f"the model returned {len(codes)} tokens, not {self.spec.tokens_per_image} "
                               "image codes", "model_output")
            produced += len(tokens)
            cached += num_cached
            with self._lock:
                self.recent_codes.append(tuple(codes))
            images.append(codes)
        pngs = [_png(img, size) for img in self._images.decode(_as_array(images))]
        self.count("code_tokens", produced)
        self.count("prompt_tokens", len(ids) * n)
        self.count("cached_tokens", cached)
        usage = {"input_tokens": len(ids) * n, "output_tokens": produced, "total_tokens": len(ids) * n + produced}
        return Made(pngs, revised_prompt=revised, usage=usage)

    async def _sample(self, ids: list[int], n: int, seed: int | None,
                      temperature: float) -> list[tuple[list[int], int]]:
        """``n`` images' tokens (and cached prompt tokens), one vLLM request each (they batch)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        from r3graph.serving.registry import aget_engine

        engine = await aget_engine(self.engine_spec)
        k = self.spec.tokens_per_image

        async def one(i: int) -> tuple[list[int], int]:
            params = SamplingParams(
                allowed_token_ids=self.spec.code_ids, min_tokens=k, max_tokens=k, temperature=temperature,
                seed=None if seed is None else seed + i, detokenize=False,
                output_kind=RequestOutputKind.FINAL_ONLY)
            final = None
            async for out in engine.generate(TokensPrompt(prompt_token_ids=ids), params, f"img-{uuid.uuid4().hex}"):
                final = out
            assert final is not None
            return list(final.outputs[0].token_ids), int(final.num_cached_tokens or 0)

        return list(await asyncio.gather(*(one(i) for i in range(n))))


# An edit's source image is reduced to the tokenizer's few pixels; a larger one is refused before it is
# decoded (from its header), far below Pillow's own guard (89 Mpx), so one request cannot make this
# server decode hundreds of megabytes. 4096 x 4096 covers what image models take as input.
MAX_SOURCE_PIXELS = 4096 * 4096


def source_image(png: bytes, side: int) -> Image.Image:
    """An edit's input image, checked by its header and reduced to ``side`` x ``side`` RGB; a 400
    ``ApiError`` if it is unreadable or over :data:`MAX_SOURCE_PIXELS`."""
    try:
        with warnings.catch_warnings():  # Pillow's bomb warning: the cap below refuses those images anyway
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(png))
        with opened as img:
            width, height = img.size
            if width * height > MAX_SOURCE_PIXELS:
                raise ApiError(400, f"the input image is {width}x{height} pixels; the limit is {MAX_SOURCE_PIXELS} "
                               "pixels (4096x4096)", "image_too_large")
            return img.convert("RGB").resize((side, side), Image.Resampling.BOX)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ApiError(400, f"the input image is not readable ({type(exc).__name__})", "unreadable_image") from None


def _rows(codes: Any) -> list[list[int]]:
    """Codes as plain int rows, whatever array type the image tokenizer returns (numpy, torch, lists)."""
    if hasattr(codes, "tolist"):
        codes = codes.tolist()
    return [[int(c) for c in row] for row in codes]


def _as_array(rows: Sequence[Sequence[int]]) -> Any:
    import numpy as np

    return np.asarray(rows, dtype=np.int64)


def _png(image: Image.Image, size: tuple[int, int]) -> bytes:
    image = image.convert("RGB")
    if image.size != size:
        up = size[0] >= image.size[0] and size[1] >= image.size[1]
        image = image.resize(size, Image.Resampling.NEAREST if up else Image.Resampling.BOX)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
