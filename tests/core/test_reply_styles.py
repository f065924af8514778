"""Metamorphic test: the scene-world oracle's terse replies, rewritten the way real VLMs write them,
give the same verdicts, the same rounds and the same final outputs.

Over 100 seeded scenes, the scripted oracle (:class:`r3graph_scenes.scripted.ScriptedSceneModel`, which
answers every stage from the scene's truth) runs each built-in strategy with the ``default`` pack.
Then the same oracle's every reply is rewritten in one real-model style (a verbose sentence,
markdown, a thinking block, fenced JSON, an answer prefix, a trailing remark) and the run is
repeated: what the loop decides and produces must not change, and no reply may need a re-ask.
"""

from __future__ import annotations

import io
import json
import random
from typing import Any

import pytest

from r3graph import R3Context, build_r3_graph
from r3graph.reply_text import normalise
from r3graph_scenes.scripted import SENTINEL, ScriptedSceneModel
from r3graph_scenes.world import Scene, generate_scenes, render

SCENES = generate_scenes(1212, 100)
STRATEGIES = ("self_questions", "judge", "multi_step")
STYLES = ("verbose", "markdown", "thinking", "json", "prefix", "remark")
_REMARKS = ("Let me know if you need anything else!", "This should fix the most important mismatch.",
            "These cover the main facts of the draft.")


def _yes_no(style: str, word: str, rng: random.Random) -> str:
    other = "no" if word == "yes" else "yes"
    return {
        "verbose": f"{word.capitalize()}, that is what I can see in the image."
        if word == "yes" else "No, the image does not show that.",
        "markdown": f"**{word.capitalize()}**\n\nI checked the image carefully.",
        "thinking": f"<think>\nAt first I might say {other}, but looking again carefully...\n</think>\n\n"
                    f"{word.capitalize()}.",
        "json": f'```json\n{{"answer": "{word}", "reason": "checked against the image"}}\n```',
        "prefix": f"Answer: {word.capitalize()}",
        "remark": f"{word.capitalize()}.\n\n{rng.choice(_REMARKS)}",
    }[style]


def _items(style: str, items: list[str], noun: str) -> str:
    lines = "\n".join(items)
    return {
        "verbose": f"Here are the {noun} that check the draft:\n" + "\n".join(f"- {i}" for i in items),
        "markdown": f"### {noun.capitalize()}\n\n" + "\n".join(f"{n}. **{i}**" for n, i in enumerate(items, 1)),
        "thinking": f"<think>\nI should list the {noun}. Maybe: is it night?\n</think>\n\n{lines}",
        "json": f"```json\n{json.dumps(items, indent=2)}\n```",
        "prefix": f"{noun.capitalize()}:\n" + "\n".join(f"{n}) {i}" for n, i in enumerate(items, 1)),
        "remark": f"{lines}\n\n{_REMARKS[2]}",
    }[style]


def _edit(style: str, edit: str) -> str:
    passing = edit == SENTINEL
    return {
        "verbose": "I compared the draft with the image and everything matches. No further edit needed."
        if passing else f"I compared the draft with the image and found one mismatch.\n\n{edit}.",
        "markdown": f"**{edit.capitalize()}**" if passing else f"**Edit:** {edit}",
        "thinking": f'<think>\nIs it "{SENTINEL}"? Let me compare each object.\n</think>\n\n{edit}',
        "json": f'```json\n{json.dumps({"edit": edit})}\n```',
        "prefix": f"Final answer: {edit}",
        "remark": f"{edit.capitalize()}.\n\n{_REMARKS[1]}",
    }[style]


class StyledOracle(ScriptedSceneModel):
    """The oracle with every reply rewritten in one style; drafts get a thinking block in the
    "thinking" style (reasoning must never reach a draft)."""

    style: str = "terse"

    def reply(self, stage: str, prompt: str, scene: Scene) -> str:
        terse = super().reply(stage, prompt, scene)
        rng = random.Random(len(self.calls))
        if self.style == "terse":
            return terse
        if stage in ("answer", "verify"):
            return _yes_no(self.style, terse, rng)
        if stage in ("questions", "claims"):
            return _items(self.style, terse.splitlines(), stage)
        if stage in ("judge", "summarise"):
            return _edit(self.style, terse)
        return f"<think>\nDescribe every shape.\n</think>\n\n{terse}" if self.style == "thinking" else terse


def _edit_read(critique: str) -> str:
    """The edit a judge or summary gave, as read; findings rendered as critique carry each model's
    own answer words, which differ by style on purpose (their verdicts are compared instead)."""
    return "(findings)" if " -> " in critique else normalise(critique)


def _png(scene: Scene) -> bytes:
    buffer = io.BytesIO()
    render(scene).save(buffer, format="PNG")
    return buffer.getvalue()


async def _outcome(index: int, scene: Scene, style: str) -> dict[str, Any]:
    model = StyledOracle(default_scene=scene, error_seed=index, style=style)
    graph = build_r3_graph(model, pack="default").compile()
    context = R3Context(max_rounds=2, reflect=STRATEGIES[index % len(STRATEGIES)])
    result = await graph.ainvoke({"instruction": "Describe the image.", "images": [_png(scene)]}, context=context)
    return {
        "rounds": [
            (r.draft, r.verdict, _edit_read(r.reflection.critique) if r.reflection else None,
             [(f.question, f.consistent) for f in r.reflection.findings] if r.reflection else None,
             r.reflection.unclear if r.reflection else None)
            for r in result["rounds"]
        ],
        "output": result["output"],
        "stop_reason": result["stop_reason"],
        "stages": model.stages(),  # no re-asks: every styled reply was read the first time
    }


_TERSE: dict[int, dict[str, Any]] = {}


async def _terse(index: int) -> dict[str, Any]:
    """The terse run of one scene, made once for every style's comparison."""
    if index not in _TERSE:
        _TERSE[index] = await _outcome(index, SCENES[index], "terse")
    return _TERSE[index]


async def test_the_terse_oracle_really_refines() -> None:
    """The comparison means something: the oracle's drafts have errors that reflect finds and fixes."""
    outcomes = [await _terse(i) for i in range(30)]
    assert sum(o["stop_reason"] == "passed" and len(o["rounds"]) > 1 for o in outcomes) >= 15
    assert all(o["rounds"][0][1] is not None for o in outcomes)


@pytest.mark.parametrize("style", STYLES)
async def test_real_model_styles_give_the_same_verdicts_rounds_and_outputs(style: str) -> None:
    differ = []
    for i, scene in enumerate(SCENES):
        styled, terse = await _outcome(i, scene, style), await _terse(i)
        if styled != terse:
            differ.append((i, terse, styled))
    assert not differ, f"{len(differ)}/{len(SCENES)} scenes differ in style {style!r}; first: {differ[0]}"
