"""The graph's state: the input, the trajectory of rounds, the result.

Rounds are pydantic models so a run's trajectory is typed, serialisable (checkpointers, JSONL export)
and easy to read back: ``result["rounds"][i].draft``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, TypedDict

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["pass", "revise"]
# "unverified": reflect let the last draft through only because none of its verdicts could be read.
StopReason = Literal["one_shot", "passed", "unverified", "max_rounds", "unchanged"]


class Finding(BaseModel):
    """One check of the draft: a question (or claim), the model's answer, whether they agree."""

    question: str
    answer: str
    consistent: bool | None = None


class Reflection(BaseModel):
    """What reflect found about one draft.

    ``critique`` is the text refine is conditioned on (findings, an edit instruction, a summary).
    ``score`` in [0, 1] ranks drafts for ``select="best"``.
    """

    strategy: str
    verdict: Verdict
    critique: str = ""
    findings: list[Finding] = Field(default_factory=list)
    score: float = Field(default=0.0, ge=0.0, le=1.0)
    passes: int = 1
    raw: str | None = None
    # Verdicts that could not be read (after a re-ask, when the pack asks for one) and were left out.
    unclear: int = 0
    # Set when a person reviewed it (R3Context(review=True)): approved, edited or stopped.
    reviewed: Literal["approved", "edited", "stopped"] | None = None


class Round(BaseModel):
    """One draft and what reflect said about it. Round 0's draft comes from reason, later ones
    from refine conditioned on the previous round's reflection.

    In output mode ``image`` the artefact is ``image`` (PNG bytes) and ``draft`` is the text it was
    made from: the generation prompt in round 0, the edit instruction applied in later rounds."""

    # PNG bytes are not UTF-8: JSON (trajectory export, HTTP) carries them as base64.
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    index: int
    draft: str
    reflection: Reflection | None = None
    image: bytes | None = None

    @property
    def verdict(self) -> Verdict | None:
        return self.reflection.verdict if self.reflection else None

    def same_artefact(self, other: Round) -> bool:
        """Whether the two rounds hold the same output (image bytes, else draft text): reflecting
        again on an unchanged artefact would only repeat the verdict."""
        if self.image is not None or other.image is not None:
            return self.image == other.image
        return self.draft.strip() == other.draft.strip()


class Usage(BaseModel):
    """Model usage summed over a run: chat calls with their tokens, and image generations/edits."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    image_calls: int = 0
    # Replies the model stopped at max_tokens (finish_reason "length"): kept as written (a greedy retry
    # would repeat them), counted so a caller can see that a draft may be cut short.
    truncated_calls: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            calls=self.calls + other.calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            image_calls=self.image_calls + other.image_calls,
            truncated_calls=self.truncated_calls + other.truncated_calls,
        )


def add_usage(total: Usage | dict[str, Any] | None, delta: Usage | dict[str, Any] | None) -> Usage:
    def coerce(value: Usage | dict[str, Any] | None) -> Usage:
        if value is None:
            return Usage()
        return value if isinstance(value, Usage) else Usage.model_validate(value)

    return coerce(total) + coerce(delta)


class ReflectionUpdate(BaseModel):
    """A write to ``rounds`` that sets the last round's reflection (reflect nodes), or appends a round
    (refine). Such writes depend only on what the node read, not on the whole trajectory, so a cached
    reflect or refine (LangGraph ``CachePolicy``) replays correctly at any round."""

    reflection: Reflection | None = None
    append: Round | None = None


def merge_rounds(current: list[Round] | None, update: list[Round] | ReflectionUpdate | dict[str, Any]) -> list[Round]:
    """``rounds`` reducer: a list replaces the trajectory; a :class:`ReflectionUpdate` patches its end."""
    if isinstance(update, list):
        return update
    if isinstance(update, dict):  # a checkpointer that stored the update as plain JSON
        update = ReflectionUpdate.model_validate(update)
    rounds = list(current or [])
    if update.reflection is not None:
        rounds[-1] = rounds[-1].model_copy(update={"reflection": update.reflection})
    if update.append is not None:  # numbered here, so the write does not depend on the round
        rounds.append(update.append.model_copy(update={"index": rounds[-1].index + 1 if rounds else 0}))
    return rounds


class CheckPlan(BaseModel):
    """The checks a reflect pass asks (questions or claims), answered by the graph's ``check`` node,
    one ``Send`` each. ``raw`` is what the strategy keeps for its verdict (the questions as written);
    ``recheck`` lists the previous pass's findings that the items re-check (iterated reflect)."""

    strategy: str
    stage: Literal["answer", "verify"]
    field: Literal["question", "claim"]
    items: list[str]
    pass_index: int = 1
    raw: str | None = None
    recheck: list[int] | None = None


def merge_answers(current: dict[str, str] | None, update: dict[str, str] | None) -> dict[str, str]:
    """``check_answers`` reducer: each check adds its answer (keyed by its item); None clears them
    when a new plan starts."""
    if update is None:
        return {}
    return {**(current or {}), **update}


class R3Input(TypedDict):
    """What a caller passes in. ``images``: paths, URLs, bytes, data URLs or PIL images; required in
    output mode "text", absent or empty in output mode "image" (the instruction is the prompt)."""

    instruction: str
    images: NotRequired[list[Any]]


class R3Output(TypedDict, total=False):
    output: str
    # Output mode "image": the selected round's image (PNG bytes); every round's is in ``rounds``.
    image: bytes
    rounds: list[Round]
    selected_round: int
    stop_reason: StopReason
    usage: Usage
    instruction: str


class R3State(TypedDict, total=False):
    instruction: str
    # Normalised once by the prepare node to ``data:`` URLs (bytes never change between stages,
    # so the prefix cache sees identical image inputs).
    images: list[Any]
    rounds: Annotated[list[Round], merge_rounds]
    # The current reflect pass's checks (None when none are pending) and their answers so far.
    checks: CheckPlan | None
    check_answers: Annotated[dict[str, str], merge_answers]
    # sha256 of each normalised image, and each node's cache scope (model, pack, settings), or none
    # for a node whose calls are sampled: what the CachePolicy keys are made of (r3graph/cache.py).
    image_digests: list[str]
    cache_scopes: dict[str, str]
    # How many reflect passes ran on the current round (iterated reflect).
    reflect_pass: int
    output: str
    image: bytes
    selected_round: int
    stop_reason: StopReason
    usage: Annotated[Usage, add_usage]
    run_id: str
    # Wall-clock deadline (epoch seconds) set when the run starts: survives checkpoints, so a resumed
    # run keeps its budget rather than starting a fresh one.
    deadline: float
