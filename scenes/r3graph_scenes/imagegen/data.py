"""Training and held-out examples for the generator, from the scene world with fixed seeds.

Generation pairs (prompt -> image):

* the world's canonical captions of random scenes, half of them with the sizes dropped (GenEval's
  prompts state no sizes, so the model must learn to pick one);
* GenEval-template prompts ("a photo of ...", :mod:`r3graph_scenes.geneval_prompts`) laid out by the
  painter, unsized and with sizes inserted, EXCEPT every prompt the benchmark can draw: the first
  :data:`HELD_OUT_N` of ``geneval_prompts`` at its default seed. Excluded by content, not only by
  string: a held-out prompt's objects and relation never appear in this template, with or without
  sizes, so the benchmark measures moving from the caption grammar to GenEval's phrasing. (That
  holds out all of single_object, two_object and counting, which have 24 to 72 prompts each.)

Edit triples (source image, one edit sentence -> edited image): a painting with one mistake
(:func:`~r3graph_scenes.image_edits.make_mistake`) and the sentence the judge writes to fix it
(:func:`~r3graph_scenes.image_edits.image_edit`), plus random edits of the same forms (change,
remove, add, relation); the target is what the exact editor (:func:`~r3graph_scenes.painter.apply_edit`)
makes of the source, which for "add" is one of many right places.

Images are encoded once with the image tokenizer and cached under ``.cache/imagegen`` (keyed by the
tokenizer's weights and the data settings).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from r3graph_scenes.geneval_prompts import CATEGORIES, _all, geneval_prompts
from r3graph_scenes.image_edits import image_edit, make_mistake
from r3graph_scenes.language import caption
from r3graph_scenes.painter import apply_edit, layout
from r3graph_scenes.world import COLOURS, RELATIONS, SHAPES, SIZES, Scene, generate_scenes, render

TRAIN_SEED = 2611  # captions' scenes and every other random choice of the training data
EDIT_HELD_OUT_SEED = 7707  # held-out edit triples; no other use in the project
HELD_OUT_N = 600  # geneval_prompts(HELD_OUT_N) at its default seed never enters training
CACHE = Path(".cache/imagegen")
_SIZE_FREE = re.compile(r" (small|large) ")


@dataclass(frozen=True)
class DataConfig:
    # Sized to what ~35 min on a shared 2-core machine can use (about 1.5 passes).
    captions: int = 8000
    geneval_layouts: int = 1  # layouts per GenEval-template prompt (unsized and sized each)
    mistakes: int = 7000
    random_edits: int = 3000
    seed: int = TRAIN_SEED


@dataclass(frozen=True)
class GenPair:
    prompt: str
    scene: Scene


@dataclass(frozen=True)
class EditTriple:
    source: Scene
    instruction: str
    target: Scene
    prompt: str  # what the source was painted for (the judge's reference); scoring only


def held_out_prompts() -> set[str]:
    return {p.prompt for p in geneval_prompts(HELD_OUT_N)}


def with_sizes(prompt: str, rng: random.Random, sizes: dict[str, str] | None = None) -> str:
    """"a photo of a red circle and an orange star" -> "... a large red circle and a small orange star"
    (one size per colour+shape, so "two red circles" stay twins; ``sizes`` fixes some: "red circle" -> "small")."""
    chosen: dict[str, str] = dict(sizes or {})

    def sized(m: re.Match[str]) -> str:
        size = chosen.setdefault(m["kind"], rng.choice(SIZES))
        return f"{'a' if m['art'] in ('a', 'an') else m['art']} {size} {m['kind']}"

    colours, shapes = "|".join(COLOURS), "|".join(SHAPES)
    return re.sub(rf"\b(?P<art>an?|two|three|four) (?P<kind>(?:{colours}) (?:{shapes}))", sized, prompt)


def generation_pairs(cfg: DataConfig) -> list[GenPair]:
    rng = random.Random(cfg.seed)
    out: list[GenPair] = []
    for scene in generate_scenes(cfg.seed, cfg.captions):
        text = caption(scene)
        if rng.random() < 0.5:
            text = re.sub(r"\ba (?=[aeiou])", "an ", _SIZE_FREE.sub(" ", text))
        out.append(GenPair(text, scene))
    held = held_out_prompts()
    for category in CATEGORIES:
        for text, _ in _all(category):
            if text in held:
                continue
            for _ in range(cfg.geneval_layouts):
                for prompt in (text, with_sizes(text, rng)):
                    out.append(GenPair(prompt, layout(prompt, rng)))
    leaked = {p.prompt for p in out} & held
    if leaked:
        raise AssertionError(f"held-out prompts in training data: {sorted(leaked)[:3]}")
    rng.shuffle(out)
    return out


def _ref(scene: Scene, i: int) -> str:
    o = scene.objects[i]
    return f"the {o.colour} {o.shape}"


def random_edit(scene: Scene, rng: random.Random) -> str:
    """One edit sentence of the forms the judge writes, about ``scene`` (it may be a no-op there)."""
    i = rng.randrange(len(scene.objects))
    o = scene.objects[i]
    form = rng.choice(("change", "change", "remove", "add", "relation"))
    if form == "change":
        return (f"change {_ref(scene, i)} to a {rng.choice(SIZES)} {rng.choice(COLOURS)} "
                f"{o.shape if rng.random() < 0.6 else rng.choice(SHAPES)}")
    if form == "remove" and len(scene.objects) > 1:
        return f"remove {_ref(scene, i)}"
    if form == "relation" and len(scene.objects) > 1:
        j = rng.choice([k for k in range(len(scene.objects)) if k != i])
        return f"{_ref(scene, i)} is {rng.choice(RELATIONS)} {_ref(scene, j)}"
    return f"add a {rng.choice(SIZES)} {rng.choice(COLOURS)} {rng.choice(SHAPES)}"


def mistake_triple(scene: Scene, prompt: str, rng: random.Random) -> EditTriple | None:
    made = make_mistake(scene, rng, prompt=prompt)
    if made is None:
        return None
    wrong = made[0]
    edit = image_edit(prompt, wrong, scene)
    if edit is None:
        return None
    return EditTriple(wrong, edit, apply_edit(wrong, edit, rng), prompt)


def edit_triples(cfg: DataConfig) -> list[EditTriple]:
    rng = random.Random(cfg.seed + 1)
    out: list[EditTriple] = []
    scenes = generate_scenes(cfg.seed + 1, cfg.mistakes + cfg.random_edits)
    for scene in scenes[:cfg.mistakes]:
        t = mistake_triple(scene, caption(scene), rng)
        if t is not None:
            out.append(t)
    for scene in scenes[cfg.mistakes:]:
        instruction = random_edit(scene, rng)
        target = apply_edit(scene, instruction, rng)
        if target != scene:
            out.append(EditTriple(scene, instruction, target, caption(target)))
    rng.shuffle(out)
    return out


def held_out_edits(n: int, seed: int = EDIT_HELD_OUT_SEED) -> list[EditTriple]:
    """``n`` mistake-and-fix triples on scenes of a seed no training uses: half the world's captions,
    half the benchmark's GenEval prompts laid out (the R3 loop's case: its judge fixing a painting)."""
    rng = random.Random(seed)
    out: list[EditTriple] = []
    scenes = iter(generate_scenes(seed, 10 * n))
    prompts = iter(geneval_prompts(10 * n))
    while len(out) < n:
        if len(out) % 2:
            p = next(prompts).prompt
            scene = layout(p, rng)
            # The judge's edits name sizes, so the painting is judged against the prompt with its sizes.
            t = mistake_triple(scene, with_sizes(p, rng, {f"{o.colour} {o.shape}": o.size for o in scene.objects}), rng)
        else:
            s = next(scenes)
            t = mistake_triple(s, caption(s), rng)
        if t is not None:
            out.append(t)
    return out


@dataclass
class Encoded:
    """Token-ready data: prompts as text, images as (n, 64) codes."""

    gen_prompts: list[str]
    gen_codes: np.ndarray
    edit_instructions: list[str]
    edit_sources: np.ndarray
    edit_targets: np.ndarray


def encode_scenes(tokenizer, scenes: list[Scene]) -> np.ndarray:
    size = tokenizer.image_size
    return tokenizer.encode([render(s, size) for s in scenes])


def _tokenizer_digest(tokenizer) -> str:
    h = hashlib.sha256()
    for k, v in sorted(tokenizer.net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def examples(cfg: DataConfig, cache: Path = CACHE) -> tuple[list[GenPair], list[EditTriple]]:
    """Generation pairs and edit triples (cached: they do not depend on the image tokenizer)."""
    key = hashlib.sha256(json.dumps(asdict(cfg)).encode()).hexdigest()[:16]
    file = cache / f"examples-{key}.pkl"
    if file.is_file():
        with file.open("rb") as f:
            loaded: tuple[list[GenPair], list[EditTriple]] = pickle.load(f)  # our own cache file
        return loaded
    made = generation_pairs(cfg), edit_triples(cfg)
    cache.mkdir(parents=True, exist_ok=True)
    with file.open("wb") as f:
        pickle.dump(made, f)
    return made


def encoded_dataset(tokenizer, cfg: DataConfig, cache: Path = CACHE) -> Encoded:
    """The training data, encoded (from the cache when the tokenizer and settings are the same)."""
    key = hashlib.sha256(json.dumps([asdict(cfg), _tokenizer_digest(tokenizer)]).encode()).hexdigest()[:16]
    file = cache / f"train-{key}.npz"
    if file.is_file():
        z = np.load(file, allow_pickle=False)
        return Encoded(list(z["gen_prompts"]), z["gen_codes"], list(z["edit_instructions"]), z["edit_sources"],
                       z["edit_targets"])
    gen, edits = examples(cfg, cache)
    data = Encoded([g.prompt for g in gen], encode_scenes(tokenizer, [g.scene for g in gen]),
                   [e.instruction for e in edits], encode_scenes(tokenizer, [e.source for e in edits]),
                   encode_scenes(tokenizer, [e.target for e in edits]))
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(file, gen_prompts=np.array(data.gen_prompts), gen_codes=data.gen_codes,
                        edit_instructions=np.array(data.edit_instructions), edit_sources=data.edit_sources,
                        edit_targets=data.edit_targets)
    return data

