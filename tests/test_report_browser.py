"""The report as a person sees it: opened in a real headless Chromium (``make browser`` installs
Debian's package), the page renders without errors or network requests, every image decodes at its
size, every round is there, and a hostile draft shows as text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from r3graph.report import write_report
from r3graph.state import Reflection, Round
from tests.browser import Chromium, PageCheck, find_chromium
from tests.report_runs import image_run, text_run
from tests.test_report import HOSTILE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    binary = find_chromium()
    if binary is None:
        pytest.skip("Chromium is not installed and `make browser` could not install it (needs apt and root/sudo): "
                    "the report's browser checks did not run")
    chromium = Chromium(binary)
    yield chromium
    chromium.close()


def assert_renders_cleanly(page: PageCheck, path: Path, rounds: list[int]) -> None:
    assert page.console_errors == []
    assert page.requests == [path.resolve().as_uri()]  # the file itself, nothing else
    assert page.info["scripts"] == 0
    assert page.info["rounds"] == rounds and page.info["final"]
    for image in page.info["images"]:
        assert image["complete"] and image["naturalWidth"] > 0, image
        assert (image["naturalWidth"], image["naturalHeight"]) == (image["width"], image["height"]), image
        assert image["shownWidth"] >= image["naturalWidth"] or image["shownWidth"] >= 256, image


async def test_a_text_run_report_renders_in_chromium(browser: Chromium, tmp_path: Path) -> None:
    inputs, result, stages = await text_run()
    path = write_report(result, tmp_path / "text.html", inputs=inputs, stages=stages)
    page = browser.check(path)
    assert_renders_cleanly(page, path, [0, 1])
    assert [i["alt"] for i in page.info["images"]] == inputs["images"]
    assert (page.info["images"][0]["naturalWidth"], page.info["images"][0]["naturalHeight"]) == (64, 64)
    assert "stop reason: passed" in page.info["text"] and "✗" in page.info["text"]


async def test_an_image_run_report_renders_in_chromium(browser: Chromium, tmp_path: Path) -> None:
    inputs, result, stages = await image_run()
    path = write_report(result, tmp_path / "image.html", inputs=inputs, stages=stages)
    page = browser.check(path)
    assert_renders_cleanly(page, path, [0, 1])
    assert [i["alt"] for i in page.info["images"]] == ["round 0", "round 1", "final image (round 1)"]
    assert {(i["naturalWidth"], i["naturalHeight"]) for i in page.info["images"]} == {(256, 256)}


def test_a_hostile_draft_shows_as_text_and_runs_nothing(browser: Chromium, tmp_path: Path) -> None:
    reflection = Reflection(strategy="judge", verdict="revise", critique=HOSTILE)
    result = {"instruction": HOSTILE, "rounds": [Round(index=0, draft=HOSTILE, reflection=reflection),
                                                 Round(index=1, draft=HOSTILE)],
              "output": HOSTILE, "selected_round": 1, "stop_reason": "max_rounds"}
    path = write_report(result, tmp_path / "hostile.html", details={"model": HOSTILE})
    page = browser.check(path)
    assert_renders_cleanly(page, path, [0, 1])
    assert page.info["images"] == [] and page.info["text"].count('<script>alert("draft")</script>') >= 5
