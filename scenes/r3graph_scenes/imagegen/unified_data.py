"""Understanding tasks over the generator's own vocabulary and image codes (the unified-model experiment).

The shipped generator (scenes-imagegen) only writes images. To ask whether one network of its size can
also *read* them (issue 14, item 6: the paper's understanding-vs-generation dilemma), the same image
codes are given as input and the model writes words:

    caption  <bos> <und> <boi> {64 codes} <eoi> caption <sep>              -> {canonical caption} <eos>
    vqa      <bos> <und> <boi> {64 codes} <eoi> {question words} <sep>     -> {answer word} <eos>
    judge    <bos> <und> <boi> {64 codes} <eoi> judge {prompt words} <sep> -> pass <eos> | {edit sentence} <eos>

The new tokens are appended AFTER the code tokens (:class:`UnifiedVocab`), so every id of the shipped
vocabulary, and ``code_offset`` with it, is unchanged: the generation and edit formats of
:mod:`.vocab` are reused as they are, and the shipped weights keep working with :class:`.vocab.Vocab`.

Training examples come from the same scenes and codes as the generator's data (:func:`.data.examples`,
:func:`.data.encoded_dataset`), so U, G and U+G models see the same pictures and differ only in the
direction of the task. Held-out understanding scenes use the scenes-vlm evaluation's seed and question
order (:data:`HELD_OUT_SEED`, see ``scenes/r3graph_scenes/model/evaluate.py``) so its published figures are
a reference on the very same questions.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from r3graph_scenes.image_edits import image_edit
from r3graph_scenes.imagegen.data import CACHE, DataConfig, EditTriple, Encoded, GenPair, examples
from r3graph_scenes.imagegen.vocab import BOI, BOS, EOI, EOS, Vocab
from r3graph_scenes.language import caption
from r3graph_scenes.questions import Question, questions_for

UND_SPECIALS: tuple[str, ...] = ("<und>", "<sep>")
# Words of the question families and the task names that the generator's word list lacks.
UND_WORDS: tuple[str, ...] = ("caption", "colour", "how", "judge", "many", "object", "pass", "shape", "there",
                              "what", "yes")
PASS = "pass"
HELD_OUT_SEED = 12345  # scenes-vlm's held-out seed: the same scenes and questions as its model card
TASKS: tuple[str, ...] = ("caption", "vqa", "judge")


class UnifiedVocab(Vocab):
    """:class:`Vocab` plus :data:`UND_SPECIALS` and :data:`UND_WORDS` appended after the code tokens."""

    def __init__(self, codebook_size: int):
        super().__init__(codebook_size)
        base = set(self.ids)
        extra = [*UND_SPECIALS, *(w for w in UND_WORDS if w not in base)]
        self.tokens = [*self.tokens, *extra]
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.und, self.sep = self.ids["<und>"], self.ids["<sep>"]

    def image_context(self, codes) -> list[int]:
        return [BOS, self.und, BOI, *self.code_ids(codes), EOI]

    def caption_prompt(self, codes) -> list[int]:
        return [*self.image_context(codes), *self.text_ids("caption"), self.sep]

    def vqa_prompt(self, codes, question: str) -> list[int]:
        return [*self.image_context(codes), *self.text_ids(question), self.sep]

    def judge_prompt(self, codes, prompt: str) -> list[int]:
        return [*self.image_context(codes), *self.text_ids("judge"), *self.text_ids(prompt), self.sep]

    def answer(self, text: str) -> list[int]:
        """The target of an understanding task: its words, then <eos>."""
        return [*self.text_ids(text), EOS]

    def is_word(self, token_id: int) -> bool:
        """A word or <eos> (what understanding decoding may write): no image code, no other special."""
        tok = self.tokens[token_id]
        return token_id == EOS or not (tok.startswith("<") and tok.endswith(">"))

    def decode_words(self, ids) -> str:
        """Ids up to the first <eos>, as space-separated words (the canonical caption's spacing)."""
        out = []
        for i in ids:
            if int(i) == EOS:
                break
            out.append(self.tokens[int(i)])
        return " ".join(out)


def canonical(text: str) -> str:
    """A text as the vocabulary splits it, re-joined by single spaces (the form decode_words gives)."""
    from r3graph_scenes.imagegen.vocab import words

    return " ".join(words(text))


@dataclass(frozen=True)
class UndItem:
    """One understanding example: the image is row ``image`` of a codes array; ``text`` is the question
    (vqa) or the prompt (judge); ``family`` is the question family (vqa) or "pass"/"edit" (judge)."""

    task: str
    image: int
    text: str
    answer: str
    family: str = ""


@dataclass
class UndData:
    codes: np.ndarray  # (n, 64): every image an item points at
    items: dict[str, list[UndItem]]


def understanding_items(gen: list[GenPair], edits: list[EditTriple], seed: int) -> dict[str, list[UndItem]]:
    """Captions and questions of every generation pair's scene (rows 0..len(gen)-1), judge cases on the
    edit sources (rows len(gen)..): the source against its prompt -> the judge's edit, and each
    generation pair's scene against its own prompt -> pass."""
    rng = random.Random(seed)
    items: dict[str, list[UndItem]] = {t: [] for t in TASKS}
    for i, g in enumerate(gen):
        items["caption"].append(UndItem("caption", i, "", caption(g.scene)))
        items["vqa"] += [UndItem("vqa", i, q.text, q.answer, q.family) for q in questions_for(g.scene, rng)]
        items["judge"].append(UndItem("judge", i, g.prompt, PASS, "pass"))
    for j, e in enumerate(edits):
        fix = image_edit(e.prompt, e.source, e.target)
        if fix is not None:  # a random edit can leave the source satisfying the prompt: no judge case
            items["judge"].append(UndItem("judge", len(gen) + j, e.prompt, fix, "edit"))
    return items


def understanding_data(data: Encoded, cfg: DataConfig, cache: Path = CACHE) -> UndData:
    """Training items over the generator's encoded images (item lists cached: they need no tokenizer)."""
    codes = np.concatenate([data.gen_codes, data.edit_sources])
    return UndData(codes, training_items(cfg, cache))


def training_items(cfg: DataConfig, cache: Path = CACHE) -> dict[str, list[UndItem]]:
    """:func:`understanding_items` of the generator's training examples (cached)."""
    key = hashlib.sha256(json.dumps(["und-v1", asdict(cfg)]).encode()).hexdigest()[:16]
    file = cache / f"und-{key}.pkl"
    if file.is_file():
        with file.open("rb") as f:
            loaded: dict[str, list[UndItem]] = pickle.load(f)  # our own cache file
        return loaded
    gen, edits = examples(cfg, cache)
    items = understanding_items(gen, edits, cfg.seed + 2)
    cache.mkdir(parents=True, exist_ok=True)
    with file.open("wb") as f:
        pickle.dump(items, f)
    return items


def prompt_ids(vocab: UnifiedVocab, codes: np.ndarray, item: UndItem) -> list[int]:
    if item.task == "caption":
        return vocab.caption_prompt(codes[item.image])
    if item.task == "vqa":
        return vocab.vqa_prompt(codes[item.image], item.text)
    if item.task == "judge":
        return vocab.judge_prompt(codes[item.image], item.text)
    raise ValueError(f"unknown understanding task {item.task!r}; expected one of {TASKS}")


def und_sequence(vocab: UnifiedVocab, codes: np.ndarray, item: UndItem) -> tuple[list[int], int]:
    """(prompt + answer ids, prompt length): the loss covers the answer and its <eos> only."""
    prompt = prompt_ids(vocab, codes, item)
    return prompt + vocab.answer(item.answer), len(prompt)


def held_out_questions(scenes, seed: int = HELD_OUT_SEED) -> list[tuple[int, Question]]:
    """scenes-vlm's held-out questions: one per answerable family per scene, from ``Random(seed + 1)``."""
    rng = random.Random(seed + 1)
    return [(i, q) for i, s in enumerate(scenes) for q in questions_for(s, rng)]
