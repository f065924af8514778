"""Canonical captions and a forgiving caption parser.

Caption grammar (lowercase; tokens separated by single spaces; "." is its own token)::

    caption  := objects " ." { " " relation " ." }          (0-2 relations)
    objects  := group { " and " group }                      (groups left to right)
    group    := count " " size " " colour " " shape["s"]     (count: "a" | "two" | "three" | "four")
    relation := "the " colour " " shape " is " rel " the " colour " " shape
    rel      := "left of" | "right of" | "above" | "below"

e.g. ``a large red circle and two small blue squares .`` The canonical caption is short and
regular because a ~1M-parameter model has to learn to write it. The parser is the opposite:
it reads free text (a real VLM's answer, a paraphrase, a question) by keyword matching, so
metrics, questions and edits all work on any text about a scene.
"""

import re
from collections import Counter
from dataclasses import dataclass

from pydantic import BaseModel, Field

from r3graph_scenes.world import COLOURS, SHAPES, Scene

NUMBER_TEXT = {1: "a", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
               9: "nine", 10: "ten"}
NUMBER_WORDS: dict[str, int] = {
    "no": 0, "zero": 0, "none": 0, "a": 1, "an": 1, "one": 1, "single": 1, "another": 1, "two": 2,
    "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}
COLOUR_WORDS: dict[str, str] = {c: c for c in COLOURS} | {"violet": "purple"}
SIZE_WORDS: dict[str, str] = {"small": "small", "little": "small", "tiny": "small",
                              "large": "large", "big": "large", "huge": "large"}
SHAPE_WORDS: dict[str, str] = ({s: s for s in SHAPES} | {s + "s": s for s in SHAPES}
                               | {"rectangle": "square", "rectangles": "square"})
PLURAL_WORDS = {s + "s" for s in SHAPES} | {"rectangles"}
DEFINITE = {"the", "this", "that", "these", "those"}
FILLER = {"coloured", "colored", "shaped", "solid", "filled", "bright", "dark", "light", "sized", "some",
          "other", "only", "exactly", "just", "any"}
FORWARD_SKIP = {"that", "which", "is", "are", "coloured", "colored", "in", "painted"}
ABOVE_WORDS = {"above", "over", "atop"}
BELOW_WORDS = {"below", "under", "beneath", "underneath"}
SUBJECT_REACH = 8  # tokens allowed between a subject mention and its relation phrase
OBJECT_REACH = 2  # tokens allowed between a relation phrase and its object mention
CONNECT = {"and", "to", "the", "on", "is", "are", "also", "but", "slightly", "directly", "just", "while"}
NEGATION = {"not", "t", "without", "nor", "never", "neither"}  # "t" from "isn't", "don't"


class ParsedObject(BaseModel):
    """``count`` objects of one colour+shape (and size, when the text says it)."""

    colour: str
    shape: str
    size: str | None = None
    count: int = 1


class ObjectRef(BaseModel):
    """How a relation names an object; colour may be missing in free text ("the circle")."""

    colour: str | None = None
    shape: str


class ParsedRelation(BaseModel):
    subject: ObjectRef
    relation: str
    object: ObjectRef


class ParsedCaption(BaseModel):
    objects: list[ParsedObject] = Field(default_factory=list)
    relations: list[ParsedRelation] = Field(default_factory=list)

    def kind_counts(self) -> Counter[tuple[str, str]]:
        """Mentioned objects per colour+shape, with multiplicity."""
        out: Counter[tuple[str, str]] = Counter()
        for o in self.objects:
            out[(o.colour, o.shape)] += o.count
        return out


@dataclass
class Mention:
    """One noun phrase naming a shape; ``start``/``end`` are token positions in its sentence."""

    start: int
    end: int
    shape: str
    colour: str | None
    size: str | None
    count: int
    definite: bool
    explicit_count: bool  # a number other than "a"/"an" was written


def tokenize(text: str) -> list[list[str]]:
    """Lowercase word/number tokens, split into sentences at . ! ? ; (other punctuation dropped)."""
    sentences: list[list[str]] = [[]]
    for tok in re.findall(r"[a-z]+|\d+|[.!?;]", text.lower()):
        if tok in ".!?;":
            if sentences[-1]:
                sentences.append([])
        else:
            sentences[-1].append(tok)
    return [s for s in sentences if s]


def _number(tok: str) -> int | None:
    return int(tok) if tok.isdigit() else NUMBER_WORDS.get(tok)


def find_mentions(toks: list[str]) -> list[Mention]:
    """Shape words with the colour/size/count/determiner words attached to them."""
    out: list[Mention] = []
    for i, tok in enumerate(toks):
        shape = SHAPE_WORDS.get(tok)
        if shape is None:
            continue
        colour = size = None
        count: int | None = None
        definite = explicit = False
        start, j = i, i - 1
        while j >= 0 and i - j <= 6:
            w = toks[j]
            if w in COLOUR_WORDS:
                colour = colour or COLOUR_WORDS[w]
            elif w in SIZE_WORDS:
                size = size or SIZE_WORDS[w]
            elif _number(w) is not None:
                if count is None:
                    count, explicit = _number(w), w not in ("a", "an", "another")
            elif w in DEFINITE:
                definite = True
            elif w == "of" and j >= 1 and toks[j - 1] == "pair":
                count, explicit, j = 2, True, j - 1
            elif w not in FILLER:
                break
            start, j = j, j - 1
        end = i + 1
        if colour is None:  # "a circle that is red", "the square is blue", "a star in green"
            k = i + 1
            while k < len(toks) and k - i <= 3 and toks[k] in FORWARD_SKIP:
                k += 1
            if k < len(toks) and toks[k] in COLOUR_WORDS:
                colour, end = COLOUR_WORDS[toks[k]], k + 1
        if count is None:
            count = 2 if tok in PLURAL_WORDS else 1
        if any(t in NEGATION for t in toks[max(0, start - 3):start]):  # "there isn't a green star"
            count = 0
        out.append(Mention(start, end, shape, colour, size, count, definite, explicit))
    return out


def _relation_phrases(toks: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, relation) for every relation phrase in a sentence."""
    out: list[tuple[int, int, str]] = []
    for k, tok in enumerate(toks):
        nxt = toks[k + 1] if k + 1 < len(toks) else ""
        if tok in ("left", "right"):
            m = k + 1
            while m < len(toks) and toks[m] in ("side", "hand"):
                m += 1
            if m < len(toks) and toks[m] == "of":
                out.append((k, m + 1, f"{tok} of"))
        elif tok in ABOVE_WORDS or (tok == "higher" and nxt == "than"):
            out.append((k, k + (2 if tok == "higher" else 1), "above"))
        elif tok in BELOW_WORDS or (tok == "lower" and nxt == "than"):
            out.append((k, k + (2 if tok == "lower" else 1), "below"))
        elif tok == "top" and nxt == "of" and k >= 1 and toks[k - 1] == "on":
            out.append((k - 1, k + 2, "above"))
    return out


def _connected(toks: list[str], start: int, end: int) -> bool:
    """Whether only linking words ("and", "to the", ...) lie between two positions."""
    return start <= end and end - start <= 4 and all(t in CONNECT for t in toks[start:end])


def _relations(toks: list[str], mentions: list[Mention]) -> list[ParsedRelation]:
    """Relations of one sentence. Handles chains ("X is above and to the left of Y", "X is left of
    Y and above Z") and inverted order ("to the left of Y is X")."""
    live = [m for m in mentions if m.count > 0]
    phrases = _relation_phrases(toks)
    objects: list[Mention | None] = [
        next((m for m in live if m.start >= end and m.start - end <= OBJECT_REACH), None) for _, end, _ in phrases
    ]
    for n in range(len(phrases) - 2, -1, -1):  # "above and to the left of Y": both have object Y
        if objects[n] is None and _connected(toks, phrases[n][1], phrases[n + 1][0]):
            objects[n] = objects[n + 1]
    out: list[ParsedRelation] = []
    subject: Mention | None = None
    for n, (start, _, rel) in enumerate(phrases):
        obj = objects[n]
        if n and subject is not None:
            prev_obj, prev_end = objects[n - 1], phrases[n - 1][1]
            anchor = prev_obj.end if prev_obj is not None and prev_obj.start >= prev_end else prev_end
            if not _connected(toks, anchor, start):
                subject = None
        else:
            subject = None
        if subject is None:
            before = [m for m in live if m.end <= start and start - m.end <= SUBJECT_REACH]
            if before:
                subject = before[-1]
            elif obj is not None:  # inverted: "to the left of the square is a circle"
                subject = next((m for m in live if m.start >= obj.end and m.start - obj.end <= 4), None)
        if subject is None or obj is None or subject is obj:
            continue
        out.append(ParsedRelation(subject=ObjectRef(colour=subject.colour, shape=subject.shape), relation=rel,
                                  object=ObjectRef(colour=obj.colour, shape=obj.shape)))
    return out


def parse_caption(text: str) -> ParsedCaption:
    """Objects and relations stated by any text about a scene.

    Indefinite mentions ("a red circle", "two red circles") introduce objects and add up;
    definite ones ("the red circle") only refer back, and count once if nothing introduced that
    colour+shape. Shapes without a colour are ignored as objects but may name relation ends.
    """
    mentions: list[Mention] = []
    relations: list[ParsedRelation] = []
    for toks in tokenize(text):
        ms = find_mentions(toks)
        mentions.extend(ms)
        relations.extend(_relations(toks, ms))
    named = [m for m in mentions if m.colour is not None and m.count > 0]
    introduced = {(m.colour, m.shape) for m in named if not m.definite}
    entries: dict[tuple[str, str, str | None], ParsedObject] = {}
    for m in named:
        assert m.colour is not None
        if m.definite and (m.colour, m.shape) in introduced:
            continue
        if m.definite:  # a back-reference to something never introduced: counts once
            key = next((k for k in entries if k[:2] == (m.colour, m.shape)), (m.colour, m.shape, m.size))
            old = entries.get(key)
            entries[key] = ParsedObject(colour=m.colour, shape=m.shape, size=key[2],
                                        count=max(m.count, old.count if old else 0))
            continue
        key = (m.colour, m.shape, m.size)
        old = entries.get(key)
        entries[key] = ParsedObject(colour=m.colour, shape=m.shape, size=m.size,
                                    count=m.count + (old.count if old else 0))
    return ParsedCaption(objects=list(entries.values()), relations=relations)


def number_text(n: int) -> str:
    return NUMBER_TEXT.get(n, str(n))


def object_phrase(obj: ParsedObject) -> str:
    """``a large red circle`` / ``two small red circles`` / ``an orange star``."""
    words = ([obj.size] if obj.size else []) + [obj.colour, obj.shape + ("s" if obj.count != 1 else "")]
    article = number_text(obj.count)
    if article == "a" and words[0][0] in "aeiou":
        article = "an"
    return " ".join([article, *words])


def ref_phrase(ref: ObjectRef) -> str:
    """``the red circle`` (or ``the circle`` when the colour is unknown)."""
    return " ".join(["the"] + ([ref.colour] if ref.colour else []) + [ref.shape])


def relation_sentence(rel: ParsedRelation) -> str:
    return f"{ref_phrase(rel.subject)} is {rel.relation} {ref_phrase(rel.object)}"


def format_caption(parsed: ParsedCaption) -> str:
    """The canonical text for parsed content (inverse of :func:`parse_caption` on canonical text)."""
    if not parsed.objects and not parsed.relations:
        return ""
    parts = [" and ".join(object_phrase(o) for o in parsed.objects) + " ."] if parsed.objects else []
    parts += [relation_sentence(r) + " ." for r in parsed.relations]
    return " ".join(parts)


def scene_content(scene: Scene) -> ParsedCaption:
    """What the canonical caption says about a scene: groups left to right, then its relations."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i in sorted(range(len(scene.objects)), key=lambda i: (scene.objects[i].x, scene.objects[i].y)):
        o = scene.objects[i]
        groups.setdefault((o.colour, o.shape, o.size), []).append(i)
    objects = [ParsedObject(colour=c, shape=s, size=z, count=len(ix)) for (c, s, z), ix in groups.items()]

    def ref(i: int) -> ObjectRef:
        return ObjectRef(colour=scene.objects[i].colour, shape=scene.objects[i].shape)

    relations = [ParsedRelation(subject=ref(r.subject), relation=r.relation, object=ref(r.object))
                 for r in scene.relations]
    return ParsedCaption(objects=objects, relations=relations)


def caption(scene: Scene) -> str:
    """The canonical caption of a scene (see the grammar in the module docstring)."""
    return format_caption(scene_content(scene))
