"""docs/bad-input.md is generated from the corpus: this fails when someone changed one and not the other."""

from __future__ import annotations

import importlib.util

from tests.helpers import REPO


def test_the_bad_input_doc_matches_the_corpus() -> None:
    spec = importlib.util.spec_from_file_location("bad_input_doc", REPO / "scripts" / "bad_input_doc.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert (REPO / "docs" / "bad-input.md").read_text() == script.render(), (
        "docs/bad-input.md is stale: run .venv/bin/python scripts/bad_input_doc.py"
    )
