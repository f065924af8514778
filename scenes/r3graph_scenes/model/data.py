"""Multi-task training examples for scenes-vlm: one (prompt, response) pair per skill of the R3 loop.

Every prompt is rendered through the ``scenes`` prompt pack, the same code the loop uses at
inference, and every target is computed from the scene's exact truth. Drafts (what judge, refine,
questions and claims see) are the true caption, a caption with one injected error, or, once
training has produced a captioner, the model's own caption of a training scene.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

from r3graph.prompts.pack import PromptPack, load_pack
from r3graph_scenes.edits import corrupt_caption, edit_instruction
from r3graph_scenes.image_edits import image_edit, make_mistake
from r3graph_scenes.language import caption, parse_caption, relation_sentence
from r3graph_scenes.plugin import SCENES_PACK
from r3graph_scenes.questions import (
    answer_yes_no,
    questions_for,
    yes_no_questions_for_caption,
)
from r3graph_scenes.world import Scene

PACK: PromptPack = load_pack(SCENES_PACK)  # by path: it is this package's own, found or not as a plugin
IMAGE_PACK: PromptPack = PACK.for_output("image")  # output mode "image": the prompt is the truth

# Share of each skill in a batch. Captioning is the hardest (every object, size and relation must
# be seen) so it gets the most; the pure text skills (questions, claims) are easy.
# The first run (0.28 reason, 0.20 answer) stayed near chance on shapes: perception needs more of
# the batch than the text-only skills, which are learnt quickly anyway.
# judge_image and edit_image are output mode "image" (text -> image): the image is a painting of the
# prompt with maybe one mistake, and the target is the edit that moves the painting toward the prompt.
SKILL_WEIGHTS: dict[str, float] = {
    "reason": 0.27, "answer": 0.25, "verify": 0.08, "judge": 0.08, "refine": 0.11,
    "refine_blind": 0.02, "questions": 0.04, "claims": 0.03, "judge_image": 0.07, "edit_image": 0.05,
}


@dataclass(frozen=True)
class Example:
    skill: str
    scene: int  # index into the scene list (its pre-processed image)
    prompt: str  # the stage text (goes after the image in the one user turn)
    response: str
    painted: Scene | None = None  # image-mode skills: the image shown is this scene, not scenes[scene]


def draft_for(scene: Scene, rng: random.Random, model_draft: str | None, p_true: float = 0.35) -> str:
    """A draft to check or fix: the model's own caption, the truth, or one injected error."""
    if model_draft is not None and parse_caption(model_draft).objects and rng.random() < 0.5:
        return model_draft
    if rng.random() < p_true:
        return caption(scene)
    return corrupt_caption(scene, rng)[0]


def select_questions(draft: str, k: int) -> list[str]:
    """Up to k verification questions of a draft: multi-object counts first, then objects and
    relations interleaved, so a short list still checks both what is there and where it is."""
    parsed = parse_caption(draft)
    qs = yes_no_questions_for_caption(draft)
    n_obj = len(parsed.objects)
    objs = qs[:n_obj]
    rels = qs[n_obj:]
    counts = [q for q in objs if q.startswith("are there")]
    singles = [q for q in objs if not q.startswith("are there")]
    ordered = counts[:]
    for i in range(max(len(singles), len(rels))):
        ordered += singles[i : i + 1] + rels[i : i + 1]
    return ordered[:k]


def claims_of(draft: str) -> list[tuple[str, str]]:
    """(atomic claim, the yes/no question that checks it) for every statement of a draft."""
    parsed = parse_caption(draft)
    qs = yes_no_questions_for_caption(draft)
    out: list[tuple[str, str]] = []
    for q in qs[: len(parsed.objects)]:
        words = q.removesuffix("?").split(" ", 2)  # "is there a ..." / "are there two ..."
        out.append((f"there {words[0]} {words[2]}", q))
    for rel, q in zip(parsed.relations, qs[len(parsed.objects) :], strict=False):
        out.append((relation_sentence(rel), q))
    return out


def question_findings(draft: str, scene: Scene, k: int) -> str:
    """What the self_questions reflect step yields: the draft's questions, answered by the truth."""
    triples = []
    for q in select_questions(draft, k):
        a = answer_yes_no(q, scene)
        triples.append((q, a, a == "yes"))
    return PACK.render_findings(triples)


def claim_findings(draft: str, scene: Scene) -> str:
    """What the multi_step reflect step yields: each claim, verified against the truth."""
    triples = []
    for claim, q in claims_of(draft):
        a = answer_yes_no(q, scene)
        triples.append((claim, a, a == "yes"))
    return PACK.render_findings(triples)


def _k(rng: random.Random) -> int:
    return rng.choice((3, 3, 3, 2, 4, 5))


def painted_for(scene: Scene, rng: random.Random, p_right: float = 0.3) -> Scene:
    """What a text -> image generator made of ``caption(scene)``: the scene, or it with one mistake."""
    if rng.random() < p_right:
        return scene
    wrong = make_mistake(scene, rng)
    return wrong[0] if wrong is not None else scene


def image_example(skill: str, idx: int, scene: Scene, rng: random.Random) -> Example:
    """Output mode "image": judge a painting against its prompt, or turn findings into one edit.
    Findings are the self_questions (or claims) of the prompt answered by the painting's truth."""
    prompt = caption(scene)
    painted = painted_for(scene, rng)
    edit = image_edit(prompt, painted, scene) or PACK.sentinel
    if skill == "judge_image":
        return Example(skill, idx, IMAGE_PACK.render("judge", instruction=prompt), json.dumps({"edit": edit}), painted)
    findings = question_findings(prompt, painted, _k(rng)) if rng.random() < 0.7 else claim_findings(prompt, painted)
    return Example(skill, idx, IMAGE_PACK.render("refine", instruction=prompt, findings=findings), edit, painted)


def make_example(skill: str, idx: int, scene: Scene, rng: random.Random, model_draft: str | None) -> Example:
    if skill in ("judge_image", "edit_image"):
        return image_example(skill, idx, scene, rng)
    truth = caption(scene)
    if skill == "reason":
        return Example(skill, idx, PACK.render("reason"), truth)
    if skill == "answer":
        if rng.random() < 0.6:  # the VQA families: the word is the answer
            q = rng.choice(questions_for(scene, rng))
            return Example(skill, idx, PACK.render("answer", question=q.text), q.answer)
        q_text = rng.choice(yes_no_questions_for_caption(draft_for(scene, rng, model_draft, 0.5)))
        return Example(skill, idx, PACK.render("answer", question=q_text), answer_yes_no(q_text, scene))
    if skill == "verify":
        claim, question = rng.choice(claims_of(draft_for(scene, rng, model_draft, 0.5)))
        shown = question if rng.random() < 0.3 else claim  # the second reflect pass re-asks questions
        return Example(skill, idx, PACK.render("verify", claim=shown), answer_yes_no(question, scene))
    draft = draft_for(scene, rng, model_draft)
    if skill == "questions":
        k = _k(rng)
        return Example(skill, idx, PACK.render("questions", draft=draft, k=k), "\n".join(select_questions(draft, k)))
    if skill == "claims":
        return Example(skill, idx, PACK.render("claims", draft=draft), "\n".join(c for c, _ in claims_of(draft)))
    if skill == "judge":
        edit = edit_instruction(draft, scene) or PACK.sentinel
        return Example(skill, idx, PACK.render("judge", draft=draft), json.dumps({"edit": edit}))
    if skill == "refine":
        r = rng.random()
        if r < 0.5:
            findings = question_findings(draft, scene, _k(rng))
        elif r < 0.8:
            findings = edit_instruction(draft, scene) or PACK.sentinel
        else:
            findings = claim_findings(draft, scene)
        return Example(skill, idx, PACK.render("refine", draft=draft, findings=findings), truth)
    if skill == "refine_blind":
        return Example(skill, idx, PACK.render("refine_blind", draft=draft), truth)
    raise ValueError(f"unknown skill {skill!r}")


def sample_examples(
    scenes: list[Scene], n: int, rng: random.Random, model_drafts: dict[int, str] | None = None,
    weights: dict[str, float] = SKILL_WEIGHTS,
) -> list[Example]:
    """n examples, skills drawn by weight; draft-based skills favour scenes with a model draft."""
    skills = list(weights)
    drafted = sorted(model_drafts) if model_drafts else []
    out = []
    for skill in rng.choices(skills, weights=[weights[s] for s in skills], k=n):
        if drafted and skill != "reason" and rng.random() < 0.5:
            idx = rng.choice(drafted)
        else:
            idx = rng.randrange(len(scenes))
        draft = model_drafts.get(idx) if model_drafts else None
        out.append(make_example(skill, idx, scenes[idx], rng, draft))
    return out


def corpus_texts(scenes: list[Scene], rng: random.Random, n: int = 4000) -> list[str]:
    """Prompt and response texts to train the tokenizer on."""
    texts = [t for ex in sample_examples(scenes, n, rng) for t in (ex.prompt, ex.response)]
    return texts + [PACK.render(s) for s in ("reason",)] + ["yes", "no", PACK.sentinel]


Generator = Callable[[str, int, Scene, random.Random, str | None], Example]
