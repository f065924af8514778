"""The HTML of a run report (see :mod:`r3graph.report`): plain HTML and inline CSS, no scripts.

Every text that came from a model or a person passes through :func:`html.escape` (quotes included)
before it reaches the page; the page's Content-Security-Policy allows only inline styles and
``data:`` images, so nothing else can load or run even if something slipped through.
"""

from __future__ import annotations

import base64
import difflib
import html
import io
import re

from PIL import Image

from r3graph.report import RunView, ShownImage, StageRecord
from r3graph.state import Finding, Reflection, Usage

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STOP_REASONS = {
    "one_shot": "one-shot: max_rounds is 0, so reason's draft is the answer",
    "passed": "reflect passed the last draft",
    "unverified": "reflect could read none of its verdicts on the last draft, so nothing was verified",
    "max_rounds": "the depth limit (max_rounds) was reached",
    "unchanged": "refine returned its input unchanged",
}
MIN_SHOWN_WIDTH = 256
MARKS = {True: ("pass", "✓"), False: ("fail", "✗"), None: ("unclear", "?")}

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1rem 1.5rem;color:#1d232a}
h1{font-size:1.4rem}h2{font-size:1.2rem;border-bottom:2px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1rem;margin:.2rem 0 .5rem}
.meta{color:#57606a;font-size:.9rem}.meta span{margin-right:1.2rem}
.inputs{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
figure{margin:0}figcaption{color:#57606a;font-size:.8rem;word-break:break-all}
img{max-width:100%;height:auto;border:1px solid #d0d7de;image-rendering:pixelated}
.prompt,.draft{white-space:pre-wrap;background:#f6f8fa;border-radius:6px;padding:.5rem .7rem;margin:.3rem 0}
.round{border:1px solid #d0d7de;border-radius:8px;padding:.7rem 1rem;margin:1rem 0}
.round.chosen{border:2px solid #1a7f37;box-shadow:0 0 0 3px #dafbe1}
.cols{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:1.2rem}
ins{background:#ccffd8;text-decoration:none}del{background:#ffd7d5;color:#82071e}
.mark{display:inline-block;min-width:1.3em;text-align:center;border-radius:4px;font-weight:600;margin-right:.3rem}
.pass{background:#dafbe1;color:#1a7f37}.fail{background:#ffebe9;color:#cf222e}.unclear{background:#fff8c5;color:#7d4e00}
ul.checks{list-style:none;padding:0;margin:.3rem 0}ul.checks li{margin:.25rem 0}
.answer{color:#57606a}.critique{white-space:pre-wrap;font-size:.9rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
td,th{border:1px solid #d0d7de;padding:.2rem .5rem;text-align:right}th:first-child,td:first-child{text-align:left}
.final{background:#f6fff8;border:1px solid #1a7f37;border-radius:8px;padding:.6rem 1rem}
.error{background:#ffebe9;border:1px solid #cf222e;border-radius:8px;padding:.6rem 1rem}
details{margin-top:.3rem}summary{cursor:pointer;color:#57606a;font-size:.85rem}
nav ol{columns:2;font-size:.9rem}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def word_diff(before: str, after: str) -> str:
    """``after`` as HTML with the words added since ``before`` in <ins> and removed ones in <del>."""
    old, new = re.findall(r"\S+|\s+", before), re.findall(r"\S+|\s+", after)
    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if op in ("delete", "replace") and "".join(old[i1:i2]).strip():
            parts.append(f"<del>{esc(''.join(old[i1:i2]))}</del>" + (" " if op == "replace" else ""))
        if op in ("insert", "replace", "equal"):
            text = esc("".join(new[j1:j2]))
            parts.append(text if op == "equal" or not text.strip() else f"<ins>{text}</ins>")
    return "".join(parts)


def _png(data: bytes, label: str) -> ShownImage:
    with Image.open(io.BytesIO(data)) as img:
        size = img.size
    return ShownImage(label, f"data:image/png;base64,{base64.b64encode(data).decode()}", *size)


def image_tag(image: ShownImage) -> str:
    if image.url is None:
        return f'<p class="meta">{esc(image.label)}: {esc(image.note)}</p>'
    # Small images (a 64 px scene) are drawn larger so a person can see them; the file is unchanged.
    shown = max(image.width, min(MIN_SHOWN_WIDTH, image.width * 4))
    return (f'<figure><img src="{image.url}" width="{image.width}" height="{image.height}" '
            f'style="width:{shown}px" '
            f'alt="{esc(image.label)}" data-width="{image.width}" data-height="{image.height}">'
            f"<figcaption>{esc(image.label)} ({image.width}×{image.height})</figcaption></figure>")


def _mark(ok: bool | None, text: str | None = None) -> str:
    cls, symbol = MARKS[ok]
    return f'<span class="mark {cls}" title="{cls}">{symbol}</span>{esc(text) if text else ""}'


def _finding(finding: Finding) -> str:
    return (f"<li>{_mark(finding.consistent)}{esc(finding.question)} "
            f'<span class="answer">→ {esc(finding.answer)}</span></li>')


def reflection_html(reflection: Reflection | None, image_mode: bool) -> str:
    if reflection is None:
        return '<p class="meta">not reflected on (the last round of a run, or one-shot)</p>'
    verdict_ok = reflection.verdict == "pass"
    head = (f"<h3>reflect: {esc(reflection.strategy)} {_mark(verdict_ok)}{esc(reflection.verdict)}"
            f' <span class="meta">score {reflection.score:.2f}, {reflection.passes} pass(es)'
            f"{', reviewed: ' + esc(reflection.reviewed) if reflection.reviewed else ''}</span></h3>")
    if reflection.findings:
        body = '<ul class="checks">' + "".join(_finding(f) for f in reflection.findings) + "</ul>"
        if not verdict_ok and reflection.critique:
            body += f'<details><summary>critique given to refine</summary><div class="critique">' \
                    f"{esc(reflection.critique)}</div></details>"
    else:  # the judge (or a custom strategy): its edit instruction or summary is the finding
        what = "edit" if image_mode or reflection.strategy == "judge" else "critique"
        said = reflection.critique or ("no further edit needed" if verdict_ok else "(nothing said)")
        body = f'<p>{_mark(verdict_ok)}{what}: <span class="critique">{esc(said)}</span></p>'
    if reflection.raw and reflection.raw != reflection.critique:
        body += ('<details><summary>raw model output</summary>'
                 f'<div class="critique">{esc(reflection.raw)}</div></details>')
    return head + body


def _stage_totals(stages: list[StageRecord], index: int) -> str:
    mine = [s for s in stages if s.round == index]
    if not mine:
        return ""
    return " · ".join(f"{esc(s.node)} {s.seconds:.2f} s" for s in mine)


def round_html(view: RunView, position: int) -> str:
    current = view.rounds[position]
    image_mode = view.output_mode == "image"
    chosen = current.index == view.selected_round
    origin = "reason" if current.index == 0 else "refine"
    timing = _stage_totals(view.stages, current.index)
    head = (f'<h3>round {current.index} <span class="meta">({origin}{"; chosen" if chosen else ""})'
            f'{" · " + timing if timing else ""}</span></h3>')
    if image_mode:
        what = "prompt" if current.index == 0 else "edit applied"
        left = f'<div class="draft"><b>{what}:</b> {esc(current.draft)}</div>'
        left += image_tag(_png(current.image, f"round {current.index}")) if current.image else \
            '<p class="meta">no image</p>'
    else:
        previous = view.rounds[position - 1].draft if position > 0 else None
        body = esc(current.draft) if previous is None else word_diff(previous, current.draft)
        note = "" if previous is None else '<p class="meta">changes from the previous draft: ' \
               "<ins>added</ins> <del>removed</del></p>"
        left = f'<div class="draft">{body}</div>{note}'
    right = reflection_html(current.reflection, image_mode)
    return (f'<div class="round{" chosen" if chosen else ""}" id="round-{current.index}" data-round="{current.index}">'
            f'{head}<div class="cols"><div>{left}</div><div>{right}</div></div></div>')


def usage_html(usage: Usage | None, stages: list[StageRecord]) -> str:
    if usage is None and not stages:
        return ""
    cols = ("calls", "input_tokens", "output_tokens", "cached_input_tokens", "image_calls", "truncated_calls")
    head = "<tr><th>stage</th><th>round</th><th>time (s)</th>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"
    rows = [f"<tr><td>{esc(s.node)}</td><td>{'' if s.round is None else s.round}</td><td>{s.seconds:.3f}</td>"
            + "".join(f"<td>{getattr(s.usage, c)}</td>" for c in cols) + "</tr>" for s in stages]
    if usage is not None:
        total_time = f"{sum(s.seconds for s in stages):.3f}" if stages else ""
        rows.append("<tr><th>total</th><th></th>" + f"<th>{total_time}</th>"
                    + "".join(f"<th>{getattr(usage, c)}</th>" for c in cols) + "</tr>")
    return f"<h3>usage and timings</h3><table>{head}{''.join(rows)}</table>"


def final_html(view: RunView) -> str:
    why = STOP_REASONS.get(view.stop_reason or "", view.stop_reason or "unknown")
    if view.output_image is not None:
        answer = image_tag(_png(view.output_image, f"final image (round {view.selected_round})"))
    else:
        answer = f'<div class="draft">{esc(view.output)}</div>'
    scores = "".join(f"<span>{esc(k)} {v:.3f}</span>" for k, v in view.scores.items())
    return (f'<div class="final" id="final"><h3>final: round {esc(view.selected_round)} '
            f'<span class="meta">stop reason: {esc(view.stop_reason)} ({esc(why)})</span></h3>{answer}'
            f'{f"<p class=meta>{scores}</p>" if scores else ""}</div>')


def run_html(view: RunView, anchor: str, *, heading: bool = True) -> str:
    meta = "".join(f"<span>{esc(k)}: {esc(v)}</span>" for k, v in view.details.items())
    prompt_label = "prompt" if view.output_mode == "image" else "instruction"
    inputs = "".join(image_tag(i) for i in view.inputs)
    parts = [
        f'<section class="run" id="{anchor}">',
        f"<h2>{esc(view.title)}</h2>" if heading else "",
        f'<p class="meta">{meta}</p>' if meta else "",
        f'<div class="prompt"><b>{prompt_label}:</b> {esc(view.instruction)}</div>',
        f'<div class="inputs">{inputs}</div>' if inputs else "",
        f'<div class="error"><b>the run failed:</b> {esc(view.error)}</div>' if view.error else "",
        *(round_html(view, i) for i in range(len(view.rounds))),
        final_html(view) if view.rounds and not view.error else "",
        usage_html(view.usage, view.stages),
        "</section>",
    ]
    return "".join(parts)


def render_page(views: list[RunView], *, title: str) -> str:
    nav = ""
    if len(views) > 1:
        items = "".join(f'<li><a href="#run-{n}">{esc(v.title)}</a> ({esc(v.stop_reason)})</li>'
                        for n, v in enumerate(views))
        nav = f"<nav><ol>{items}</ol></nav>"
    body = "".join(run_html(v, f"run-{n}", heading=len(views) > 1) for n, v in enumerate(views))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
            f"<body><h1>{esc(title)}</h1>{nav}{body}</body></html>\n")
