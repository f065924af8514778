"""The HTML report: what it contains for text and image runs and for exported trajectories, that it
is self-contained, and that nothing from a model or a person reaches the page as markup. (What a
browser shows of it: tests/test_report_browser.py.)"""

from __future__ import annotations

import argparse
import base64
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from r3graph.cli import main
from r3graph.export import read_jsonl
from r3graph.export_cli import add_export_parser, run_export
from r3graph.report import StageRecorder, write_report, write_trajectory_report
from r3graph.report_html import word_diff
from r3graph.state import Finding, Reflection, Round, Usage
from r3graph_scenes.assets import EXAMPLE_PNG
from tests.report_runs import image_run, text_run

HOSTILE = """<script>alert("draft")</script> a "quoted" 'red' <img src=x onerror=alert(1)> & done"""


class Elements(HTMLParser):
    """Every start tag with its attributes, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def elements(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(page)
    return parser.tags


def assert_self_contained(page: str) -> None:
    tags = elements(page)
    assert not [t for t, _ in tags if t in ("script", "link", "iframe", "object", "embed")]
    for tag, attrs in tags:
        assert not [k for k in attrs if k.startswith("on")], (tag, attrs)
        for key in ("src", "href"):
            value = attrs.get(key)
            assert value is None or value.startswith(("data:image/", "#")), (tag, key, value[:40])
    assert "default-src 'none'" in page  # the CSP: even a missed escape could neither load nor run


async def test_a_text_run_shows_every_round_its_checks_the_change_and_the_stop_reason(tmp_path: Path) -> None:
    inputs, result, stages = await text_run()
    path = write_report(result, tmp_path / "run.html", inputs=inputs, stages=stages)
    page = path.read_text()
    assert_self_contained(page)
    first, second = result["rounds"]
    assert [int(i) for i in re.findall(r'data-round="(\d+)"', page)] == [0, 1]
    # the input image, inline and byte-identical
    assert f"data:image/png;base64,{base64.b64encode(EXAMPLE_PNG.read_bytes()).decode()}" in page
    # every check with its answer and its mark; the failed one marked as failed
    for finding in first.reflection.findings:
        assert f"{finding.question} <span class=\"answer\">→ {finding.answer}</span>" in page
    failed = [f for f in first.reflection.findings if f.consistent is False]
    assert len(failed) == 1 and page.count('class="mark fail"') >= 2  # the finding and the verdict
    # what refine changed, as a word diff against round 0
    before, after = set(first.draft.split()), set(second.draft.split())
    old, new = before - after, after - before
    assert old and new
    assert all(f"<del>{w}</del>" in page for w in old) and all(f"<ins>{w}</ins>" in page for w in new)
    assert 'id="final"' in page and "stop reason: passed" in page and "final: round 1" in page
    # stage timings and usage: a row per top-level node, and totals equal to the run's usage
    nodes = [s.node for s in stages]  # each check is a node of its own, concluded by reflect_verdict
    assert [n for n in nodes if n not in ("check", "reflect_verdict")] == [
        "prepare", "reason", "reflect", "refine", "reflect", "finalize"]
    assert nodes.count("check") >= 2 and nodes.count("reflect_verdict") >= 2
    assert sum((s.usage for s in stages), Usage()) == result["usage"]
    assert page.count("<tr><td>") == len(stages) and f"<th>{result['usage'].calls}</th>" in page


async def test_an_image_run_shows_each_generated_image_and_the_judges_edit(tmp_path: Path) -> None:
    inputs, result, stages = await image_run()
    page = write_report(result, tmp_path / "image.html", inputs=inputs, stages=stages).read_text()
    assert_self_contained(page)
    first, second = result["rounds"]
    for round_ in (first, second):
        assert base64.b64encode(round_.image).decode() in page
    assert f"edit: <span class=\"critique\">{first.reflection.critique}</span>" in page
    assert "edit applied:</b> " + second.draft in page and "stop reason: passed" in page
    assert 'alt="final image (round 1)"' in page


def test_everything_from_a_model_or_a_person_is_escaped(tmp_path: Path) -> None:
    reflection = Reflection(strategy="self_questions", verdict="revise", critique=HOSTILE, raw=HOSTILE + "!",
                            findings=[Finding(question=HOSTILE, answer=HOSTILE, consistent=None)])
    result = {"instruction": HOSTILE, "rounds": [Round(index=0, draft=HOSTILE, reflection=reflection),
                                                 Round(index=1, draft=HOSTILE + " <b>more</b>")],
              "output": HOSTILE, "selected_round": 1, "stop_reason": "max_rounds", "usage": Usage()}
    page = write_report(result, tmp_path / "hostile.html", details={"model": HOSTILE}, error=HOSTILE).read_text()
    assert_self_contained(page)
    assert "<script>" not in page and "<b>more</b>" not in page
    assert "&lt;script&gt;alert(&quot;draft&quot;)&lt;/script&gt;" in page and "&#x27;red&#x27;" in page
    assert {t for t, _ in elements(page)} <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p",
                                             "span", "div", "section", "ul", "li", "ins", "del", "details",
                                             "summary", "b", "table", "tr", "td", "th", "figure", "img",
                                             "figcaption", "nav", "ol", "a"}
    assert page.count("<img") == 0  # the hostile <img> stayed text


def test_word_diff_marks_added_and_removed_words_and_escapes_them() -> None:
    assert word_diff("a red circle .", "a red <star> .") == "a red <del>circle</del> <ins>&lt;star&gt;</ins> ."
    assert word_diff("same text", "same text") == "same text"
    assert word_diff("", "new words") == "<ins>new words</ins>"


async def test_the_recorder_times_stages_from_the_stream_not_from_the_engine_start() -> None:
    _, result, stages = await text_run(max_rounds=0)
    assert [s.node for s in stages] == ["prepare", "reason", "finalize"]
    assert [s.round for s in stages] == [None, 0, 0] and all(s.seconds >= 0 for s in stages)
    assert result["stop_reason"] == "one_shot"
    assert StageRecorder().observe(((), "custom", {"stage": "reason"})) == {"stage": "reason"}


def _export(tmp_path: Path, images: list[Path]) -> Path:
    parser = argparse.ArgumentParser()
    add_export_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "runs.jsonl"
    args = parser.parse_args(["export", "--images", *map(str, images), "--out", str(out), "--backend", "scripted",
                              "--max-rounds", "2"])
    assert run_export(args) == 0
    return out


def test_r3graph_report_renders_an_export_and_embeds_images_it_can_verify(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    kept, changed = tmp_path / "kept.png", tmp_path / "changed.png"
    shutil.copy(EXAMPLE_PNG, kept)
    shutil.copy(EXAMPLE_PNG, changed)
    runs = _export(tmp_path, [kept, changed])
    changed.write_bytes(changed.read_bytes() + b"\0")  # the file changed after the run: not the image it saw
    capsys.readouterr()
    assert main(["report", str(runs), "--out", str(tmp_path / "runs.html")]) == 0
    assert "2 run(s)" in capsys.readouterr().err
    page = (tmp_path / "runs.html").read_text()
    assert_self_contained(page)
    records = list(read_jsonl(runs))
    assert page.count('<section class="run"') == 2 and page.count('href="#run-') == 2
    assert page.count(base64.b64encode(EXAMPLE_PNG.read_bytes()).decode()) == 1
    assert "changed since the run (sha256 differs)" in page
    for record in records:
        assert f"record: {record.id}" in page and record.output in page
    _, count = write_trajectory_report(runs, tmp_path / "first.html", limit=1)
    assert count == 1


@pytest.mark.parametrize("content", ["not json\n", '{"schema": "r3graph.trajectory/1"}\n'])
def test_r3graph_report_refuses_a_file_that_is_not_a_trajectory_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a trajectory file from `r3graph export`" in err
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such trajectory file" in capsys.readouterr().err


async def test_an_image_run_kept_as_a_trajectory_record_reports_its_images(tmp_path: Path) -> None:
    from r3graph.export import trajectory_record, write_jsonl

    inputs, result, _ = await image_run()
    record = trajectory_record(inputs, result, model="oracle", pack="scenes", context={"output": "image"})
    write_jsonl([record], tmp_path / "images.jsonl")  # the PNGs travel as base64 in the JSON
    path, count = write_trajectory_report(tmp_path / "images.jsonl", tmp_path / "images.html")
    page = path.read_text()
    assert count == 1
    assert_self_contained(page)
    for round_ in result["rounds"]:
        assert base64.b64encode(round_.image).decode() in page
    assert "edit applied:</b> " in page and 'alt="final image (round 1)"' in page
