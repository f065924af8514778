"""The image generator's vocabulary: specials, the scene world's words, and one token per image code.

Word level on purpose: the world's prompts use about a hundred words, so a word is one token and the
model spends its few parameters on pictures, not spelling. The same split is done twice and a test
keeps them equal: :func:`words` here (the ids the trainer and the evaluator build) and the
``tokenizers`` pipeline saved in tokenizer.json (what vLLM runs on the prompt text the server formats
from ``r3graph.json``): lowercase, then ``\\w+|[^\\w\\s]+`` (the Whitespace pre-tokenizer's rule), with
the specials and code tokens as added tokens so ``<c12>`` is never split.

Sequences (``r3graph.json`` carries the same formats for the server)::

    generation  <bos> <gen> {prompt words} <boi>                                   -> {64 codes} <eoi>
    edit        <bos> <edit> <boi> {64 source codes} <eoi> {instruction words} <boi> -> {64 codes} <eoi>
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers

from r3graph_scenes import language
from r3graph_scenes.world import COLOURS, RELATIONS, SHAPES, SIZES

SPECIALS: tuple[str, ...] = ("<pad>", "<unk>", "<bos>", "<eos>", "<gen>", "<edit>", "<boi>", "<eoi>")
PAD, UNK, BOS, EOS, GEN, EDIT, BOI, EOI = range(len(SPECIALS))
TOKENS_PER_IMAGE = 64
WORD_RE = re.compile(r"\w+|[^\w\s]+")  # the tokenizers Whitespace pre-tokenizer's pattern
GENERATION_PROMPT = "<bos> <gen> {prompt} <boi>"
EDIT_PROMPT = "<bos> <edit> <boi> {source} <eoi> {instruction} <boi>"

# Words of the templates that build prompts and edits (geneval_prompts, edits, image_edits, painter)
# and of the parser's relation phrases, so a user's paraphrase the parser reads is not all <unk>.
_TEMPLATE_WORDS = ("a an and the of is photo change to into remove delete drop add sentence left right above "
                   "below higher lower than on top side hand pair no further edit needed , . ! ? ;")


def _base_words() -> set[str]:
    words = set(_TEMPLATE_WORDS.split())
    words |= set(COLOURS) | set(SHAPES) | {s + "s" for s in SHAPES} | set(SIZES)
    words |= {w for rel in RELATIONS for w in rel.split()}
    for table in (language.NUMBER_WORDS, language.COLOUR_WORDS, language.SIZE_WORDS, language.SHAPE_WORDS):
        words |= set(table)
    words |= (language.DEFINITE | language.FILLER | language.FORWARD_SKIP | language.ABOVE_WORDS
              | language.BELOW_WORDS | language.CONNECT | language.NEGATION)
    words |= set(language.NUMBER_TEXT.values()) | {str(n) for n in range(11)}
    return words


WORDS: tuple[str, ...] = tuple(sorted(_base_words()))


def words(text: str) -> list[str]:
    """The word tokens of a text, exactly as tokenizer.json splits it (lowercased)."""
    return WORD_RE.findall(text.lower())


class Vocab:
    """Ids: specials, then :data:`WORDS`, then ``<c0>``..``<c{K-1}>`` (``code_offset`` is the id of ``<c0>``)."""

    def __init__(self, codebook_size: int):
        if codebook_size < 2:
            raise ValueError(f"codebook_size must be >= 2, got {codebook_size}")
        self.codebook_size = codebook_size
        self.tokens: list[str] = [*SPECIALS, *WORDS, *(f"<c{i}>" for i in range(codebook_size))]
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.code_offset = len(SPECIALS) + len(WORDS)

    def __len__(self) -> int:
        return len(self.tokens)

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` outside the vocabulary (they become <unk>), in order, each once: the
        server warns with these, since the model cannot follow what it never read."""
        seen: list[str] = []
        for w in words(text):
            if w not in self.ids and w not in seen:
                seen.append(w)
        return seen

    def text_ids(self, text: str) -> list[int]:
        return [self.ids.get(w, UNK) for w in words(text)]

    def code_ids(self, codes: Iterable[int]) -> list[int]:
        out = [int(c) for c in codes]
        if len(out) != TOKENS_PER_IMAGE or not all(0 <= c < self.codebook_size for c in out):
            raise ValueError(f"an image is {TOKENS_PER_IMAGE} codes in [0, {self.codebook_size}), got {len(out)} "
                             f"codes in [{min(out, default=0)}, {max(out, default=0)}]")
        return [self.code_offset + c for c in out]

    def codes(self, ids: Sequence[int]) -> list[int]:
        """Token ids -> image codes (raises on a non-code id: decoding must be restricted to codes)."""
        out = [int(i) - self.code_offset for i in ids]
        if not all(0 <= c < self.codebook_size for c in out):
            raise ValueError("ids outside the code tokens; decode with generation restricted to code tokens")
        return out

    def generation_prompt(self, prompt: str) -> list[int]:
        return [BOS, GEN, *self.text_ids(prompt), BOI]

    def edit_prompt(self, source_codes: Iterable[int], instruction: str) -> list[int]:
        return [BOS, EDIT, BOI, *self.code_ids(source_codes), EOI, *self.text_ids(instruction), BOI]

    def target(self, codes: Iterable[int]) -> list[int]:
        return [*self.code_ids(codes), EOI]

    def format_source(self, source_codes: Iterable[int]) -> str:
        """The ``{source}`` text of :data:`EDIT_PROMPT` (code tokens separated by spaces)."""
        return " ".join(self.tokens[i] for i in self.code_ids(source_codes))

    def hf_tokenizer(self) -> Tokenizer:
        tok = Tokenizer(models.WordLevel(vocab=dict(self.ids), unk_token="<unk>"))
        tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in self.tokens[self.code_offset:]])
        return tok

    def save(self, path: str | Path) -> None:
        """tokenizer.json and tokenizer_config.json that transformers' AutoTokenizer and vLLM load."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.hf_tokenizer().save(str(path / "tokenizer.json"))
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<bos>", "eos_token": "<eoi>",
                  "unk_token": "<unk>", "pad_token": "<pad>", "model_max_length": 256,
                  "clean_up_tokenization_spaces": False, "add_bos_token": False, "add_eos_token": False}
        (path / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
