"""Trajectory export: one JSONL record per R3 run, and preference pairs made from them.

A record keeps everything the paper's training recipe needs (see ``docs/trajectory-format.md``):
the input (image references with the sha256 of their bytes, the instruction), every round's draft
and reflection (strategy, verdict, critique, findings), the refined output, why the loop stopped,
usage, the model and prompt pack, and the ground truth when it is known. Records read back into
pydantic models (rounds as :class:`r3graph.state.Round`), so training code gets typed data.

:func:`to_preference_pairs` turns records into (prompt, chosen, rejected) pairs, keeping a pair only
when the refined text scores strictly better than the draft it replaced: the data for preference
training (reflect/refine consistency) and for distilling R3 into a single pass.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from r3graph.state import Round, StopReason, Usage

SCHEMA = "r3graph.trajectory/1"
PAIR_SCHEMA = "r3graph.preference_pair/1"


class ImageRef(BaseModel):
    """Where an image came from and a hash of its bytes (so the pixels can be matched later)."""

    ref: str = Field(description="File path or URL as given; 'bytes', 'data-url' or 'pil' otherwise.")
    sha256: str | None = Field(default=None, description="Of the original bytes; None for unread URLs.")
    mime: str | None = None
    size_bytes: int | None = None


class TrajectoryInput(BaseModel):
    instruction: str
    images: list[ImageRef]


class GroundTruth(BaseModel):
    """What the right answer is, when known: a world's structured truth (as JSON) or a reference text."""

    kind: Literal["scene", "text"]
    scene: dict[str, Any] | None = None
    text: str | None = None


class TrajectoryRecord(BaseModel):
    """One R3 run. ``rounds[0].draft`` is reason's draft; ``rounds[i + 1].draft`` is what refine wrote
    from ``rounds[i]``'s draft and reflection; ``output`` is the selected round's draft."""

    model_config = ConfigDict(extra="forbid")

    schema_: str = Field(default=SCHEMA, alias="schema")
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    model: str
    pack: str
    settings: dict[str, Any] = Field(default_factory=dict, description="The run's R3Context (plain values).")
    input: TrajectoryInput
    rounds: list[Round]
    output: str
    selected_round: int | None = None
    stop_reason: StopReason | None = None
    usage: Usage = Field(default_factory=Usage)
    ground_truth: GroundTruth | None = None
    scores: dict[str, float] = Field(default_factory=dict, description="Optional: metric name -> value.")

    def dump_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class PreferencePair(BaseModel):
    """``prompt`` -> ``chosen`` (refined) is better than ``prompt`` -> ``rejected`` (the draft)."""

    schema_: str = Field(default=PAIR_SCHEMA, alias="schema")
    record_id: str
    kind: Literal["final", "step"]
    round: int = Field(description="The round whose draft is rejected.")
    prompt: dict[str, Any]
    chosen: str
    rejected: str
    chosen_score: float
    rejected_score: float

    def dump_json(self) -> str:
        return self.model_dump_json(by_alias=True)


def _image_ref(image: Any, ref: str | None) -> ImageRef:
    """Hash the bytes the caller passed (before prepare's normalisation): the identity of the input."""
    data: bytes | None = None
    mime: str | None = None
    if isinstance(image, bytes | bytearray):
        data, given = bytes(image), "bytes"
    elif isinstance(image, str) and image.startswith("data:"):
        header, _, payload = image.partition(",")
        data, given = base64.b64decode(payload), "data-url"
        mime = header[5:].split(";", 1)[0] or None
    elif isinstance(image, str) and image.startswith(("http://", "https://")):
        given = image
    elif isinstance(image, str | Path):
        path = Path(image).expanduser()
        data, given = path.read_bytes(), str(image)
        mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}.get(
            path.suffix.lower()
        )
    elif hasattr(image, "save"):  # a PIL image: hash its PNG encoding (it has no bytes of its own)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data, given, mime = buffer.getvalue(), "pil", "image/png"
    else:
        raise TypeError(f"cannot reference an image of type {type(image).__name__}")
    return ImageRef(
        ref=ref or given,
        sha256=hashlib.sha256(data).hexdigest() if data is not None else None,
        mime=mime,
        size_bytes=len(data) if data is not None else None,
    )


def _ground_truth(value: Any) -> GroundTruth | None:
    if value is None or isinstance(value, GroundTruth):
        return value
    if isinstance(value, str):
        return GroundTruth(kind="text", text=value)
    if hasattr(value, "model_dump"):  # a world's own truth object (a scene, say)
        return GroundTruth(kind="scene", scene=value.model_dump(mode="json"))
    if isinstance(value, Mapping) and "objects" in value:
        return GroundTruth(kind="scene", scene=dict(value))
    raise TypeError(f"ground truth must be a Scene, a scene dict or a text, not {type(value).__name__}")


def _settings(context: Any) -> dict[str, Any]:
    if context is None:
        return {}
    if isinstance(context, Mapping):
        data, reflect = {k: v for k, v in context.items() if k != "reflect"}, context.get("reflect")
    else:
        data, reflect = context.model_dump(mode="json", exclude={"reflect"}), getattr(context, "reflect", None)
    if reflect is not None:  # a strategy object or compiled graph: keep its name only
        data["reflect"] = reflect if isinstance(reflect, str) else getattr(reflect, "name", type(reflect).__name__)
    return json.loads(json.dumps(data, default=str))  # plain JSON values only


def trajectory_record(
    inputs: Mapping[str, Any],
    result: Mapping[str, Any],
    *,
    model: str,
    pack: str,
    context: Any = None,
    ground_truth: Any = None,
    image_refs: list[str] | None = None,
    scores: dict[str, float] | None = None,
) -> TrajectoryRecord:
    """Build the record of one run from the graph's input and output.

    ``image_refs`` overrides how each image is named (e.g. a path relative to a dataset root).
    ``ground_truth``: a reference text, a dict, or any pydantic model (a world's ground truth, e.g. a scene).
    """
    images = list(inputs.get("images") or [])
    refs = image_refs or [None] * len(images)  # type: ignore[list-item]
    rounds = [r if isinstance(r, Round) else Round.model_validate(r) for r in result.get("rounds", [])]
    usage = result.get("usage")
    output = str(result.get("output", rounds[-1].draft if rounds else ""))
    selected = result.get("selected_round")
    if selected is None:  # the graph's output schema leaves it out: the latest round with that draft
        selected = next((r.index for r in reversed(rounds) if r.draft == output), None)
    return TrajectoryRecord(
        model=model,
        pack=pack,
        settings=_settings(context),
        input=TrajectoryInput(
            instruction=str(result.get("instruction") or inputs["instruction"]),
            images=[_image_ref(img, ref) for img, ref in zip(images, refs, strict=True)],
        ),
        rounds=rounds,
        output=output,
        selected_round=selected,
        stop_reason=result.get("stop_reason"),
        usage=usage if isinstance(usage, Usage) else Usage.model_validate(usage or {}),
        ground_truth=_ground_truth(ground_truth),
        scores=dict(scores or {}),
    )


def write_jsonl(records: Iterable[TrajectoryRecord | PreferencePair], path: str | Path, *, append: bool = False) -> int:
    """Write one JSON object per line (UTF-8); returns how many were written."""
    count = 0
    with Path(path).open("a" if append else "w", encoding="utf-8") as out:
        for record in records:
            out.write(record.dump_json() + "\n")
            count += 1
    return count


def read_jsonl(path: str | Path) -> Iterator[TrajectoryRecord]:
    """Read trajectory records back (blank lines are skipped; a bad line raises with its number)."""
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield TrajectoryRecord.model_validate_json(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a trajectory record: {exc}") from exc


ScoreFn = Callable[[str, TrajectoryRecord], float | None]


def _prompt(record: TrajectoryRecord) -> dict[str, Any]:
    return {"instruction": record.input.instruction,
            "images": [i.model_dump(exclude_none=True) for i in record.input.images]}


def to_preference_pairs(
    records: Iterable[TrajectoryRecord], score_fn: ScoreFn, *, kind: Literal["final", "step"] = "final"
) -> Iterator[PreferencePair]:
    """Preference pairs where the refined text scores strictly better than the draft.

    ``kind="final"``: prompt = the task (instruction + images), chosen = the run's output, rejected =
    reason's first draft; the single-pass distillation target. ``kind="step"``: one pair per refine
    step, prompt = the task plus the draft and the critique refine was given, chosen = what refine
    wrote, rejected = the draft; trains refine to act on its own reflection. Records or texts the
    score function cannot score (it returns None) give no pair; neither do ties.
    """
    for record in records:
        if not record.rounds:
            continue
        if kind == "final":
            steps = [(0, record.rounds[0].draft, record.output, _prompt(record))]
        else:
            steps = []
            for before, after in zip(record.rounds, record.rounds[1:], strict=False):
                prompt = _prompt(record)
                prompt["draft"] = before.draft
                prompt["critique"] = before.reflection.critique if before.reflection else ""
                steps.append((before.index, before.draft, after.draft, prompt))
        for index, draft, refined, prompt in steps:
            rejected_score, chosen_score = score_fn(draft, record), score_fn(refined, record)
            if rejected_score is None or chosen_score is None or chosen_score <= rejected_score:
                continue
            yield PreferencePair(record_id=record.id, kind=kind, round=index, prompt=prompt, chosen=refined,
                                 rejected=draft, chosen_score=chosen_score, rejected_score=rejected_score)


def read_pairs(path: str | Path) -> Iterator[PreferencePair]:
    with Path(path).open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield PreferencePair.model_validate(json.loads(line))
