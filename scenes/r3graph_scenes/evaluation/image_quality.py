"""GenEval-style evaluation of output mode "image": one-shot generation vs R3 (generate, judge, edit).

Prompts are captions of held-out scenes (:func:`held_out_prompts`) or prompts in GenEval's six
categories from their own generator (:func:`geneval_cases`); the generator is the stand-in
:class:`PaintServer`, which paints each prompt and sometimes makes one mistake (wrong colour,
missing object, swapped positions). An image is scored against its prompt like GenEval scores a
text-to-image model: one binary judgement per image (overall = every object, colour, count, size
and relation right) plus per-aspect accuracies, read from the image's pixels by the scene world's
detector (:mod:`r3graph_scenes.evaluation.image_scores`), so any generator's images score the same way.
The scene the stand-in stores in its PNG is read only by the oracle (the ceiling judge, the exact
edit) and to measure the detector on the benchmark's own images.

``bench/image_quality.py`` is the command line; this module is importable for tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import BaseModel, ConfigDict, Field

from r3graph import R3Context, R3Error, build_r3_graph
from r3graph.evaluation.stats import paired_bootstrap
from r3graph.image_generation import ImageBackend, ImageParams
from r3graph.messages import text_and_images
from r3graph.state import Round
from r3graph_scenes.evaluation.image_scores import (
    ASPECTS,
    ImageScore,
    detector_agrees,
    read_image,
    score_image,
    score_spec,
)
from r3graph_scenes.evaluation.quality import HELD_OUT_SEED
from r3graph_scenes.evaluation.report import mean_or_nan
from r3graph_scenes.geneval_prompts import GENEVAL_SEED, geneval_prompts
from r3graph_scenes.image_edits import image_edit
from r3graph_scenes.language import SIZE_WORDS, ParsedCaption, caption, parse_caption
from r3graph_scenes.painter import decode_scene, layout
from r3graph_scenes.world import Scene, generate_scenes

SENTINEL = "no further edit needed"
# scenes-vlm sees 64x64 images (its processor resizes anything else); painting at that size shows
# the judge exactly the pixels it was trained on.
IMAGE_SIZE = "64x64"
CAPTIONS = "captions"  # the category of prompts that are the world's own captions of held-out scenes


@dataclass(frozen=True)
class PromptCase:
    index: int
    prompt: str
    scene: Scene  # a scene the prompt describes (the oracle's target: sizes of objects a painting lacks)
    category: str = CAPTIONS
    spec: ParsedCaption | None = None  # what an image must show; None: what the prompt's text says

    @property
    def wanted(self) -> ParsedCaption:
        return self.spec if self.spec is not None else parse_caption(self.prompt)


def held_out_prompts(n: int, seed: int = HELD_OUT_SEED) -> list[PromptCase]:
    """Captions of ``n`` held-out scenes (a seed the model never trained on) as generation prompts."""
    return [PromptCase(i, caption(s), s) for i, s in enumerate(generate_scenes(seed, n))]


def geneval_cases(n: int, seed: int = GENEVAL_SEED) -> list[PromptCase]:
    """``n`` prompts in GenEval's six categories from their own generator (not the world's captions),
    each with its spec; the oracle's target is one layout of the prompt."""
    # The target is seeded by the prompt's text: a prompt that repeats has one target (the oracle's is per prompt).
    return [PromptCase(p.index, p.prompt, layout(p.prompt, random.Random(p.prompt)), p.category, p.spec)
            for p in geneval_prompts(n, seed)]


@dataclass(frozen=True)
class ImageCondition:
    name: str
    reflect: str = "judge"
    depth: int = 3  # the paper's image setting: 1 generation + 3 edits
    oracle: bool = False  # the judge is OracleImageJudge (the truth), not the model
    # None: the library's default (JSON-schema constrained decoding where the backend takes response_format
    # and the pack allows it; the scenes pack does not); True: constrained whatever the pack says.
    structured_judge: bool | None = None

    def context(self, seed: int, size: str = IMAGE_SIZE) -> R3Context:
        # One seed per prompt, shared by every condition: the first image is the same (paired).
        return R3Context(output="image", reflect=self.reflect if self.depth else "none", max_rounds=self.depth,
                         image=ImageParams(seed=seed, size=size), structured_judge=self.structured_judge)


ONE_SHOT = ImageCondition("one-shot", depth=0)


def default_image_conditions() -> list[ImageCondition]:
    return [ONE_SHOT, ImageCondition("R3 judge d3"),
            ImageCondition("R3 judge d3, constrained JSON", structured_judge=True),
            ImageCondition("R3 self_questions d3", "self_questions"), ImageCondition("oracle judge d3", oracle=True)]


def sweep_image_conditions(depth: int = 4) -> list[ImageCondition]:
    """For a generator that is a model: each reflect strategy run to ``depth`` edits (the image after
    each round gives depths 1..depth: with select="last" a run stopped at depth d ends on round d's
    image), the ablation (no reflect: refine generates a new sample of the prompt) and the ceiling."""
    return [ONE_SHOT, ImageCondition(f"R3 judge d{depth}", depth=depth),
            ImageCondition(f"R3 self_questions d{depth}", "self_questions", depth=depth),
            ImageCondition("new sample, no reflect d1", "none", depth=1),
            ImageCondition(f"oracle judge d{depth}", oracle=True, depth=depth)]


def true_edit(prompt: str, png: bytes | None, target: Scene | None = None,
              spec: ParsedCaption | None = None) -> str | None:
    """The exact edit for an image (None when it satisfies the prompt, or is no image).

    Reads the scene the stand-in stored in its PNG (the test oracle, not the scorer); an image a model
    painted stores none, and is read by the pixel detector instead (its accuracy is in the results)."""
    scene = decode_scene(png) if png is not None else None
    if scene is None and png is not None:
        scene = read_image(png)
    wanted = spec if spec is not None else parse_caption(prompt)
    if scene is None or score_spec(wanted, scene).exact:
        return None
    target = target if target is not None else layout(prompt, random.Random(0))
    # A size the prompt leaves open is whatever the painting has: only stated sizes call for an edit.
    open_size = {(o.colour, o.shape) for o in wanted.objects if o.size is None}
    painted = {o.kind: o.size for o in scene.objects}
    target = Scene(objects=[o.model_copy(update={"size": painted[o.kind]})
                            if o.kind in open_size and o.kind in painted else o for o in target.objects])
    return image_edit(prompt, scene, target)


class OracleImageJudge(BaseChatModel):
    """The ceiling: a judge that reads the truth of the painting and answers the scenes pack's image
    judge (and findings-to-edit) templates with the exact edit. Not a model; it bounds what the
    editor and the loop allow when the judge is never wrong."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    model_name: str = "oracle-image-judge"
    targets: dict[str, Scene] = Field(default_factory=dict, description="prompt -> the scene it describes")
    specs: dict[str, ParsedCaption] = Field(default_factory=dict, description="prompt -> what it asks, if not its text")

    @property
    def _llm_type(self) -> str:
        return "oracle"

    def _reply(self, messages: list[BaseMessage]) -> ChatResult:
        text, images = text_and_images(messages)
        if not text.startswith("Prompt: "):
            raise ValueError("the oracle answers the scenes pack's image judge and refine templates only")
        prompt = text.split("\n", 1)[0].removeprefix("Prompt: ")
        edit = true_edit(prompt, images[0] if images else None, self.targets.get(prompt),
                         self.specs.get(prompt)) or SENTINEL
        reply = json.dumps({"edit": edit}) if text.endswith("Judge the image.") else edit
        usage = {"input_tokens": len(text.split()), "output_tokens": len(reply.split())}
        message = AIMessage(content=reply, usage_metadata=usage | {"total_tokens": sum(usage.values())})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        return self._reply(messages)

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                         **kwargs: Any) -> ChatResult:
        return self._reply(messages)


class JudgedRound(BaseModel):
    """One reflect on one image, with the truth: was the image right, what the exact edit was."""

    index: int
    strategy: str
    correct: bool
    verdict: str
    critique: str
    true_edit: str | None
    edit_exact: bool = False  # critique is the exact edit (a size the prompt leaves open may differ)


def same_edit(critique: str, exact: str | None, wanted: ParsedCaption) -> bool:
    """Whether a judge's edit is the exact one. Where the prompt states no size, the size the exact edit
    picks for an added object is arbitrary ("add a small red star" and "add a large red star" both fix
    a missing red star), so sizes are then left out of the comparison."""
    if exact is None or critique == exact:
        return critique == exact
    if any(o.size is not None for o in wanted.objects):
        return False
    return [w for w in critique.split() if w not in SIZE_WORDS] == [w for w in exact.split() if w not in SIZE_WORDS]


class ImageRunRecord(BaseModel):
    condition: str
    error_rate: float
    index: int
    prompt: str
    category: str = CAPTIONS
    stop_reason: str | None
    edits: list[str]  # what refine wrote each round (an edit instruction, or the sentinel: no edit)
    judged: list[JudgedRound]
    first_image_sha: str
    score: ImageScore
    first_score: ImageScore
    calls: int
    image_calls: int
    seconds: float
    error: str | None = None
    # the overall (exact) score of every round's image, first to last: the run cut at any depth
    round_exact: list[bool] = Field(default_factory=list)
    # per image of the run (first, then each edit): the detector read it exactly as the stand-in painted it
    detector_agrees: list[bool] = Field(default_factory=list)
    truth_exact: bool | None = None  # the final image scored from the scene the stand-in painted (oracle)


async def run_image_condition(
    model: BaseChatModel, pack: str, backend: ImageBackend, cases: Sequence[PromptCase], condition: ImageCondition,
    error_rate: float, *, image_size: str = IMAGE_SIZE, concurrency: int = 16,
    progress: Callable[[str], None] | None = None,
) -> list[ImageRunRecord]:
    """Every prompt under one condition, ``concurrency`` runs at a time (vLLM batches the judge calls)."""
    graph = build_r3_graph(model, pack=pack, image_backend=backend).compile()
    limit = asyncio.Semaphore(concurrency)
    done = 0

    async def one(case: PromptCase) -> ImageRunRecord:
        nonlocal done
        async with limit:
            started = time.perf_counter()
            error, stop, calls, image_calls = None, None, 0, 0
            try:
                context = condition.context(case.index, image_size)
                result = await graph.ainvoke({"instruction": case.prompt}, context=context)
                rounds, final, stop = result["rounds"], result["image"], result["stop_reason"]
                calls, image_calls = result["usage"].calls, result["usage"].image_calls
            except R3Error as exc:  # keep the run: its best image is still an output
                rounds, final = [Round.model_validate(r) for r in exc.rounds], exc.best_image
                error = f"{type(exc).__name__}: {exc}"
            seconds = time.perf_counter() - started
        done += 1
        if progress and (done % max(1, len(cases) // 5) == 0 or done == len(cases)):
            progress(f"  {condition.name} @ {error_rate}: {done}/{len(cases)}")
        first = rounds[0].image if rounds else None
        wanted = case.wanted
        exact_edits = [true_edit(case.prompt, r.image, case.scene, case.spec) for r in rounds]
        judged = [JudgedRound(index=r.index, strategy=r.reflection.strategy, verdict=r.verdict or "",
                              correct=score_image(wanted, r.image).exact, critique=r.reflection.critique,
                              true_edit=exact, edit_exact=same_edit(r.reflection.critique, exact, wanted))
                  for r, exact in zip(rounds, exact_edits, strict=True) if r.reflection is not None]
        agrees = [detector_agrees(r.image) for r in rounds]
        return ImageRunRecord(
            condition=condition.name, error_rate=error_rate, index=case.index, prompt=case.prompt,
            category=case.category, stop_reason=stop, edits=[r.draft for r in rounds[1:]], judged=judged,
            first_image_sha=hashlib.sha256(first or b"").hexdigest()[:16],
            score=score_image(wanted, final), first_score=score_image(wanted, first),
            calls=calls, image_calls=image_calls, seconds=seconds, error=error,
            detector_agrees=[a for a in agrees if a is not None],
            truth_exact=_truth_exact(wanted, final),
            round_exact=[score_image(wanted, r.image).exact for r in rounds],
        )

    return list(await asyncio.gather(*(one(case) for case in cases)))


def _truth_exact(wanted: ParsedCaption, png: bytes | None) -> bool | None:
    """The exact score from the scene the stand-in painted (the oracle), to check the detector's scores."""
    truth = decode_scene(png) if png is not None else None
    return None if truth is None else score_spec(wanted, truth).exact


def summarise_images(records: dict[str, list[ImageRunRecord]], wall: dict[str, float]) -> list[dict[str, Any]]:
    """One row per condition at one error rate; deltas are paired against one-shot on the same prompts."""
    base = sorted(records[ONE_SHOT.name], key=lambda r: r.index)
    rows = []
    for name, runs in records.items():
        runs = sorted(runs, key=lambda r: r.index)
        exact = mean_or_nan([r.score.exact for r in runs])
        row: dict[str, Any] = {"condition": name, "prompts": len(runs), "exact": exact}
        for aspect in ASPECTS:
            values = [getattr(r.score, aspect) for r in runs]
            row[aspect] = mean_or_nan([float(v) for v in values if v is not None])
        row["positions_n"] = sum(r.score.positions is not None for r in runs)
        row |= {
            "first_exact": mean_or_nan([r.first_score.exact for r in runs]),
            "fixes": sum(not r.first_score.exact and r.score.exact for r in runs),
            "regressions": sum(r.first_score.exact and not r.score.exact for r in runs),
            # edits sent to the editor (refine may also write the sentinel: then no edit is made)
            "edits_per_prompt": mean_or_nan([sum(bool(e.strip()) and SENTINEL not in e.lower() for e in r.edits)
                                       for r in runs]),
            "calls_per_prompt": mean_or_nan([r.calls for r in runs]),
            "seconds_per_run": mean_or_nan([r.seconds for r in runs]),
            "wall_seconds": wall.get(name, float("nan")),
            "errors": sum(r.error is not None for r in runs),
            # the same first image as one-shot for every prompt (same seed, same server): a paired comparison
            "paired": [(r.index, r.first_image_sha) for r in runs] == [(r.index, r.first_image_sha) for r in base],
        }
        if name != ONE_SHOT.name and [r.index for r in runs] == [r.index for r in base]:
            row["delta_exact"] = paired_bootstrap([float(r.score.exact) for r in base],
                                                  [float(r.score.exact) for r in runs]).model_dump()
        rows.append(row)
    return rows


def judge_accuracy(runs: Sequence[ImageRunRecord]) -> dict[str, float]:
    """How reflect's verdicts match the truth over every judged image (all rounds), and over the first.

    "Flags" = asks for an edit (verdict revise). precision = share of flagged images that were wrong;
    recall = share of wrong images flagged; sentinel_on_correct / sentinel_on_wrong = how often it
    passes a right / a wrong image (the paper's premise: the first high, the second low).
    edit_exact: on wrong first images, the judge's edit equals the exact edit (judge strategy only)."""
    judged = [j for r in runs for j in r.judged]
    first = [r.judged[0] for r in runs if r.judged]
    out: dict[str, float] = {}
    for prefix, items in (("", judged), ("first_", first)):
        right = [j for j in items if j.correct]
        wrong = [j for j in items if not j.correct]
        flagged = [j for j in items if j.verdict == "revise"]
        out |= {
            f"{prefix}n_correct": float(len(right)), f"{prefix}n_wrong": float(len(wrong)),
            f"{prefix}sentinel_on_correct": mean_or_nan([j.verdict == "pass" for j in right]),
            f"{prefix}sentinel_on_wrong": mean_or_nan([j.verdict == "pass" for j in wrong]),
            f"{prefix}precision": mean_or_nan([not j.correct for j in flagged]),
            f"{prefix}recall": mean_or_nan([j.verdict == "revise" for j in wrong]),
            f"{prefix}accuracy": mean_or_nan([(j.verdict == "pass") == j.correct for j in items]),
        }
    out["edit_exact"] = mean_or_nan(
        [j.edit_exact for j in first if not j.correct and j.strategy == "judge"]
    )
    return out
