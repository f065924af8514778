"""The verdict layer: what a reply says, read the way real VLMs write.

Three readings, used by every strategy and by output mode "image":

- :func:`read_yes_no`: an answer to a yes/no question or claim -> "yes" / "no" / "unclear";
- :func:`read_judge`: a judge (or summary) reply -> pass / edit(text) / unclear;
- :func:`read_items`: a list of questions or claims -> the items, without preambles and remarks.

Each one first takes the wrapping off (:mod:`r3graph.reply_text`: reasoning blocks,
markdown, fenced or loose JSON), then looks for the verdict where models put it: behind an answer
prefix ("Answer:", "**Final answer:**"), at the end after reasoning (the final verdict wins), or as
the opening word. Nothing is matched as a substring of the whole reply. What cannot be read (empty
replies, refusals, hedges) is "unclear", which is not a failed check: the pack or context decides
whether to re-ask once or to ignore it (see :mod:`r3graph.reflect.unclear`). Never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from r3graph.reply_text import loose_json, normalise, split_reasoning, strip_markdown

YesNo = Literal["yes", "no", "unclear"]

# Common yes/no words in the languages multilingual VLMs answer in when the question leaks their
# language (German, French, Spanish/Italian/Portuguese, Slavic, Turkish, Nordic, Dutch, Chinese,
# Japanese, Korean, Arabic, Greek, Hebrew, Hindi, Indonesian, Vietnamese, Finnish, Hungarian, Czech).
YES_WORDS = frozenset({
    "yes", "yeah", "yep", "yup", "true", "correct", "affirmative", "indeed", "absolutely", "certainly",
    "ja", "jawohl", "oui", "sí", "si", "sì", "sim", "da", "да", "так", "tak", "evet", "ano", "áno", "igen",
    "kyllä", "jah", "ya", "iya", "có", "ναι", "نعم", "כן", "हाँ", "हां", "haan", "はい", "ええ", "네", "예",
})
NO_WORDS = frozenset({
    "no", "nope", "nah", "false", "incorrect", "wrong", "nein", "non", "nie", "нет", "ні", "ne", "hayır",
    "hayir", "não", "nao", "nee", "nej", "ei", "nem", "tidak", "bukan", "không", "όχι", "لا", "לא", "नहीं",
    "いいえ", "いや", "아니요", "아니오", "아니",
})
# Chinese has no spaces: these open the answer ("是的，图中有…", "没有。"); negatives tried first.
_CJK_NO = ("不是", "没有", "沒有", "不对", "不對", "不", "否", "无", "無")
_CJK_YES = ("是的", "是", "对", "對", "有", "正确", "正確")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
_VERDICT = r"(yes|no|true|false|correct|incorrect)"
# "Answer: yes", "the answer is no", "Final verdict - Yes", "So, no." , "Therefore the claim is true."
_MARKED = re.compile(
    r"(?:final answer|short answer|answer|verdict|conclusion|response|result|output)\s*(?:is|would be|:|：|-|=)\s*"
    r"(?:that\s+)?(?:a\s+)?[\"'(\[]*" + _VERDICT + r"\b"
    r"|(?:^|[.!;:\n]\s*)(?:so|thus|therefore|hence|overall|in conclusion|in summary|in short|finally)\s*,?\s*"
    r"(?:the answer is\s*|my answer is\s*|it(?:'s| is)\s*)?[\"'(\[]*" + _VERDICT + r"\b"
    r"|(?:^|\s)(?:the |this |that )?(?:claim|statement|description|caption|draft|question's answer)\s+is\s+"
    r"(not\s+)?(true|false|correct|incorrect|accurate|inaccurate)\b",
    re.IGNORECASE,
)
_PREFIX = re.compile(
    r"^\s*(?:(?:final|short|my|the)\s+)?(?:answer|verdict|response|result|output|reply|a|assistant)\s*"
    r"(?:is\s*)?[:：\-=]?\s*",
    re.IGNORECASE,
)
_LEAD_CLAUSE = re.compile(
    r"^(?:based on|looking at|from|according to|upon|after|in|judging by|having looked at)\b[^,.;:!?]{0,80},\s*",
    re.IGNORECASE,
)
# "There is no red car in the image." answers "Is there a red car?" with a no, whatever the question;
# a positive statement does not say which question it answers, so it stays unclear.
_NEGATIVE_STATEMENT = re.compile(
    r"^(?:there (?:is|are) no\b|there (?:isn't|aren't|is not|are not)\b|(?:the image|the picture|it) "
    r"(?:does not|doesn't) (?:show|contain|depict|include)\b|(?:i )?(?:do not|don't) see any\b)",
    re.IGNORECASE,
)
_WORD_VERDICT: dict[str, YesNo] = {"true": "yes", "correct": "yes", "accurate": "yes", "false": "no", "incorrect": "no",
                 "inaccurate": "no"}
_JSON_ANSWER_KEYS = ("answer", "verdict", "result", "response", "consistent", "is_true", "correct", "value",
                     "true", "output", "label")


class YesNoAnswer(BaseModel):
    """Structured yes/no (a constrained choice through vLLM's structured outputs)."""

    model_config = ConfigDict(extra="forbid")
    answer: Literal["yes", "no"]


class ItemList(BaseModel):
    """Structured question or claim list (a JSON array through structured outputs)."""

    model_config = ConfigDict(extra="forbid")
    items: list[str] = Field(description="One short question or claim per item.")


class JudgeVerdict(BaseModel):
    """The judge's structured verdict: one edit instruction, or the sentinel."""

    edit: str = Field(description='One concrete edit instruction, or "no further edit needed".')


@dataclass(frozen=True)
class YesNoReading:
    verdict: YesNo
    text: str  # the answer without reasoning or JSON wrapping: what a finding shows refine


def _word_verdict(word: str, yes: frozenset[str], no: frozenset[str]) -> YesNo | None:
    word = word.lower()
    if word in yes:
        return "yes"
    if word in no:
        return "no"
    return None


def _opening_verdict(text: str, yes: frozenset[str], no: frozenset[str]) -> YesNo | None:
    head = _PREFIX.sub("", text, count=1).lstrip(" \"'([*-")
    for attempt in (head, _LEAD_CLAUSE.sub("", head, count=1)):
        for word in _CJK_NO:
            if attempt.startswith(word):
                return "no"
        for word in _CJK_YES:
            if attempt.startswith(word):
                return "yes"
        match = _WORD.match(attempt)
        if match and (verdict := _word_verdict(match.group(0), yes, no)) is not None:
            return verdict
    return None


def _closing_verdict(text: str, yes: frozenset[str], no: frozenset[str]) -> YesNo | None:
    """A last sentence that is nothing but a verdict ("…on the left.\n\nYes.")."""
    sentences = [s for s in re.split(r"(?<=[.!?\n])\s+", text.strip()) if normalise(s)]
    if len(sentences) < 2:
        return None
    last = normalise(sentences[-1])
    return _word_verdict(last, yes, no) if _WORD.fullmatch(last) else None


def _json_verdict(data: Any, yes: frozenset[str], no: frozenset[str]) -> YesNo | None:
    if not isinstance(data, dict):
        return None
    for key in _JSON_ANSWER_KEYS:
        if key in data:
            value = data[key]
            if isinstance(value, bool):
                return "yes" if value else "no"
            if isinstance(value, str):
                return _opening_verdict(normalise(value), yes, no) or "unclear"
            return "unclear"
    return None


def read_yes_no(text: str, *, yes_words: Iterable[str] = (), no_words: Iterable[str] = (),
                reasoning: str | None = None) -> YesNoReading:
    """"yes", "no" or "unclear" for an answer to a yes/no question (or a claim check)."""
    yes = YES_WORDS | {w.lower() for w in yes_words}
    no = NO_WORDS | {w.lower() for w in no_words}
    answer = split_reasoning(text, reasoning).answer
    if not answer:
        return YesNoReading("unclear", "")
    data = loose_json(answer) if "{" in answer else None
    if isinstance(data, dict) and (verdict := _json_verdict(data, yes, no)) is not None:
        detail = next((str(v) for k, v in data.items() if k not in _JSON_ANSWER_KEYS and isinstance(v, str)), "")
        return YesNoReading(verdict, f"{verdict}{': ' + detail if detail else ''}")
    plain = strip_markdown(answer)
    marked = list(_MARKED.finditer(plain))
    if marked:
        groups = [g for g in marked[-1].groups() if g]
        word = groups[-1].lower()
        marked_verdict = _word_verdict(word, yes, no) or _WORD_VERDICT.get(word)
        if marked_verdict is not None:
            negated = len(groups) == 2 and groups[0].lower().strip() == "not"
            flipped: YesNo = "no" if marked_verdict == "yes" else "yes"
            return YesNoReading(flipped if negated else marked_verdict, answer)
    verdict = _closing_verdict(plain, yes, no) or _opening_verdict(plain.strip(), yes, no)
    if verdict is None and _NEGATIVE_STATEMENT.match(normalise(plain)):
        verdict = "no"
    return YesNoReading(verdict or "unclear", answer)


# -- judge ---------------------------------------------------------------------------------------

JudgeOutcome = Literal["pass", "edit", "unclear"]
_EDIT_KEYS = ("edit", "edit_instruction", "instruction", "correction", "fix", "suggestion", "edits", "change")
_PASS_KEYS = {"needs_edit": False, "needs_edits": False, "is_correct": True, "correct": True, "matches": True}
_NOTHING = {"", "none", "null", "n/a", "na", "nil", "nothing", "-"}
_EDIT_MARKER = re.compile(
    r"(?:^|\n)[ \t>*#_-]*(?:\d+[.)]\s*)?(?:final\s+|suggested\s+|proposed\s+|my\s+)?"
    r"(?:edit(?:\s+instruction)?|instruction|correction|fix|answer|verdict|output|response|suggestion)"
    r"[ \t*_]*[:：][ \t*_]*",
    re.IGNORECASE,
)
_IMPERATIVE = re.compile(
    r"^(?:please\s+)?(?:change|replace|remove|delete|add|insert|move|swap|make|correct|fix|rewrite|update|"
    r"mention|describe|include|specify|state|clarify|use|recolou?r|resize|shift|put|place|turn|rename|"
    r"edit|adjust|reduce|increase|shrink|enlarge|draw|paint|drop|omit|say|write|note)\b",
    re.IGNORECASE,
)
_UNCLEAR_REPLY = re.compile(
    r"^(?:i'?m sorry|sorry|i apologi[sz]e|as an ai|i (?:can ?not|can't|am unable to|'m unable to|won't)\b|"
    r"i(?:'m| am) not able to|"
    r"unable to|it is (?:unclear|not possible)|it's (?:unclear|not possible)|unclear|not sure|hard to (?:tell|say))",
    re.IGNORECASE,
)


_BROKEN_JSON_EDIT = re.compile(r"""^\s*\{\s*['"](?:edit|edit_instruction|instruction)['"]\s*:\s*['"](.*)$""",
                               re.IGNORECASE | re.DOTALL)


_REMARK = re.compile(
    r"^(?:this|that|these|it) (?:should|will|would|fixes|corrects|addresses|makes|ensures)\b"
    r"|^(?:i hope|hope|let me know|feel free|note)\b", re.IGNORECASE)


@dataclass(frozen=True)
class JudgeReading:
    outcome: JudgeOutcome
    edit: str = ""  # the edit instruction when outcome == "edit"


def _is_pass(text: str, passes: frozenset[str]) -> bool:
    """The whole verdict is an accepted phrasing, or opens with one before a dash, colon or comma
    ("No further edit needed - the draft is accurate")."""
    said = normalise(text)
    return said in passes or any(
        said.startswith(p) and re.match(r"\s*[—–:;,(-]", said[len(p):]) for p in passes
    )


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if normalise(s)]


def _edit_from_text(text: str, passes: frozenset[str]) -> JudgeReading:
    text = strip_markdown(text).strip().strip("\"'“”").strip()
    if not normalise(text) or normalise(text) in _NOTHING:
        return JudgeReading("pass" if normalise(text) in _NOTHING - {""} else "unclear")
    if _is_pass(text, passes):
        return JudgeReading("pass")
    sentences = _sentences(text)
    imperative = [i for i, s in enumerate(sentences) if _IMPERATIVE.match(s.strip(" \"'-*"))]
    if imperative:  # reasoning or remarks around the instruction: the instruction(s) are the edit
        return JudgeReading("edit", " ".join(sentences[imperative[0]: imperative[-1] + 1]).strip(" \"'"))
    tails = [re.split(r"\s[—–-]\s|[;:]\s", s)[-1] for s in sentences]  # "It matches — no edits are needed."
    if any(_is_pass(s, passes) for s in sentences + tails):  # "The draft is accurate. No further edit needed."
        return JudgeReading("pass")
    if _UNCLEAR_REPLY.match(normalise(text)) or len(_WORD.findall(text)) < 3:
        return JudgeReading("unclear")  # refusals, hedges, a bare "yes"/"wrong": no edit to act on
    # A stated fix ("the cat is left of the plant"): closing remarks go, and after a paragraph of
    # reasoning the last paragraph is the verdict.
    kept = [p for p in re.split(r"\n\s*\n", text) if normalise(p) and not _REMARK.match(normalise(p))]
    kept = [" ".join(s for s in _sentences(p) if not _REMARK.match(normalise(s))) or p for p in kept]
    return JudgeReading("edit", (kept[-1] if kept else text).strip())


def _json_judge(data: Any, passes: frozenset[str]) -> JudgeReading | None:
    if isinstance(data, list):
        data = next((d for d in data if isinstance(d, dict)), None)
    if not isinstance(data, dict):
        return None
    for key in _EDIT_KEYS:
        if key in data:
            value = data[key]
            if isinstance(value, list):
                value = next((v for v in value if isinstance(v, str) and v.strip()), None)
            if value is None or value is False or (isinstance(value, str) and not value.strip()):
                return JudgeReading("pass")  # an explicit empty edit: nothing to change
            if isinstance(value, str):
                return _edit_from_text(value, passes)
            return JudgeReading("unclear")
    for key, passing in _PASS_KEYS.items():
        if isinstance(data.get(key), bool):
            return JudgeReading("pass") if data[key] == passing else JudgeReading("unclear")
    return JudgeReading("unclear")


def read_judge(text: str, pass_phrases: Iterable[str], *, reasoning: str | None = None) -> JudgeReading:
    """Pass (one of the pack's accepted "nothing to fix" phrasings), one edit, or unclear."""
    passes = frozenset(normalise(p) for p in pass_phrases)
    answer = split_reasoning(text, reasoning).answer
    if not normalise(answer):
        return JudgeReading("unclear")
    if "{" in answer or "[" in answer:
        reading = _json_judge(loose_json(answer), passes)
        if reading is not None:
            return reading
        broken = _BROKEN_JSON_EDIT.match(answer)
        if broken:  # quotes inside a single-quoted value: no JSON reader takes it, a person does
            return _edit_from_text(broken.group(1).rstrip("}, \n").rstrip("'\""), passes)
    markers = list(_EDIT_MARKER.finditer(answer))
    if markers:  # the final verdict wins: what follows the last "Edit:" / "Answer:" marker
        tail = answer[markers[-1].end():].strip()
        if tail:
            return _edit_from_text(tail.split("\n\n")[0], passes)
    return _edit_from_text(answer, passes)


# -- lists ---------------------------------------------------------------------------------------

_BULLET = re.compile(
    r"^\s*(?:[-*•·▪►+]+|\(?\d{1,2}[.):]|\(?[a-z][.)]\s|q\d+[.:)]|(?:question|claim|fact|statement|check)\s*\d*\s*[.:)-])\s*",
    re.IGNORECASE,
)
_PREAMBLE = re.compile(
    r"^(?:here (?:are|is)|here's|sure|certainly|of course|okay|ok|below|the following|i'?ve|i have|i will|"
    r"i'll|let me|these|note|i hope|let me know|feel free|if you|in summary|to summari[sz]e)\b",
    re.IGNORECASE,
)
_ANSWER_TAIL = re.compile(r"\s*(?:[-–—→:]+|\(|\[)\s*(?:answer:?\s*)?(?:yes|no|true|false)\s*[)\].]*\s*$",
                          re.IGNORECASE)
_JSON_LIST_KEYS = ("items", "questions", "claims", "facts", "statements", "checks", "list")


def _json_items(data: Any) -> list[str] | None:
    if isinstance(data, dict):
        data = next((data[k] for k in _JSON_LIST_KEYS if isinstance(data.get(k), list)),
                    next((v for v in data.values() if isinstance(v, list)), None))
    if not isinstance(data, list):
        return None
    out = []
    for item in data:
        if isinstance(item, dict):
            item = next((v for k, v in item.items() if k in ("question", "claim", "text", "fact", "statement")),
                        None)
        if isinstance(item, str):
            out.append(item)
    return out


def _lines(answer: str) -> list[str]:
    lines: list[str] = []
    for raw in answer.splitlines():
        line = raw.strip()
        if line.startswith(("```", "#")):  # fences and markdown headings are never items
            continue
        # Several numbered items or questions on one line ("1. Is it red? 2. Is it big?").
        parts = re.split(r"(?<=[?])\s+|\s+(?=\(?\d{1,2}[.)]\s)", line)
        lines.extend(p for p in parts if p.strip())
    return lines


def read_items(text: str, limit: int, *, questions: bool = False, reasoning: str | None = None) -> list[str]:
    """The questions or claims a reply lists, at most ``limit``, duplicates dropped.

    Preamble lines ("Here are three yes/no questions:"), closing remarks, headings and answers a
    model appends ("-> yes") are not items. With ``questions=True`` and any line ending in "?",
    only such lines count.
    """
    answer = split_reasoning(text, reasoning).answer
    found = _json_items(loose_json(answer)) if ("[" in answer or "{" in answer) else None
    candidates = found if found is not None else _lines(answer)
    cleaned = []
    for item in candidates:
        line = strip_markdown(item).strip()
        is_bulleted = bool(_BULLET.match(line))
        line = _BULLET.sub("", line).strip()
        line = _ANSWER_TAIL.sub("", line).strip().strip("\"'“”").strip()
        if found is None and not is_bulleted and (line.endswith(":") or _PREAMBLE.match(line)):
            continue
        if found is None and (line.endswith(":") or _UNCLEAR_REPLY.match(normalise(line))):
            continue
        cleaned.append(line)
    if questions and found is None and any(c.endswith("?") for c in cleaned):
        cleaned = [c for c in cleaned if c.endswith("?")]
    seen: set[str] = set()
    items: list[str] = []
    for item in cleaned:
        key = normalise(item)
        if len(key) < 3 or key in seen:
            continue
        seen.add(key)
        items.append(item)
        if len(items) >= limit:
            break
    return items


# The reply schema each stage asks for when the backend takes structured output and the pack allows it.
STAGE_SCHEMAS: dict[str, type[BaseModel]] = {
    "answer": YesNoAnswer,
    "verify": YesNoAnswer,
    "questions": ItemList,
    "claims": ItemList,
    "judge": JudgeVerdict,
}
