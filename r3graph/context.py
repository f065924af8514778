"""Per-request settings: the LangGraph ``context_schema`` of the R3 graph.

Pass it with ``graph.ainvoke(inputs, context=R3Context(...))`` (a plain dict works too: LangGraph
coerces it). Every bad value raises :class:`R3ConfigError` naming the field.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from r3graph.errors import R3ConfigError
from r3graph.image_generation import ImageParams

Stage = Literal[
    "reason", "questions", "answer", "judge", "claims", "verify", "summarise", "refine", "refine_blind"
]
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


class Sampling(BaseModel):
    """Sampling settings for one stage, passed to the chat model as invoke kwargs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)  # what vLLM's API accepts (int64)
    stop: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] | None = Field(
        default=None, max_length=16
    )

    def as_kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


# Greedy by default: reflect must be reproducible. Budgets fit a real VLM's descriptions (and stay within
# a 512-token context, which vLLM checks max_tokens against); a pack's
# own ``max_tokens`` (the scenes pack's small ones, say) replace these, a request's sampling wins.
DEFAULT_SAMPLING: dict[str, Sampling] = {
    "reason": Sampling(temperature=0.0, max_tokens=512),
    "questions": Sampling(temperature=0.0, max_tokens=256),
    "answer": Sampling(temperature=0.0, max_tokens=128),
    "judge": Sampling(temperature=0.0, max_tokens=256),
    "claims": Sampling(temperature=0.0, max_tokens=384),
    "verify": Sampling(temperature=0.0, max_tokens=128),
    "summarise": Sampling(temperature=0.0, max_tokens=256),
    "refine": Sampling(temperature=0.0, max_tokens=512),
    "refine_blind": Sampling(temperature=0.0, max_tokens=512),
}


class R3Context(BaseModel):
    """How one request runs the loop."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    output: Literal["text", "image"] = Field(
        default="text",
        description="'text': answer about the input images; 'image': generate an image from the instruction "
        "and refine it by edits (needs build_r3_graph(..., image_backend=...)).",
    )
    image: ImageParams = Field(default_factory=ImageParams, description="Image generation settings (output='image').")
    max_rounds: int = Field(default=1, ge=0, le=16, description="Refine steps allowed; 0 = one-shot.")
    reflect: Any = Field(
        default="self_questions",
        description="Strategy name (self_questions, judge, multi_step, none) or a ReflectStrategy "
        "object or a compiled LangGraph graph.",
    )
    num_questions: int = Field(default=3, ge=1, le=12, description="Questions/claims per reflect.")
    reflect_passes: int = Field(
        default=1, ge=1, le=5, description="Reflect passes per round; later passes re-check what failed."
    )
    select: Literal["last", "best"] = Field(
        default="last", description="'best' keeps the best-judged round, so refine can't make it worse."
    )
    sampling: dict[Stage, Sampling] = Field(default_factory=dict, description="Per-stage overrides.")
    pack: str | None = Field(
        default=None, description="Bundled prompt pack name overriding the graph's (names only, no paths)."
    )
    review: bool = Field(
        default=False, description="Pause before each refine for a person (needs a checkpointer)."
    )
    structured_judge: bool | None = Field(
        default=None, description="JSON verdicts via structured output; None = when the model supports it."
    )
    on_unclear: Literal["reask", "ignore"] | None = Field(
        default=None, description="An unreadable verdict: re-ask once, or leave the check out; None = the pack's."
    )
    chat_template_kwargs: dict[str, Any] | None = Field(
        default=None, description="Chat-template switches, e.g. {'enable_thinking': False}; None = the pack's."
    )
    concurrent_checks: bool = Field(
        default=True, description="Answer questions/claims concurrently (fan-out) or one by one."
    )
    capture_content: bool | None = Field(
        default=None, description=f"Prompt/output text in spans; None = ${CAPTURE_CONTENT_ENV}."
    )
    call_timeout_s: float = Field(default=120.0, gt=0, le=3600, description="Per model call.")
    run_timeout_s: float = Field(
        default=900.0, gt=0, le=86400, description="Whole run; model calls get what is left of it."
    )
    allow_remote_images: bool = Field(default=False, description="Fetch http(s) image URLs.")
    allow_private_image_hosts: bool = Field(
        default=False, description="Let remote fetches reach loopback/private/link-local addresses."
    )
    allow_file_paths: bool = Field(
        default=True, description="Accept file paths; set False for untrusted input (e.g. agent tools)."
    )
    image_root: str | None = Field(
        default=None, description="When set, file paths must resolve inside this folder."
    )
    max_image_bytes: int = Field(default=20 * 2**20, ge=1, le=2**30)
    max_image_pixels: int = Field(
        default=2**27, ge=1, le=2**28,
        description="Largest image accepted, in header pixels: a decompression-bomb guard (134 Mpx by default, "
        "well above the 12-50 Mpx of phone photos).",
    )
    max_image_side: int = Field(
        default=2048, ge=64, le=8192,
        description="Images with a longer side are scaled down (aspect kept) while decoding.",
    )
    max_request_pixels: int = Field(
        default=2**28, ge=1, le=2**30, description="Header pixels of all of a request's images together."
    )
    image_timeout_s: float = Field(
        default=20.0, gt=0, le=600, description="Per image: fetch, read, check and decode (worker is killed after)."
    )

    @field_validator("image_root")
    @classmethod
    def _a_folder_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(ord(ch) < 0x20 for ch in value) or len(value) > 4096):
            raise ValueError("must be a folder path: not empty, no control characters or NUL, at most 4096 characters")
        return value

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise R3ConfigError(f"invalid R3Context: {_describe(exc)}") from exc

    @staticmethod
    def graph_schema() -> type[R3Context]:
        """The graph's ``context_schema``: these fields as a TypedDict (see R3ContextSchema below). Typed
        as R3Context because that is what the nodes get from ``resolve_context``."""
        return R3ContextSchema  # type: ignore[return-value]

    def sampling_for(self, stage: str, budgets: dict[str, int] | None = None) -> Sampling:
        """The stage's sampling: this request's override, over the pack's ``budgets``, over the defaults."""
        default = DEFAULT_SAMPLING[stage]
        if budgets and stage in budgets:
            default = default.model_copy(update={"max_tokens": budgets[stage]})
        override = self.sampling.get(stage)  # type: ignore[call-overload]
        if override is None:
            return default
        return default.model_copy(update=override.model_dump(exclude_unset=True))

    def content_capture(self) -> bool:
        if self.capture_content is not None:
            return self.capture_content
        return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "context"
        parts.append(f"{where}: {err['msg']} (got {err.get('input')!r:.60})")
    return "; ".join(parts)


def describe_validation_error(exc: ValidationError) -> str:
    """A pydantic error as one line naming each bad field (for R3ConfigError messages)."""
    return _describe(exc)


def resolve_context(value: Any) -> R3Context:
    """The run's context from whatever ``Runtime.context`` holds (None means defaults)."""
    if value is None:
        return R3Context()
    if isinstance(value, R3Context):
        return value
    if isinstance(value, dict):
        odd = [key for key in value if not isinstance(key, str)]
        if odd:
            raise R3ConfigError(f"context keys must be field names (strings); got {odd[0]!r:.60}")
        return R3Context(**value)
    raise R3ConfigError(
        f"context must be an R3Context or a dict of its fields, not {type(value).__name__}"
    )


# The graph's ``context_schema``: R3Context's fields as a TypedDict, so LangGraph hands a dict context
# to the nodes as it is and ``resolve_context`` checks it. With the pydantic class itself, LangGraph
# calls ``R3Context(**context)`` first, and a dict with a non-string key fails there with a bare
# TypeError ("keywords must be strings") before R3 can say what is wrong.
R3ContextSchema = TypedDict(  # type: ignore[misc]
    "R3ContextSchema", {name: field.annotation for name, field in R3Context.model_fields.items()}, total=False
)
