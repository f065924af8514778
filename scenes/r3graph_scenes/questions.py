"""Questions with exact answers, and yes/no verification of captions.

Families and answer forms:

* ``existence`` - "is there a red circle?" -> "yes"/"no" (at least one such object)
* ``colour``    - "what colour is the circle?" (only when that shape is unique) -> "red"
* ``shape``     - "what shape is the red object?" (only when that colour is unique) -> "circle"
* ``count``     - "how many circles are there?" -> a number word: "zero", "one", "two", ...
* ``relation``  - "is the red circle left of the blue square?" -> "yes"/"no"; only asked about
  uniquely named objects that are clearly apart on the relation's axis.

Yes/no questions about counts follow one rule: "is there a ..." means at least one, while a
written number ("are there two red circles?", "is there one ...") means exactly that many.
"""

import random

from pydantic import BaseModel

from r3graph_scenes.language import (
    COLOUR_WORDS,
    NUMBER_WORDS,
    SHAPE_WORDS,
    ParsedObject,
    find_mentions,
    number_text,
    object_phrase,
    parse_caption,
    ref_phrase,
    tokenize,
)
from r3graph_scenes.metrics import relation_true
from r3graph_scenes.world import COLOURS, OPPOSITE, SHAPES, Scene, holds

FAMILIES: tuple[str, ...] = ("existence", "colour", "shape", "count", "relation")
YES_WORDS = {"yes", "yeah", "yep", "true", "correct"}
NO_WORDS = {"no", "nope", "false", "incorrect", "not"}
COUNT_TEXT = {0: "zero"} | {n: number_text(n) for n in range(2, 11)} | {1: "one"}


class Question(BaseModel):
    family: str
    text: str
    answer: str


def _existence(scene: Scene, rng: random.Random) -> Question:
    kinds = sorted(scene.kind_counts())
    if rng.random() < 0.5:
        colour, shape = rng.choice(kinds)
    else:  # a near miss: a kind absent from the scene
        absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in kinds]
        colour, shape = rng.choice(absent)
    answer = "yes" if scene.find(colour, shape) else "no"
    text = f"is there {object_phrase(ParsedObject(colour=colour, shape=shape))}?"
    return Question(family="existence", text=text, answer=answer)


def _colour(scene: Scene, rng: random.Random) -> Question | None:
    shapes = [s for s in SHAPES if len(scene.find(None, s)) == 1]
    if not shapes:
        return None
    shape = rng.choice(shapes)
    colour = scene.objects[scene.find(None, shape)[0]].colour
    return Question(family="colour", text=f"what colour is the {shape}?", answer=colour)


def _shape(scene: Scene, rng: random.Random) -> Question | None:
    colours = [c for c in COLOURS if len(scene.find(c, None)) == 1]
    if not colours:
        return None
    colour = rng.choice(colours)
    shape = scene.objects[scene.find(colour, None)[0]].shape
    return Question(family="shape", text=f"what shape is the {colour} object?", answer=shape)


def _count(scene: Scene, rng: random.Random) -> Question:
    present = sorted({o.shape for o in scene.objects})
    shape = rng.choice(present) if rng.random() < 0.8 else rng.choice(SHAPES)
    n = len(scene.find(None, shape))
    return Question(family="count", text=f"how many {shape}s are there?", answer=COUNT_TEXT[n])


def _relation(scene: Scene, rng: random.Random) -> Question | None:
    unique = [i for i in range(len(scene.objects)) if scene.is_unique(i)]
    pairs = [(i, j) for i in unique for j in unique if i != j]
    rng.shuffle(pairs)
    for i, j in pairs:
        a, b = scene.objects[i], scene.objects[j]
        crisp = [r for r in ("left of", "above") if holds(a, r, b) or holds(a, OPPOSITE[r], b)]
        if not crisp:
            continue
        axis = rng.choice(crisp)
        rel = axis if rng.random() < 0.5 else OPPOSITE[axis]
        text = f"is the {a.colour} {a.shape} {rel} the {b.colour} {b.shape}?"
        return Question(family="relation", text=text, answer="yes" if holds(a, rel, b) else "no")
    return None


_MAKERS = {"existence": _existence, "colour": _colour, "shape": _shape, "count": _count,
           "relation": _relation}


def questions_for(scene: Scene, rng: random.Random, n: int | None = None) -> list[Question]:
    """One question per answerable family (``n=None``), or ``n`` questions cycling the families.

    Families a scene cannot support (e.g. colour when no shape is unique) are skipped; with
    ``n`` given, questions may repeat once the distinct ones run out.
    """
    out: list[Question] = []
    if n is None:
        for family in FAMILIES:
            q = _MAKERS[family](scene, rng)
            if q is not None:
                out.append(q)
        return out
    k = 0
    while len(out) < n:
        q = _MAKERS[FAMILIES[k % len(FAMILIES)]](scene, rng)
        k += 1
        if q is not None and (q not in out or k > 20 * n):
            out.append(q)
    return out


def _first(tokens: list[str], table: dict[str, str]) -> str | None:
    return next((table[t] for t in tokens if t in table), None)


def _answer_tokens(text: str) -> list[str]:
    return [t for sentence in tokenize(text) for t in sentence]


def verify_answer(question: Question, answer_text: str) -> bool:
    """Whether a free-text answer says the expected answer (first decisive word counts).

    Yes/no: the first of yes/no/not/n't... decides; a bare restatement ("There is.") counts as yes.
    Counts: digits or number words; "a"/"an" mean one only when no other number is given.
    """
    toks = _answer_tokens(answer_text)
    if question.family in ("existence", "relation"):
        yes_no = {w: "yes" for w in YES_WORDS} | {w: "no" for w in NO_WORDS | {"t", "none", "nothing"}}
        said = _first(toks, yes_no)
        if said is None and toks[:1] in (["there"], ["it"]):  # "There is.", "It is left of it."
            said = "yes"
        return said == question.answer
    if question.family == "count":
        numbers = {w: str(n) for w, n in NUMBER_WORDS.items() if w not in ("a", "an", "another")}
        numbers |= {t: str(int(t)) for t in toks if t.isdigit()}
        said = _first(toks, numbers) or _first(toks, {"a": "1", "an": "1"})  # "there is a circle"
        expected = str({w: n for n, w in COUNT_TEXT.items()}.get(question.answer, -1))
        return said == expected
    if question.family == "colour":
        return _first(toks, COLOUR_WORDS) == question.answer
    if question.family == "shape":
        return _first(toks, SHAPE_WORDS) == question.answer
    raise ValueError(f"unknown family {question.family!r}")


def yes_no_questions_for_caption(text: str) -> list[str]:
    """Questions whose answer is "yes" exactly when the caption's claims are right."""
    parsed = parse_caption(text)
    out = []
    for o in parsed.objects:
        phrase = object_phrase(o)
        out.append(f"is there {phrase}?" if o.count == 1 else f"are there {phrase}?")
    out += [f"is {ref_phrase(r.subject)} {r.relation} {ref_phrase(r.object)}?" for r in parsed.relations]
    return out


def answer_yes_no(question_text: str, scene: Scene) -> str:
    """The exact "yes"/"no" answer to a yes/no question about objects or relations."""
    parsed = parse_caption(question_text)
    if parsed.relations:
        return "yes" if all(relation_true(r, scene) for r in parsed.relations) else "no"
    if not parsed.objects:
        return "no"
    exact = any(m.explicit_count for toks in tokenize(question_text) for m in find_mentions(toks))
    for o in parsed.objects:
        n = len(scene.find(o.colour, o.shape, o.size))
        if (n != o.count) if exact else (n < o.count):
            return "no"
    return "yes"
