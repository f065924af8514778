"""The prompt pack: templates for each stage, validated when the pack is loaded."""

from __future__ import annotations

import functools
import json
import string
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from r3graph.errors import R3ConfigError

# The placeholders each stage's template may use. Checked at load time so that a typo in a user's
# pack fails when the pack is built, not in the middle of a run.
STAGE_FIELDS: dict[str, frozenset[str]] = {
    "reason": frozenset({"instruction"}),
    "questions": frozenset({"instruction", "draft", "k"}),
    "answer": frozenset({"instruction", "question"}),
    "judge": frozenset({"instruction", "draft", "sentinel"}),
    "claims": frozenset({"instruction", "draft"}),
    "verify": frozenset({"instruction", "claim"}),
    "summarise": frozenset({"instruction", "draft", "findings", "sentinel"}),
    "refine": frozenset({"instruction", "draft", "findings"}),
    "refine_blind": frozenset({"instruction", "draft"}),
    "finding": frozenset({"question", "answer", "verdict"}),
}
OPTIONAL_STAGES = frozenset({"summarise"})
# Output mode "image" re-uses the stage names with other templates (pack field ``image``): the
# artefact is a generated image and the instruction is the prompt it must match, so reflect writes
# checks of the prompt against the image, the judge writes an edit for the image, and "refine" turns
# findings into one edit instruction for the image editor. "reason", when given, is the plan step:
# it rewrites the instruction into a detailed generation prompt (the paper's <think>).
IMAGE_STAGES = frozenset({"reason", "questions", "judge", "claims", "summarise", "refine"})


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


class PromptPack(BaseModel):
    """Templates for one model family.

    ``finding`` renders one reflection finding (a question or claim, the model's answer, and
    ``verdict`` = ``consistent``/``inconsistent``); findings are joined with newlines and passed to
    ``refine``/``summarise`` as ``{findings}``. ``sentinel`` is the judge's "nothing to fix" phrase.
    ``yes_words`` are the answer openings that count as confirming a question or claim.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    system: str | None = None
    sentinel: str = "no further edit needed"
    pass_phrases: tuple[str, ...] = ()
    yes_words: tuple[str, ...] = ()
    no_words: tuple[str, ...] = ()
    on_unclear: Literal["reask", "ignore"] = Field(
        default="reask",
        description="What an unreadable verdict does: 'reask' asks once more with the stricter format in "
        "'reask' (then ignores it if still unclear); 'ignore' leaves the check out straight away.",
    )
    reask: dict[str, str] = Field(
        default_factory=lambda: {
            "yes_no": "Reply with exactly one word: yes or no.",
            "judge": 'Reply with only a JSON object: {"edit": "<one edit instruction>"}, or {"edit": "{sentinel}"} '
                     "if nothing needs to change.",
        },
        description="Appended to the prompt when a verdict ('yes_no' or 'judge') is re-asked; '{sentinel}' is "
        "filled in.",
    )
    max_tokens: dict[str, int] = Field(
        default_factory=dict,
        description="Per-stage token budgets for this model family (a request's sampling overrides them).",
    )
    chat_template_kwargs: dict[str, Any] | None = Field(
        default=None,
        description="Sent to the chat template on every call, e.g. {'enable_thinking': false} for Qwen3 "
        "(the context's setting wins).",
    )
    reason: str
    questions: str
    answer: str
    judge: str
    claims: str
    verify: str
    summarise: str | None = None
    refine: str
    refine_blind: str
    finding: str = "{question} -> {answer} ({verdict})"
    constrained_json: bool = Field(
        default=True,
        description="Ask the backend for JSON-schema-constrained decoding where a stage wants JSON (the "
        "judge), when it supports it. False for models trained to write the exact JSON: a grammar can "
        "forbid the tokens they would pick (scenes-vlm's byte-level BPE) and push them off course.",
    )
    image: dict[str, str] | None = Field(
        default=None, description="Templates that replace the text ones in output mode 'image'."
    )
    notes: str = Field(default="", description="What the pack is for; not sent to the model.")

    @model_validator(mode="after")
    def _check_placeholders(self) -> PromptPack:
        unknown_stages = set(self.image or {}) - IMAGE_STAGES
        if unknown_stages:
            raise ValueError(f"image templates for unknown stage(s) {sorted(unknown_stages)}; "
                             f"allowed: {sorted(IMAGE_STAGES)}")
        if self.image is not None and "judge" not in self.image and "questions" not in self.image:
            raise ValueError("image templates need at least 'judge' or 'questions' to check an image")
        templates = [(stage, getattr(self, stage)) for stage in STAGE_FIELDS]
        templates += [(stage, template) for stage, template in (self.image or {}).items()]
        for stage, template in templates:
            allowed = STAGE_FIELDS[stage]
            if template is None:
                if stage not in OPTIONAL_STAGES:
                    raise ValueError(f"stage {stage!r} needs a template")
                continue
            try:
                unknown = _placeholders(template) - allowed
            except ValueError as exc:  # unbalanced braces
                raise ValueError(f"template for {stage!r} is malformed: {exc}") from exc
            if unknown:
                raise ValueError(
                    f"template for {stage!r} uses unknown placeholder(s) {sorted(unknown)}; "
                    f"allowed: {sorted(allowed)}"
                )
        unknown_budgets = set(self.max_tokens) - set(STAGE_FIELDS)
        if unknown_budgets:
            raise ValueError(f"max_tokens for unknown stage(s) {sorted(unknown_budgets)}")
        return self

    def for_output(self, output: str) -> PromptPack:
        """The pack a run in ``output`` mode uses: for "image", the image templates replace the text
        ones; image mode without a "reason" (plan) template cannot plan, so "reason" is dropped."""
        if output == "text":
            return self
        if self.image is None:
            raise R3ConfigError(f"prompt pack {self.name!r} has no templates for output mode 'image'")
        return self.model_copy(update={"reason": self.image.get("reason"), **self.image, "image": None})

    def render(self, stage: str, **values: Any) -> str:
        """Fill one stage's template. Values are inserted verbatim: braces in them are safe."""
        template = getattr(self, stage, None) if stage in STAGE_FIELDS else None
        if template is None:
            raise R3ConfigError(f"prompt pack {self.name!r} has no template for stage {stage!r}")
        values.setdefault("sentinel", self.sentinel)
        return template.format_map({k: values.get(k, "") for k in STAGE_FIELDS[stage]})

    def render_findings(self, findings: Sequence[tuple[str, str, bool | None]]) -> str:
        """One line per (question or claim, answer, consistent?) triple."""
        lines = []
        for question, answer, consistent in findings:
            verdict = {True: "consistent", False: "inconsistent", None: "unclear"}[consistent]
            lines.append(self.render("finding", question=question, answer=answer, verdict=verdict))
        return "\n".join(lines)

    @property
    def accepted_passes(self) -> tuple[str, ...]:
        """Every phrasing that means "nothing to fix": the sentinel first."""
        return (self.sentinel, *self.pass_phrases)

    def reask_text(self, kind: Literal["yes_no", "judge"]) -> str:
        return self.reask.get(kind, "").replace("{sentinel}", self.sentinel)


def _packs_dir() -> Any:
    return resources.files("r3graph.prompts") / "packs"


def _bundled_packs() -> list[str]:
    return sorted(p.name.removesuffix(".json") for p in _packs_dir().iterdir() if p.name.endswith(".json"))


def available_packs() -> list[str]:
    """Pack names: the core's bundled ones and those plugins add (r3graph-scenes: ``scenes``)."""
    from r3graph.plugins import plugin_packs

    return sorted({*_bundled_packs(), *plugin_packs()})


def _named_pack_file(name: str) -> Any:
    """The file of a pack name: bundled first (a plugin cannot shadow ``default``), then the plugins'."""
    if name in _bundled_packs():
        return _packs_dir() / f"{name}.json"
    from r3graph.plugins import plugin_packs

    return plugin_packs().get(name)


@functools.lru_cache(maxsize=32)
def load_named_pack(name: str) -> PromptPack:
    """A bundled pack by name only, parsed once per process (packs are frozen, so sharing is safe).

    This is what a per-request ``R3Context.pack`` goes through: requests may come from untrusted
    callers, so they choose among bundled and plugin packs (installed code) and never point the loader
    at a file.
    """
    if name not in available_packs():
        raise R3ConfigError(f"unknown prompt pack {name!r}: use one of {available_packs()}")
    return load_pack(name)


def load_pack(pack: str | Path | PromptPack | dict[str, Any]) -> PromptPack:
    """A pack by name (bundled, like ``default``, or a plugin's, like ``scenes``), from a JSON file, a
    dict, or as given."""
    if isinstance(pack, PromptPack):
        return pack
    try:
        if isinstance(pack, dict):
            return PromptPack.model_validate(pack)
        path = Path(pack)
        if path.suffix == ".json" and path.is_file():
            return PromptPack.model_validate(json.loads(path.read_text()))
        resource = _named_pack_file(str(pack))
        if resource is None or not resource.is_file():
            raise R3ConfigError(
                f"unknown prompt pack {str(pack)!r}: use one of {available_packs()}, "
                "a path to a pack .json file, or a PromptPack"
            )
        return PromptPack.model_validate(json.loads(resource.read_text()))
    except (ValueError, json.JSONDecodeError) as exc:
        if isinstance(exc, R3ConfigError):
            raise
        raise R3ConfigError(f"invalid prompt pack {str(pack)[:80]!r}: {exc}") from exc
