"""A SCRIPTED chat model for demos, examples and tests: no weights, no GPU, no network.

It is not a VLM and says so in its name (``scripted-scenes-oracle``): it answers every R3 stage of
the ``scenes`` and ``default`` prompt packs by script, from the ground truth of a synthetic scene
(:mod:`r3graph_scenes`). Reason writes the scene's caption with exactly one realistic error, the
checks answer truthfully, refine writes the correct caption. So a run behaves like a model that
self-corrects, which lets examples, the LangGraph server test and the export pipeline run anywhere
in milliseconds. Every call is recorded with its stage so callers can count what ran.

Which scene? The image in the request is hashed (sha256 of its bytes) and looked up in ``scenes``;
any other image gets ``default_scene`` (the bundled example). Use the real model
(:class:`r3graph.serving.ChatVLLMEngine`) for anything you want to measure.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field

from r3graph.messages import text_and_images
from r3graph_scenes.assets import load_example
from r3graph_scenes.edits import corrupt_caption, edit_instruction
from r3graph_scenes.language import caption
from r3graph_scenes.questions import answer_yes_no, yes_no_questions_for_caption
from r3graph_scenes.world import Scene

SCRIPTED_MODEL_NAME = "scripted-scenes-oracle"
SENTINEL = "no further edit needed"

# (stage, phrase) in the order they are tried: the first phrase found in the prompt names the stage.
# Phrases come from both packs (scenes first: its templates are short and distinctive).
_STAGE_PHRASES: list[tuple[str, str]] = [
    ("questions", "questions that check the draft"),
    ("questions", "yes/no questions that check"),
    ("judge", "Judge the draft."),
    ("judge", "ONE concrete edit instruction that fixes the most important error"),
    ("claims", "List the claims of the draft."),
    ("claims", "List the separate factual claims"),
    ("summarise", "Checks of the draft against the image"),
    ("refine", "Write the corrected caption."),
    ("refine", "A check of that answer against the image found"),
    ("refine", "Write an improved answer to the task."),
    ("verify", "Is this true? "),
    ("verify", "Is this claim true?"),
    ("answer", "Question: "),
]


def stage_of(prompt: str) -> str:
    """The R3 stage a prompt belongs to (``reason`` when nothing else matches)."""
    for stage, phrase in _STAGE_PHRASES:
        if phrase in prompt:
            return stage
    return "reason"


def _draft(prompt: str) -> str:
    match = re.search(r"(?:Draft answer|Draft|Your previous answer): (.*)", prompt)
    return match.group(1).strip() if match else ""


def _last_line_after(prompt: str, label: str) -> str:
    return prompt.rsplit(label, 1)[-1].strip().splitlines()[0] if label in prompt else prompt.strip()


class ScriptedSceneModel(BaseChatModel):
    """Scripted stand-in for the scenes VLM (see the module docstring). Records ``calls``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_name: str = SCRIPTED_MODEL_NAME
    # The prompt pack this stand-in answers best (it reads both); backends read it instead of a name.
    r3graph_pack: str = "scenes"
    default_scene: Scene = Field(default_factory=load_example)
    scenes: dict[str, Scene] = Field(default_factory=dict, description="sha256 of image bytes -> scene")
    error_seed: int = 1  # seed 1 on the example scene: a wrong shape ("red circle" for the red star)
    fail_stages: set[str] = Field(default_factory=set, description="Stages whose calls raise (crash demos).")
    calls: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def stages(self) -> list[str]:
        return [c["stage"] for c in self.calls]

    def scene_for(self, images: list[bytes]) -> Scene:
        for data in images:
            scene = self.scenes.get(hashlib.sha256(data).hexdigest())
            if scene is not None:
                return scene
        return self.default_scene

    def reply(self, stage: str, prompt: str, scene: Scene) -> str:
        if stage == "reason":
            return corrupt_caption(scene, random.Random(self.error_seed))[0]
        if stage == "questions":
            k = int(m.group(1)) if (m := re.search(r"Write (\d+)", prompt)) else 3
            return "\n".join(yes_no_questions_for_caption(_draft(prompt))[:k])
        if stage == "answer":
            return answer_yes_no(_last_line_after(prompt, "Question: "), scene)
        if stage == "verify":
            claim = _last_line_after(prompt, "Claim: " if "Claim: " in prompt else "Is this true? ")
            return answer_yes_no(claim, scene)
        if stage == "claims":
            return "\n".join(s.strip() for s in _draft(prompt).split(" . ") if s.strip(" ."))
        if stage in ("judge", "summarise"):
            return edit_instruction(_draft(prompt), scene) or SENTINEL
        return caption(scene)  # refine: the truth

    def _result(self, messages: list[BaseMessage]) -> ChatResult:
        prompt, images = text_and_images(messages)
        stage = stage_of(prompt)
        self.calls.append({"stage": stage, "prompt": prompt})
        if stage in self.fail_stages:
            raise RuntimeError(f"scripted failure in {stage} (simulating a crashed process)")
        text = self.reply(stage, prompt, self.scene_for(images))
        usage = {"input_tokens": len(prompt.split()) + 64 * len(images), "output_tokens": len(text.split())}
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        message = AIMessage(content=text, usage_metadata=usage,
                            response_metadata={"model_name": self.model_name})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return self._result(messages)

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return self._result(messages)


def scripted_backend() -> tuple[ScriptedSceneModel, str, str]:
    """The ``scripted`` backend kind (``R3GRAPH_BACKEND=scripted``), registered in :mod:`r3graph_scenes.plugin`."""
    return (ScriptedSceneModel(), SCRIPTED_MODEL_NAME,
            "SCRIPTED model (no weights; answers from the example scene's ground truth)")
