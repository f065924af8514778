"""A run's trajectory as one self-contained HTML page a person can open in a browser.

``write_report(result, "run.html", inputs=inputs)`` takes a finished run (what ``graph.ainvoke``
returned, or a :class:`r3graph.export.TrajectoryRecord`); ``write_trajectory_report("runs.jsonl",
"runs.html")`` takes what ``r3graph export`` wrote. The page shows the input image(s) and the
instruction, every round (its draft with what changed from the previous one marked, or its generated
image), what reflect checked and found, which round was chosen and why the loop stopped, and usage.

Per-stage timings and usage are not part of the graph's result; :class:`StageRecorder` collects them
from the graph's own ``updates`` stream (each node's update carries its usage delta, and the top-level
nodes run one after another, so the time between updates is the node's time)::

    recorder = StageRecorder()
    async for part in graph.astream(inputs, context=ctx, stream_mode=recorder.modes, subgraphs=True):
        recorder.observe(part)
    write_report(recorder.result, "run.html", inputs=inputs, stages=recorder.stages)

The page has no scripts and loads nothing: images are inlined as ``data:`` URLs and a
Content-Security-Policy forbids everything else, so a draft that contains markup stays text.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from r3graph.export import TrajectoryRecord, read_jsonl
from r3graph.images import PASS_THROUGH_FORMATS
from r3graph.state import ReflectionUpdate, Round, Usage

# Photos are shown, not analysed: anything larger is scaled down for the page (the run saw the original).
MAX_SHOWN_SIDE = 1024


@dataclass
class StageRecord:
    """One top-level node of a run: which round it worked on, how long it took, what it used."""

    node: str
    round: int | None
    seconds: float
    usage: Usage = field(default_factory=Usage)


class StageRecorder:
    """Collects per-stage timings and usage, and the final result, from ``graph.astream`` with
    ``stream_mode=recorder.modes`` and ``subgraphs=True``. ``observe`` returns the custom stage event
    in a part (for live display), or None."""

    modes: list[str] = ["custom", "updates", "values"]  # noqa: RUF012 (read-only, LangGraph wants a list)

    def __init__(self) -> None:
        self.stages: list[StageRecord] = []
        self.result: dict[str, Any] = {}
        self._last = time.perf_counter()
        self._round: int | None = None

    def reset_clock(self) -> None:
        """The first stage's time counts from now (e.g. after an engine has started)."""
        self._last = time.perf_counter()

    def observe(self, part: Any) -> dict[str, Any] | None:
        namespace, mode, chunk = part if len(part) == 3 else ((), *part)
        if mode == "custom":
            return chunk if isinstance(chunk, dict) else None
        if namespace:  # nested graphs (the reflect fan-out) are inside their parent node's time
            return None
        if mode == "values":
            self.result = dict(chunk)
        elif mode == "updates" and isinstance(chunk, dict):
            now = time.perf_counter()
            for node, update in chunk.items():
                update = update if isinstance(update, Mapping) else {}
                rounds = update.get("rounds")
                if isinstance(rounds, ReflectionUpdate):  # a patch of the trajectory's end
                    if rounds.append is not None:  # the reducer numbers an appended round last + 1
                        self._round = 0 if self._round is None else self._round + 1
                elif rounds:
                    self._round = _round_of(rounds[-1])
                usage = update.get("usage")
                self.stages.append(StageRecord(
                    node=str(node), round=None if node == "prepare" else self._round, seconds=now - self._last,
                    usage=usage if isinstance(usage, Usage) else Usage.model_validate(usage or {}),
                ))
            self._last = now
        return None


def _round_of(value: Any) -> int:
    return int(value.index if isinstance(value, Round) else value["index"])


@dataclass
class ShownImage:
    """An image as the page shows it: a data URL and its pixel size (or why it cannot be shown)."""

    label: str
    url: str | None = None
    width: int = 0
    height: int = 0
    note: str = ""


@dataclass
class RunView:
    """Everything one run's section of the page shows, from a result or a trajectory record."""

    title: str
    instruction: str
    output_mode: str
    inputs: list[ShownImage]
    rounds: list[Round]
    output: str
    output_image: bytes | None
    selected_round: int | None
    stop_reason: str | None
    usage: Usage | None
    stages: list[StageRecord] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def shown_image(image: Any, label: str) -> ShownImage:
    """Any input form (path, data URL, bytes, PIL image) -> a data URL the page can inline. Remote
    URLs are named, not fetched: the page and its writer stay offline."""
    try:
        if isinstance(image, Image.Image):
            return _shown(image.copy(), label)
        if isinstance(image, bytes | bytearray):
            data = bytes(image)
        elif isinstance(image, str) and image.startswith("data:"):
            data = base64.b64decode(image.partition(",")[2])
        elif isinstance(image, str) and "://" in image[:16]:
            return ShownImage(label, note=f"remote image, not embedded: {image}")
        elif isinstance(image, str | Path):
            path = Path(image).expanduser()
            if not path.is_file():
                return ShownImage(label, note=f"image not found: {image}")
            data = path.read_bytes()
        else:
            return ShownImage(label, note=f"cannot show an image of type {type(image).__name__}")
        with Image.open(io.BytesIO(data)) as img:
            if img.format in PASS_THROUGH_FORMATS and max(img.size) <= MAX_SHOWN_SIDE:
                mime = PASS_THROUGH_FORMATS[img.format]
                return ShownImage(label, f"data:{mime};base64,{base64.b64encode(data).decode()}", *img.size)
            return _shown(img.copy(), label)
    except (OSError, ValueError, SyntaxError) as exc:
        return ShownImage(label, note=f"not a readable image ({type(exc).__name__})")


def _shown(img: Image.Image, label: str) -> ShownImage:
    img.thumbnail((MAX_SHOWN_SIDE, MAX_SHOWN_SIDE))
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, format="PNG")
    return ShownImage(label, f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}", *img.size)


def _usage(value: Any) -> Usage | None:
    if value is None:
        return None
    return value if isinstance(value, Usage) else Usage.model_validate(value)


def result_view(
    result: Mapping[str, Any],
    *,
    inputs: Mapping[str, Any] | None = None,
    stages: Iterable[StageRecord] = (),
    details: Mapping[str, str] | None = None,
    error: str | None = None,
    title: str = "R3 run",
) -> RunView:
    """The view of a graph result (``ainvoke``'s value, or the state streamed with ``values``).
    The result carries no input images; pass the run's ``inputs`` to show them."""
    inputs = inputs or {}
    rounds = [r if isinstance(r, Round) else Round.model_validate(r) for r in result.get("rounds") or []]
    images = list(inputs.get("images") or result.get("images") or [])
    image_label = [str(i) if isinstance(i, str | Path) and not str(i).startswith("data:") else f"image {n + 1}"
                   for n, i in enumerate(images)]
    output_image = result.get("image")
    return RunView(
        title=title,
        instruction=str(result.get("instruction") or inputs.get("instruction") or ""),
        output_mode="image" if output_image is not None or any(r.image for r in rounds) else "text",
        inputs=[shown_image(img, label) for img, label in zip(images, image_label, strict=True)],
        rounds=rounds,
        output=str(result.get("output") or ""),
        output_image=output_image,
        selected_round=result.get("selected_round"),
        stop_reason=result.get("stop_reason"),
        usage=_usage(result.get("usage")),
        stages=list(stages),
        details=dict(details or {}),
        error=error,
    )


def record_view(record: TrajectoryRecord, *, base_dir: Path | None = None) -> RunView:
    """The view of one trajectory record. Records keep image references and hashes, not pixels:
    a referenced file is shown when it is found (relative paths from ``base_dir``) and its bytes
    still hash the same."""
    import hashlib

    shown = []
    for ref in record.input.images:
        path = Path(ref.ref)
        if not path.is_absolute() and base_dir is not None and not path.is_file():
            path = base_dir / path
        if ref.sha256 is None or not path.is_file():
            shown.append(ShownImage(ref.ref, note=f"not embedded (not found here): {ref.ref}"))
        elif hashlib.sha256(path.read_bytes()).hexdigest() != ref.sha256:
            shown.append(ShownImage(ref.ref, note=f"not embedded: {ref.ref} changed since the run (sha256 differs)"))
        else:
            shown.append(shown_image(path, ref.ref))
    selected = next((r for r in record.rounds if r.index == record.selected_round), None)
    settings = record.settings
    details = {"model": record.model, "pack": record.pack, "created": record.created, "record": record.id}
    details |= {k: str(settings[k]) for k in ("output", "reflect", "max_rounds", "select") if k in settings}
    return RunView(
        title=record.input.images[0].ref if record.input.images else record.id,
        instruction=record.input.instruction,
        output_mode=str(settings.get("output", "image" if any(r.image for r in record.rounds) else "text")),
        inputs=shown,
        rounds=list(record.rounds),
        output=record.output,
        output_image=selected.image if selected is not None else None,
        selected_round=record.selected_round,
        stop_reason=record.stop_reason,
        usage=record.usage,
        details=details,
        scores=dict(record.scores),
    )


def write_report(
    result: Mapping[str, Any] | TrajectoryRecord,
    path: str | Path,
    *,
    inputs: Mapping[str, Any] | None = None,
    stages: Iterable[StageRecord] = (),
    details: Mapping[str, str] | None = None,
    error: str | None = None,
) -> Path:
    """Write one run's report (UTF-8 HTML, self-contained); returns the path."""
    from r3graph.report_html import render_page

    if isinstance(result, TrajectoryRecord):
        view = record_view(result)
    else:
        view = result_view(result, inputs=inputs, stages=stages, details=details, error=error)
    out = Path(path)
    short = view.instruction if len(view.instruction) <= 90 else view.instruction[:89] + "…"
    out.write_text(render_page([view], title=f"R3 run: {short}"), encoding="utf-8")
    return out


def write_trajectory_report(
    records: str | Path | Iterable[TrajectoryRecord], path: str | Path, *, limit: int | None = None
) -> tuple[Path, int]:
    """Write a report of trajectory records (a JSONL file from ``r3graph export``, or records);
    image references resolve relative to the JSONL file's folder. Returns the path and the count."""
    from r3graph.report_html import render_page

    base_dir = None
    if isinstance(records, str | Path):
        base_dir = Path(records).parent
        records = read_jsonl(records)
    views: list[RunView] = []
    for record in records:
        if limit is not None and len(views) >= limit:
            break
        views.append(record_view(record, base_dir=base_dir))
    out = Path(path)
    out.write_text(render_page(views, title=f"R3 trajectories ({len(views)} runs)"), encoding="utf-8")
    return out, len(views)
