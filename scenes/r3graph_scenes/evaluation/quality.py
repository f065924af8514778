"""The quality harness: one-shot vs R3 vs ablations on held-out scenes, with paired statistics.

Every condition runs on the same model and the same scenes (a seed never used in training). The
caption metrics read free text, so the harness also judges any OpenAI-compatible server's model.
``bench/quality.py`` is the command line; this module is importable for tests and notebooks.
"""

from __future__ import annotations

import asyncio
import base64
import io
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel

from r3graph import R3Context, R3Error, build_r3_graph, load_pack
from r3graph.messages import stage_messages
from r3graph_scenes.language import parse_caption
from r3graph_scenes.metrics import CaptionScore, score_caption
from r3graph_scenes.questions import answer_yes_no, questions_for, verify_answer
from r3graph_scenes.world import Scene, generate_scenes, render

INSTRUCTION = "Describe the image."
HELD_OUT_SEED = 4242  # never used by training (0), validation (999) or the model card's eval (12345)


@dataclass(frozen=True)
class Condition:
    name: str
    reflect: str = "self_questions"
    depth: int = 1
    select: str = "last"

    def context(self, **extra: Any) -> R3Context:
        return R3Context(max_rounds=self.depth, reflect=self.reflect, select=self.select, **extra)


ONE_SHOT = Condition("one-shot", reflect="none", depth=0)


def default_conditions(quick: bool = False) -> list[Condition]:
    if quick:
        return [ONE_SHOT, Condition("self_questions d1"), Condition("judge d1", "judge"),
                Condition("multi_step d1", "multi_step"), Condition("self_questions d2 best", depth=2, select="best"),
                Condition("refine w/o reflect d1", "none")]
    conditions = [ONE_SHOT]
    for strategy in ("self_questions", "judge", "multi_step"):
        conditions += [Condition(f"{strategy} d{d}", strategy, d) for d in (1, 2, 3)]
    conditions += [Condition("self_questions d2 best", depth=2, select="best"),
                   Condition("judge d2 best", "judge", 2, "best"),
                   Condition("refine w/o reflect d1", "none", 1)]
    return conditions


@dataclass(frozen=True)
class SceneCase:
    index: int
    scene: Scene
    image_url: str


def held_out_cases(n: int, seed: int = HELD_OUT_SEED, image_size: int = 64) -> list[SceneCase]:
    cases = []
    for i, scene in enumerate(generate_scenes(seed, n)):
        buffer = io.BytesIO()
        render(scene, image_size).save(buffer, format="PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        cases.append(SceneCase(i, scene, url))
    return cases


class RunRecord(BaseModel):
    condition: str
    scene_index: int
    output: str
    first_draft: str
    stop_reason: str | None
    rounds: list[dict[str, Any]]
    calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    seconds: float
    score: CaptionScore
    first_score: CaptionScore
    error: str | None = None


async def run_condition(
    model: BaseChatModel, pack: str, cases: Sequence[SceneCase], condition: Condition, *,
    concurrency: int = 16, progress: Callable[[str], None] | None = None,
) -> list[RunRecord]:
    """Run one condition over every scene, ``concurrency`` runs at a time (vLLM batches them)."""
    graph = build_r3_graph(model, pack=pack).compile()
    limit = asyncio.Semaphore(concurrency)
    done = 0

    async def one(case: SceneCase) -> RunRecord:
        nonlocal done
        async with limit:
            started = time.perf_counter()
            error: str | None = None
            try:
                result = await graph.ainvoke({"instruction": INSTRUCTION, "images": [case.image_url]},
                                             context=condition.context())
                rounds = [r.model_dump() for r in result["rounds"]]
                output, stop, usage = result["output"], result["stop_reason"], result["usage"]
            except R3Error as exc:  # keep the run: its best draft is still an answer
                rounds, output, stop, usage = exc.rounds, exc.best_draft or "", None, None
                error = f"{type(exc).__name__}: {exc}"
            seconds = time.perf_counter() - started
        done += 1
        if progress and (done % max(1, len(cases) // 10) == 0 or done == len(cases)):
            progress(f"  {condition.name}: {done}/{len(cases)}")
        first = rounds[0]["draft"] if rounds else output
        return RunRecord(
            condition=condition.name, scene_index=case.index, output=output, first_draft=first,
            stop_reason=stop, rounds=rounds, calls=usage.calls if usage else 0,
            input_tokens=usage.input_tokens if usage else 0, output_tokens=usage.output_tokens if usage else 0,
            cached_input_tokens=usage.cached_input_tokens if usage else 0, seconds=seconds,
            score=score_caption(output, case.scene), first_score=score_caption(first, case.scene), error=error,
        )

    return list(await asyncio.gather(*(one(case) for case in cases)))


async def vqa_accuracy(
    model: BaseChatModel, pack_name: str, cases: Sequence[SceneCase], *, per_scene: int = 3, seed: int = 7,
    concurrency: int = 16,
) -> dict[str, float]:
    """Understanding on the same scenes: accuracy per question family with the pack's answer stage."""
    pack = load_pack(pack_name)
    rng = random.Random(seed)
    jobs = [(case, q) for case in cases for q in questions_for(case.scene, rng, per_scene)]
    limit = asyncio.Semaphore(concurrency)

    async def ask(case: SceneCase, question: Any) -> tuple[str, bool]:
        async with limit:
            messages = stage_messages(pack, [case.image_url], pack.render("answer", question=question.text))
            reply = await model.ainvoke(messages, temperature=0.0, max_tokens=24)
        return question.family, verify_answer(question, str(reply.content))

    results = await asyncio.gather(*(ask(c, q) for c, q in jobs))
    families: dict[str, list[bool]] = {}
    for family, ok in results:
        families.setdefault(family, []).append(ok)
    table = {family: sum(v) / len(v) for family, v in sorted(families.items())}
    table["all"] = sum(ok for _, ok in results) / max(1, len(results))
    return table


def reflect_accuracy(records: Sequence[RunRecord], cases: Sequence[SceneCase]) -> dict[str, float]:
    """How often reflect was right about the first draft, measured against the truth.

    Checks (questions or claims): the model's yes/no answer vs the exact answer. Verdicts: "pass"
    exactly when the draft is an exact match. This is the paper's premise in numbers: reflect can
    only guide refine if it is more accurate than the generation it checks.
    """
    scenes = {case.index: case.scene for case in cases}
    checks_right = checks = verdicts_right = verdicts = 0
    for record in records:
        if not record.rounds or record.rounds[0].get("reflection") is None:
            continue
        reflection = record.rounds[0]["reflection"]
        scene = scenes[record.scene_index]
        verdicts += 1
        verdicts_right += (reflection["verdict"] == "pass") == record.first_score.exact_match
        for finding in reflection["findings"]:
            if not parse_caption(finding["question"]).objects:
                continue  # a check the scene grammar can't read has no exact answer
            truth = answer_yes_no(finding["question"], scene)
            checks += 1
            checks_right += finding["answer"].strip().lower().startswith(truth)
    return {
        "check_accuracy": checks_right / checks if checks else float("nan"),
        "checks": float(checks),
        "verdict_accuracy": verdicts_right / verdicts if verdicts else float("nan"),
        "verdicts": float(verdicts),
    }


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
