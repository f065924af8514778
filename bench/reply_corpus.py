"""Per-kind accuracy of the verdict layer on the reply corpus (tests/data/replies), and of the parsers
it replaced, kept here verbatim as they were before issue 12 so the comparison can be rerun.

    .venv/bin/python bench/reply_corpus.py      # writes bench/results/reply_corpus.md

A reply counts as read right when the reading equals the corpus's expected one (yes/no/unclear;
pass/edit/unclear with the same edit text, normalised; the same items, normalised).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from r3graph import load_pack  # noqa: E402
from r3graph.reflect.verdicts import read_items, read_judge, read_yes_no  # noqa: E402
from r3graph.reply_text import normalise  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "replies"
SENTINEL = "no further edit needed"

# -- the parsers before issue 12 (r3graph/reflect/parsing.py and PromptPack.is_yes/is_sentinel) ----
_OLD_BULLET = re.compile(r"^\s*(?:[-*•]+|\(?\d{1,2}[.):]|q\d*[.:)]|question\s*\d*[.:)])\s*", re.IGNORECASE)
_OLD_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def old_is_yes(answer: str) -> bool:
    head = answer.strip().lower().lstrip("\"'*-([ ")
    return any(head.startswith(word) for word in ("yes", "true", "correct"))


def old_is_sentinel(text: str) -> bool:
    return SENTINEL in " ".join(text.lower().split())


def old_parse_lines(text: str, limit: int) -> list[str]:
    seen: set[str] = set()
    items: list[str] = []
    for line in text.splitlines():
        item = _OLD_BULLET.sub("", line).strip().strip('"').strip()
        key = " ".join(item.lower().split())
        if len(key) < 3 or key in seen:
            continue
        seen.add(key)
        items.append(item)
        if len(items) >= limit:
            break
    return items


def old_parse_judge_text(text: str) -> str:
    match = _OLD_JSON_OBJECT.search(text)
    if match:
        try:
            data = json.loads(match.group(0))
            if isinstance(data, dict) and isinstance(data.get("edit"), str):
                return str(data["edit"]).strip()
        except json.JSONDecodeError:
            pass
    cleaned = text.strip().strip("`").strip()
    for prefix in ("edit:", "edit instruction:", "instruction:"):
        if cleaned.lower().startswith(prefix):
            cleaned = cleaned[len(prefix):].strip()
    return cleaned.strip('"').strip()


def old_judge(text: str) -> tuple[str, str]:
    edit = old_parse_judge_text(text)
    return ("pass", "") if old_is_sentinel(edit) or not edit else ("edit", edit)


# -- scoring ---------------------------------------------------------------------------------------
def _records(where: Path, kind: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (where / f"{kind}.jsonl").read_text(encoding="utf-8").splitlines()]


Reader = Callable[[dict[str, Any]], Any]


def score(where: Path, kind: str, reader: Reader, expected: Reader) -> tuple[int, int]:
    records = _records(where, kind)
    return sum(reader(r) == expected(r) for r in records), len(records)


def main() -> None:
    passes = load_pack("default").accepted_passes
    new_judge = {
        "yes_no": lambda r: read_yes_no(r["text"], reasoning=r.get("reasoning")).verdict,
        "judge": lambda r: (lambda j: (j.outcome, normalise(j.edit)))(
            read_judge(r["text"], passes, reasoning=r.get("reasoning"))),
        "lists": lambda r: [normalise(i) for i in read_items(
            r["text"], r["limit"], questions=r["kind"] == "questions", reasoning=r.get("reasoning"))],
    }
    old = {
        "yes_no": lambda r: "yes" if old_is_yes(r["text"]) else "no",
        "judge": lambda r: (lambda o: (o[0], normalise(o[1])))(old_judge(r["text"])),
        "lists": lambda r: [normalise(i) for i in old_parse_lines(r["text"], r["limit"])],
    }
    expected = {
        "yes_no": lambda r: r["expected"],
        "judge": lambda r: (r["expected"], normalise(r.get("edit", ""))),
        "lists": lambda r: [normalise(i) for i in r["expected"]],
    }
    lines = ["# Reply corpus: per-kind accuracy", "", "`.venv/bin/python bench/reply_corpus.py`; corpus: "
             "`tests/data/replies/*.jsonl` (sources in SOURCES.md).", "",
             "| set | kind | replies | before (old parsers) | after (verdict layer) |",
             "| --- | --- | --- | --- | --- |"]
    for label, where in (("corpus", CORPUS), ("held-out", CORPUS / "heldout")):
        for kind in ("yes_no", "judge", "lists"):
            before, n = score(where, kind, old[kind], expected[kind])
            after, _ = score(where, kind, new_judge[kind], expected[kind])
            cells = f"{before}/{n} = {before / n:.3f} | {after}/{n} = {after / n:.3f}"
            lines.append(f"| {label} | {kind} | {n} | {cells} |")
    lines += ["", "The reader was developed against the corpus; the held-out replies were written after it "
              "(see SOURCES.md for what they scored before the two fixes they prompted)."]
    text = "\n".join(lines) + "\n"
    (ROOT / "bench" / "results" / "reply_corpus.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
