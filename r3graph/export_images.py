"""Trajectory export for output mode "image": one JSONL record per run, the images as files beside it.

An image-mode run's artefacts are PNGs (the first generation, then one per edit). They do not go
inline into the JSON line: each is written once to ``<out>.images/<record id>/round-<i>.png`` and
the record names it by path (relative to the JSONL's folder) and the sha256 of its bytes, so a
reader can check it has the very pixels the judge saw. ``final`` points at the selected round's
file (same bytes, one file). Schema :data:`IMAGE_SCHEMA`, documented in ``docs/trajectory-format.md``.

:func:`run_image_prompts` runs the graph over prompts (``concurrency`` at a time, a seed per prompt)
and writes records as runs finish, so an interrupted collection keeps what it did. The command line
is ``r3graph export --output image`` (:mod:`r3graph.export_images_cli`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from r3graph.export import _settings
from r3graph.image_files import read_image_file
from r3graph.state import Reflection, Round, StopReason, Usage

IMAGE_SCHEMA = "r3graph.image_trajectory/1"


class ImageFile(BaseModel):
    """A PNG written next to the JSONL: ``path`` is relative to the JSONL's folder."""

    model_config = ConfigDict(extra="forbid")

    path: str
    sha256: str
    size_bytes: int


class ImageRound(BaseModel):
    """Round ``index``: ``draft`` is the text the image was made from (round 0: the generation prompt;
    later: the edit instruction refine applied), ``reflection`` the judge's verdict and edit on it."""

    model_config = ConfigDict(extra="forbid")

    index: int
    draft: str
    image: ImageFile | None = None
    reflection: Reflection | None = None


class ImageTrajectoryRecord(BaseModel):
    """One image-mode R3 run (``rounds[0]`` generated, ``rounds[i + 1]`` edited from ``rounds[i]``)."""

    model_config = ConfigDict(extra="forbid")

    schema_: str = Field(default=IMAGE_SCHEMA, alias="schema")
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    model: str = Field(description="The chat model that judged (reflect) and wrote edits (refine).")
    pack: str
    image_model: str = Field(description="The image generator (served model name or URL).")
    settings: dict[str, Any] = Field(default_factory=dict, description="The run's R3Context (plain values).")
    index: int = Field(description="Position of the prompt in the prompts file (0-based).")
    prompt: str
    seed: int | None = Field(default=None, description="The image seed of every request of this run.")
    rounds: list[ImageRound]
    final: ImageFile | None = None
    selected_round: int | None = None
    stop_reason: StopReason | None = None
    usage: Usage = Field(default_factory=Usage)
    error: str | None = Field(default=None, description="Set when the run failed; rounds hold what it did.")
    scores: dict[str, float] = Field(default_factory=dict, description="Optional: metric name -> value.")

    def dump_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)

    @property
    def passed(self) -> bool:
        """The judge passed the final image (the loop ended on a "pass" verdict)."""
        return self.stop_reason == "passed"


def image_folder(jsonl: Path) -> Path:
    """Where a JSONL's images go: ``runs.jsonl`` -> ``runs.images/``."""
    return jsonl.with_name(jsonl.stem + ".images")


def _write_png(data: bytes, path: Path, root: Path) -> ImageFile:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return ImageFile(path=path.relative_to(root).as_posix(), sha256=hashlib.sha256(data).hexdigest(),
                     size_bytes=len(data))


def image_record(prompt: str, rounds: Sequence[Round | dict[str, Any]], jsonl: Path, *, index: int, model: str,
                 pack: str, image_model: str, context: Any = None, seed: int | None = None,
                 final_image: bytes | None = None, selected_round: int | None = None,
                 stop_reason: StopReason | None = None, usage: Usage | None = None,
                 error: str | None = None) -> ImageTrajectoryRecord:
    """Build the record of one run and write its PNGs beside ``jsonl`` (see the module docstring)."""
    record_id = uuid.uuid4().hex
    root, folder = jsonl.parent, image_folder(jsonl) / record_id
    out_rounds: list[ImageRound] = []
    files: dict[bytes, ImageFile] = {}  # bytes -> file: an unchanged image is written once
    for r in (x if isinstance(x, Round) else Round.model_validate(x) for x in rounds):
        file = None
        if r.image is not None:
            file = files.get(r.image) or _write_png(r.image, folder / f"round-{r.index}.png", root)
            files.setdefault(r.image, file)
        out_rounds.append(ImageRound(index=r.index, draft=r.draft, image=file, reflection=r.reflection))
    final = None
    if final_image is not None:
        final = files.get(final_image) or _write_png(final_image, folder / "final.png", root)
    return ImageTrajectoryRecord(
        id=record_id, model=model, pack=pack, image_model=image_model, settings=_settings(context), index=index,
        prompt=prompt, seed=seed, rounds=out_rounds, final=final, selected_round=selected_round,
        stop_reason=stop_reason, usage=usage or Usage(), error=error)


def read_image_jsonl(path: str | Path) -> Iterator[ImageTrajectoryRecord]:
    """Read image-mode records back (blank lines skipped; a bad line raises with its number)."""
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield ImageTrajectoryRecord.model_validate_json(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not an image trajectory record: {exc}") from exc


MAX_EXPORTED_IMAGE_BYTES = 1 << 28  # a bound on what a hostile record can make a reader hold


def load_image(jsonl: str | Path, file: ImageFile) -> bytes:
    """The bytes of a record's image, checked against its sha256 (a changed file is an error). The
    path must stay inside the JSONL's folder: a record read from elsewhere cannot point a training
    script at ``/etc/passwd`` or ``../..``, nor through a symbolic link inside that folder (the file is
    opened beneath the folder, one component at a time, as ``image_root`` confines a run's images)."""
    relative = Path(file.path)
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"{file.path}: an image path must be relative to the JSONL's folder, without '..'")
    folder = Path(jsonl).parent
    data = read_image_file(str(folder / relative), max_bytes=MAX_EXPORTED_IMAGE_BYTES, root=str(folder),
                           label=f"{jsonl}: image {file.path}")
    if hashlib.sha256(data).hexdigest() != file.sha256:
        raise ValueError(f"{file.path}: the file's sha256 does not match the record (it changed since export)")
    return data


@dataclass(frozen=True)
class PromptItem:
    index: int
    prompt: str
    seed: int


def read_prompts(path: str | Path, base_seed: int = 0) -> list[PromptItem]:
    """One prompt per non-blank line; prompt ``i`` (0-based among them) gets image seed ``base_seed + i``."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"--prompts {path}: no such file")
    prompts = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"--prompts {path}: no prompts in it (one per line)")
    return [PromptItem(i, p, base_seed + i) for i, p in enumerate(prompts)]


def _append_line(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")


async def run_image_prompts(graph: Any, items: Sequence[PromptItem], out: Path, *, context_for: Callable[[int], Any],
                            model: str, pack: str, image_model: str, concurrency: int = 8,
                            max_seconds: float | None = None,
                            progress: Callable[[str], None] | None = None) -> list[ImageTrajectoryRecord]:
    """Run ``graph`` (compiled, image mode) on every prompt; append each record to ``out`` as it finishes.

    ``context_for(seed)`` gives the run's R3Context. A run that fails with an R3Error still gives a
    record (``error`` set, the rounds it did): the failures are part of the data's story.
    ``max_seconds``: no run starts after that long (runs under way finish), so a collection fits a
    time budget and still holds only whole runs, the first prompts in file order."""
    from r3graph.errors import R3Error

    limit = asyncio.Semaphore(max(1, concurrency))
    append_lock = asyncio.Lock()
    records: list[ImageTrajectoryRecord] = []
    deadline = None if max_seconds is None else time.monotonic() + max_seconds

    async def one(item: PromptItem) -> None:
        context = context_for(item.seed)
        async with limit:
            if deadline is not None and time.monotonic() > deadline:
                return
            try:
                result = await graph.ainvoke({"instruction": item.prompt}, context=context)
                kwargs: dict[str, Any] = {
                    "final_image": result.get("image"), "selected_round": result.get("selected_round"),
                    "stop_reason": result.get("stop_reason"), "usage": result.get("usage")}
                rounds = result.get("rounds", [])
            except R3Error as exc:
                rounds, kwargs = exc.rounds, {"final_image": exc.best_image, "error": f"{type(exc).__name__}: {exc}"}
        # Writing and hashing the run's PNGs is file work: off the event loop, which other runs share.
        record = await asyncio.to_thread(image_record, item.prompt, rounds, out, index=item.index, model=model,
                                         pack=pack, image_model=image_model, context=context, seed=item.seed,
                                         **kwargs)
        # One line per finished run, so an interrupted export keeps it; appended off the loop (a slow
        # disk would stall every run) and one writer at a time (a long line is several write calls).
        async with append_lock:
            await asyncio.to_thread(_append_line, out, record.dump_json())
        records.append(record)
        if progress is not None:
            progress(f"[{len(records)}/{len(items)}] #{item.index}: {record.stop_reason or record.error}, "
                     f"{len(record.rounds)} round(s)")

    await asyncio.gather(*(one(item) for item in items))
    return records
