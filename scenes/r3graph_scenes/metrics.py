"""Exact caption scores against a scene's ground truth.

Objects are matched by colour+shape with multiplicity, so the scores work both on the canonical
captions of the tiny model and on free text from a real VLM (keyword matching, see
:func:`r3graph_scenes.language.parse_caption`).

Conventions for empty denominators (documented because aggregates depend on them):
precision is 0.0 when nothing is mentioned (every scene has at least one object, so an empty
caption is a failure), hallucination_rate is 0.0 then; relation_accuracy is 1.0 when no relation
is stated (one-object scenes have none); attribute_accuracy is 0.0 when nothing matched. A matched
object whose size the text does not state counts as a wrong size: the canonical caption always
states sizes. :func:`aggregate` also reports micro-averages computed from the raw counts.
"""

from collections import Counter

from pydantic import BaseModel

from r3graph_scenes.language import ObjectRef, ParsedCaption, ParsedRelation, parse_caption
from r3graph_scenes.world import Scene, holds


class CaptionScore(BaseModel):
    precision: float
    recall: float
    f1: float
    attribute_accuracy: float
    relation_accuracy: float
    exact_match: bool
    hallucination_rate: float
    n_mentioned: int  # object mentions, with multiplicity
    n_true: int  # objects in the scene
    n_matched: int  # mentions matched to an object by colour+shape
    n_size_correct: int  # matched objects whose stated size is right
    n_relations: int  # relations stated
    n_relations_true: int  # stated relations that hold in the scene
    n_kinds_mentioned: int  # distinct colour+shape kinds mentioned
    n_kinds_hallucinated: int  # ... of which none is in the scene


def resolve(ref: ObjectRef, scene: Scene) -> int | None:
    """The one scene object a description names, or None if it names zero or several."""
    found = scene.find(ref.colour, ref.shape)
    return found[0] if len(found) == 1 else None


def relation_true(rel: ParsedRelation, scene: Scene) -> bool:
    """A stated relation is true when both ends resolve uniquely and the geometry agrees."""
    s, o = resolve(rel.subject, scene), resolve(rel.object, scene)
    if s is None or o is None or s == o:
        return False
    return holds(scene.objects[s], rel.relation, scene.objects[o])


def size_correct(parsed: ParsedCaption, scene: Scene) -> int:
    """Matched objects whose size is right, matching sizes within each colour+shape."""
    stated: Counter[tuple[str, str, str]] = Counter()
    for o in parsed.objects:
        if o.size is not None:
            stated[(o.colour, o.shape, o.size)] += o.count
    true = Counter((o.colour, o.shape, o.size) for o in scene.objects)
    return sum(min(n, true[k]) for k, n in stated.items())


def _ratio(num: int, den: int, empty: float) -> float:
    return num / den if den else empty


def score_parsed(parsed: ParsedCaption, scene: Scene) -> CaptionScore:
    """:func:`score_caption` for already parsed content."""
    mentioned, true = parsed.kind_counts(), scene.kind_counts()
    n_mentioned, n_true = sum(mentioned.values()), sum(true.values())
    n_matched = sum(min(n, true[k]) for k, n in mentioned.items())
    n_size = size_correct(parsed, scene)
    n_rel = len(parsed.relations)
    n_rel_true = sum(relation_true(r, scene) for r in parsed.relations)
    kinds_hallucinated = sum(1 for k in mentioned if true[k] == 0)
    precision = _ratio(n_matched, n_mentioned, 0.0)
    recall = _ratio(n_matched, n_true, 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    exact = mentioned == true and n_size == n_true and n_rel_true == n_rel
    return CaptionScore(
        precision=precision,
        recall=recall,
        f1=f1,
        attribute_accuracy=_ratio(n_size, n_matched, 0.0),
        relation_accuracy=_ratio(n_rel_true, n_rel, 1.0),
        exact_match=exact,
        hallucination_rate=_ratio(kinds_hallucinated, len(mentioned), 0.0),
        n_mentioned=n_mentioned,
        n_true=n_true,
        n_matched=n_matched,
        n_size_correct=n_size,
        n_relations=n_rel,
        n_relations_true=n_rel_true,
        n_kinds_mentioned=len(mentioned),
        n_kinds_hallucinated=kinds_hallucinated,
    )


def score_caption(text: str, scene: Scene) -> CaptionScore:
    """Scores of any text about ``scene`` (canonical caption or free VLM text)."""
    return score_parsed(parse_caption(text), scene)


def aggregate(scores: list[CaptionScore]) -> dict[str, float]:
    """Means of the per-caption rates, plus micro-averages (``micro_*``) from the summed counts."""
    if not scores:
        return {}
    n = len(scores)
    rates = ("precision", "recall", "f1", "attribute_accuracy", "relation_accuracy", "hallucination_rate")
    out = {k: sum(getattr(s, k) for s in scores) / n for k in rates}
    out["exact_match"] = sum(s.exact_match for s in scores) / n
    tot = {k: sum(getattr(s, k) for s in scores) for k in CaptionScore.model_fields if k.startswith("n_")}
    p = _ratio(tot["n_matched"], tot["n_mentioned"], 0.0)
    r = _ratio(tot["n_matched"], tot["n_true"], 1.0)
    out["micro_precision"], out["micro_recall"] = p, r
    out["micro_f1"] = 2 * p * r / (p + r) if p + r else 0.0
    out["micro_attribute_accuracy"] = _ratio(tot["n_size_correct"], tot["n_matched"], 0.0)
    out["micro_relation_accuracy"] = _ratio(tot["n_relations_true"], tot["n_relations"], 1.0)
    out["micro_hallucination_rate"] = _ratio(tot["n_kinds_hallucinated"], tot["n_kinds_mentioned"], 0.0)
    out["n"] = float(n)
    return out
