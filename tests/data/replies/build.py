"""Writes the reply corpus (``yes_no.jsonl``, ``judge.jsonl``, ``lists.jsonl``) beside this file.

Each record is one reply as a model family writes it, with the reading a person would give it
("expected"), the family and the style. The styles follow what these families are documented or
reported to write (see SOURCES.md): Qwen2.5-VL's and InternVL3's "Yes, <sentence>", Gemma 3's bold
markdown verdicts, LLaVA-OneVision's bare words and "Therefore, the answer is …", Qwen3-VL Thinking
served by vLLM without a reasoning parser (only the closing ``</think>``, since the template writes
the opening tag), Qwen3 with thinking switched off (an empty ``<think></think>`` block), reasoning
returned apart in ``reasoning_content``, BAGEL's think mode, GPT-4o-class APIs' em-dashes and JSON,
answer prefixes, refusals, empty replies, replies cut at max_tokens, and yes/no in other languages.

The expected readings are written here by hand per style, never computed by the reader under test.
Run ``python tests/data/replies/build.py`` to regenerate; the JSONL files are committed.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent

# (question or claim, detail when the answer is yes, detail when it is no)
FACTS = [
    ("Is there a red car on the left?", "the red car is parked on the left side of the street",
     "the car on the left is blue, not red"),
    ("Is the dog sitting on the sofa?", "the dog is sitting on the grey sofa", "the dog is lying on the floor"),
    ("Are there two people in the image?", "two people are standing by the window",
     "there are three people in the image"),
    ("Is the cup on the table white?", "the cup on the table is white", "the cup is green"),
    ("Is the cat to the right of the plant?", "the cat sits to the right of the potted plant",
     "the cat is to the left of the plant"),
    ("Is the sky clear?", "the sky is clear and blue", "the sky is overcast with grey clouds"),
    ("Is there a stop sign?", "a stop sign is visible at the corner", "no stop sign is visible"),
    ("Is the man wearing a hat?", "the man is wearing a black hat", "the man is bareheaded"),
]


def _yes_no() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []

    def add(family: str, style: str, text: str, expected: str, reasoning: str | None = None) -> None:
        record: dict[str, object] = {"family": family, "style": style, "text": text, "expected": expected}
        if reasoning is not None:
            record["reasoning"] = reasoning
        out.append(record)

    for q, yes, no in FACTS:
        add("qwen2.5-vl", "word+sentence", f"Yes, {yes}.", "yes")
        add("qwen2.5-vl", "word+sentence", f"No, {no}.", "no")
        add("internvl3", "bare word", "Yes", "yes")
        add("internvl3", "word+sentence", f"No. {no[0].upper() + no[1:]}.", "no")
        add("gemma-3", "bold word + paragraph", f"**Yes**\n\n{yes[0].upper() + yes[1:]}.", "yes")
        add("gemma-3", "bold word inline", f"**No**, {no}.", "no")
        add("gemma-3", "bold answer prefix", "**Answer:** No", "no")
        add("llava-onevision", "reasoning then verdict",
            f"In the image, {no}. Therefore, the answer is no.", "no")
        add("llava-onevision", "reasoning then verdict",
            f"Looking at the image, {yes}. So the answer is yes.", "yes")
        add("qwen3-vl-thinking", "closing tag only (vLLM, no reasoning parser)",
            f"Got it, let's check. The question asks: {q} Looking at the image, {yes}. "
            "So the answer should be yes.\n</think>\n\nYes", "yes")
        add("qwen3-vl-thinking", "closing tag only, reasoning mentions the other word",
            f"Okay, so first I might think yes, but {no}. So no.\n</think>\n\nNo, {no}.", "no")
        add("qwen3", "thinking off: empty think block", "<think>\n\n</think>\n\nYes", "yes")
        add("qwen3-vl", "reasoning_content apart (vLLM reasoning parser)", f"No, {no}.", "no",
            reasoning=f"The user asks {q} I first thought yes, yes, yes, but {no}.")
        add("bagel", "think mode", f"<think>I need to look at the image. {yes}.</think>Yes.", "yes")
        add("gpt-4o", "em-dash", f"No — {no}.", "no")
        add("gpt-4o", "json", json.dumps({"answer": "yes", "explanation": yes}), "yes")
        add("gpt-4o", "fenced json", f'```json\n{{"answer": "no", "reason": "{no}"}}\n```', "no")
        add("any", "answer prefix", f"Answer: Yes. {yes[0].upper() + yes[1:]}.", "yes")
        add("any", "final answer last", f"{no[0].upper() + no[1:]}.\n\nFinal answer: No", "no")
        add("any", "verdict last line", f"{yes[0].upper() + yes[1:]}.\n\nYes.", "yes")
    extra = [
        ("any", "empty", "", "unclear"),
        ("any", "whitespace", "  \n ", "unclear"),
        ("any", "refusal", "I'm sorry, but I can't determine that from the image.", "unclear"),
        ("any", "refusal", "I cannot see any image in your message.", "unclear"),
        ("any", "hedge", "It's difficult to tell from this image.", "unclear"),
        ("any", "hedge", "The image is too blurry to say for certain.", "unclear"),
        ("qwen3-vl-thinking", "cut while thinking", "<think>\nLet me look at the car. It appears to be", "unclear"),
        ("qwen3-vl-thinking", "cut while thinking, no opening tag", "Got it, let's see. The car looks", "unclear"),
        ("qwen3-vl", "reasoning only, empty content", "", "unclear"),
        ("any", "positive statement without a verdict word", "There is a red car on the left.", "unclear"),
        ("llava-onevision", "negative statement", "There is no stop sign in the image.", "no"),
        ("llava-onevision", "negative statement", "There are no people in the image.", "no"),
        ("internvl3", "negative statement", "The image does not show a dog.", "no"),
        ("any", "claim check: true", "True. The cup on the table is white.", "yes"),
        ("any", "claim check: false", "False — the cup is green.", "no"),
        ("any", "claim check: statement", "The claim is correct.", "yes"),
        ("any", "claim check: statement", "This statement is incorrect; the cup is green.", "no"),
        ("any", "claim check: statement negated", "The claim is not accurate: the sky is overcast.", "no"),
        ("any", "lower case word", "yes", "yes"),
        ("any", "upper case word", "NO", "no"),
        ("any", "quoted word", '"Yes"', "yes"),
        ("any", "short prefix", "A: no", "no"),
        ("any", "markdown heading", "### Answer\nYes", "yes"),
        ("any", "markdown bullet", "- **No**: the man is bareheaded.", "no"),
        ("gemma-3", "lead clause", "Based on the image, yes, the dog is on the sofa.", "yes"),
        ("gemma-3", "lead clause", "Looking at the image, no, there is no hat.", "no"),
        ("any", "final verdict wins", "At first glance the car looks red, but it is orange. So, no.", "no"),
        ("any", "final verdict wins", "No wait, looking again, the sign is there. The answer is yes.", "yes"),
        ("german", "word+sentence", "Ja, das Auto ist rot.", "yes"),
        ("german", "word", "Nein.", "no"),
        ("french", "word+sentence", "Oui, il y a un chien sur le canapé.", "yes"),
        ("french", "word+sentence", "Non, le ciel est nuageux.", "no"),
        ("spanish", "word", "Sí.", "yes"),
        ("italian", "word", "Sì, c'è un gatto.", "yes"),
        ("portuguese", "word", "Não, o carro é azul.", "no"),
        ("chinese", "qwen style", "是的，图中左边有一辆红色的汽车。", "yes"),
        ("chinese", "qwen style", "不是，车是蓝色的。", "no"),
        ("chinese", "qwen style", "没有，图片中没有停车标志。", "no"),
        ("japanese", "word", "はい、犬はソファに座っています。", "yes"),
        ("japanese", "word", "いいえ、車は青です。", "no"),
        ("korean", "word", "네, 빨간 차가 있습니다.", "yes"),
        ("russian", "word", "Нет, машина синяя.", "no"),
        ("russian", "word", "Да.", "yes"),
        ("polish", "word", "Tak.", "yes"),
        ("turkish", "word", "Hayır.", "no"),
        ("gpt-4o", "json bool", '{"answer": true}', "yes"),
        ("gpt-4o", "json key case", '{"Answer": "No"}', "no"),
        ("any", "single-quoted json", "{'answer': 'yes'}", "yes"),
        ("any", "json cut at max_tokens", '{"answer": "no", "reason": "the car is bl', "no"),
        ("glm-4.1v-thinking", "answer tag", "<think>The dog is on the sofa.</think><answer>Yes</answer>", "yes"),
        ("glm-4.1v-thinking", "box markers", "<think>no hat</think><answer><|begin_of_box|>No<|end_of_box|></answer>",
         "no"),
        ("kimi-vl-thinking", "triangle think tags", "◁think▷The sky looks clear.◁/think▷Yes, the sky is clear.", "yes"),
    ]
    for family, style, text, expected in extra:
        add(family, style, text, expected, reasoning="The model thought at length here." if
            style == "reasoning only, empty content" else None)
    return out


EDITS = [
    "change the red car to a blue car", "remove the second dog", "add a white cup on the table",
    "move the cat to the right of the plant", "make the sky overcast", "replace the hat with a cap",
    "change 'two people' to 'three people'", "mention the stop sign at the corner",
]
SENTINEL = "no further edit needed"


def _judge() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []

    def add(family: str, style: str, text: str, outcome: str, edit: str = "", reasoning: str | None = None) -> None:
        record: dict[str, object] = {"family": family, "style": style, "text": text, "expected": outcome}
        if edit:
            record["edit"] = edit
        if reasoning is not None:
            record["reasoning"] = reasoning
        out.append(record)

    for e in EDITS:
        cap = e[0].upper() + e[1:]
        add("gpt-4o", "json", json.dumps({"edit": e}), "edit", e)
        add("qwen2.5-vl", "fenced json", f'```json\n{{"edit": "{e}"}}\n```', "edit", e)
        add("internvl3", "json key case", json.dumps({"Edit": e}), "edit", e)
        add("llava-onevision", "single-quoted json", f"{{'edit': '{e}'}}", "edit", e)
        add("any", "trailing comma", f'{{"edit": "{e}",}}', "edit", e)
        add("any", "json cut at max_tokens", f'{{"edit": "{e}', "edit", e)
        add("qwen2.5-vl", "plain instruction", f"{cap}.", "edit", e)
        add("gemma-3", "bold prefix", f"**Edit:** {cap}.", "edit", e)
        add("gemma-3", "reasoning then instruction",
            f"The draft is mostly accurate, but it has one error.\n\n{cap}.", "edit", e)
        add("llava-onevision", "edit prefix", f"Edit instruction: {e}", "edit", e)
        add("qwen3-vl-thinking", "closing tag only",
            f"Got it, the draft might say {SENTINEL!r}? No, there is an error.\n</think>\n\n"
            f'{{"edit": "{e}"}}', "edit", e)
        add("qwen3-vl-thinking", "sentinel inside the reasoning",
            f'<think>Is the answer "{SENTINEL}"? The answer is not "{SENTINEL}".</think> {cap}.', "edit", e)
        add("bagel", "think mode", f"<think>Compare the image with the prompt.</think>{cap}.", "edit", e)
        add("qwen3-vl", "reasoning_content apart", f"{cap}.", "edit", e,
            reasoning=f"Maybe {SENTINEL}... no.")
        add("gpt-4o", "instruction then remark", f"{cap}. This fixes the most important error.", "edit", e)
        add("any", "final answer prefix", f"The draft has an error.\nFinal answer: {e}", "edit", e)
    for stated in ("the cat is to the left of the plant", "the sky is overcast, not clear",
                   "there are three people, not two"):
        add("any", "stated fix", f"{stated[0].upper() + stated[1:]}.", "edit", stated)
        add("gpt-4o", "reasoning paragraph then stated fix",
            f"I compared the draft with the image and found one mismatch.\n\n{stated}.", "edit", stated)
        add("gemma-3", "stated fix then remark", f"{stated}.\n\nThis should fix the most important error.",
            "edit", stated)
        add("any", "stated fix then hope", f"{stated}. I hope this helps!", "edit", stated)
    passes = [
        ("any", "exact sentinel", SENTINEL),
        ("any", "sentinel with period", "No further edit needed."),
        ("any", "plural", "No further edits needed."),
        ("any", "short", "No edit needed."),
        ("any", "is needed", "No edits are needed."),
        ("any", "changes", "No changes needed."),
        ("any", "quoted sentinel", f'"{SENTINEL}"'),
        ("gemma-3", "bold sentinel", f"**{SENTINEL.capitalize()}**"),
        ("gemma-3", "sentinel + remark", "No further edit needed - the draft is accurate."),
        ("any", "assessment + sentinel", "The draft is accurate and complete. No further edit needed."),
        ("any", "draft is correct", "The draft is fully correct and complete."),
        ("any", "image matches", "The image already matches the prompt."),
        ("any", "image matches", "The image matches the prompt."),
        ("gpt-4o", "json null", '{"edit": null}'),
        ("gpt-4o", "json sentinel", json.dumps({"edit": SENTINEL})),
        ("gpt-4o", "json sentinel with period", json.dumps({"edit": "No further edit needed."})),
        ("any", "json empty edit", '{"edit": ""}'),
        ("any", "json key case sentinel", '{"EDIT": "no further edit needed"}'),
        ("any", "fenced json sentinel", f'```json\n{{"edit": "{SENTINEL}"}}\n```'),
        ("qwen3", "thinking off", f"<think>\n\n</think>\n\n{SENTINEL}"),
        ("qwen3-vl-thinking", "closing tag only",
         "The draft says a red car; the car is red. Nothing wrong.\n</think>\n\nNo further edit needed."),
        ("bagel", "think mode", f"<think>The image shows everything asked.</think>{SENTINEL}"),
        ("any", "reasoning then sentinel", f"The car is red and on the left, as stated.\n\nVerdict: {SENTINEL}"),
        ("any", "final answer sentinel", f"Final answer: {SENTINEL}"),
        ("any", "nothing to fix", "Nothing to fix."),
        ("any", "none", "None"),
        ("any", "looks good", "Looks good."),
        ("gpt-4o", "json needs_edit false", '{"needs_edit": false}'),
    ]
    for family, style, text in passes:
        for suffix in ("", "\n"):
            add(family, style + (" (trailing newline)" if suffix else ""), text + suffix, "pass")
    unclear = [
        ("any", "empty", ""),
        ("any", "whitespace", "   "),
        ("any", "refusal", "I'm sorry, I can't help with that."),
        ("any", "refusal", "I cannot see the image."),
        ("any", "hedge", "It is unclear from the image."),
        ("any", "bare yes", "Yes"),
        ("any", "bare no", "No."),
        ("any", "bare wrong", "Incorrect."),
        ("qwen3-vl-thinking", "cut while thinking", "<think>\nThe draft mentions a red car, and the"),
        ("qwen3-vl", "reasoning only", ""),
        ("any", "json without verdict", '{"score": 3}'),
        ("any", "json number edit", '{"edit": 3}'),
    ]
    for family, style, text in unclear:
        add(family, style, text, "unclear", reasoning="Long reasoning." if style == "reasoning only" else None)
    return out


QUESTION_SETS = [
    ["Is there a red car on the left?", "Is the dog sitting on the sofa?", "Are there two people in the image?"],
    ["Is the cup on the table white?", "Is the cat to the right of the plant?", "Is the sky clear?"],
    ["Is there a stop sign?", "Is the man wearing a hat?", "Is the bicycle leaning against the wall?"],
    ["Does the kitchen have a window?", "Is the kettle silver?", "Are there apples in the bowl?"],
    ["Is the woman holding an umbrella?", "Is the street wet?", "Is there a bus in the background?"],
]
CLAIM_SETS = [
    ["There is a red car on the left.", "A dog sits on the sofa.", "Two people stand by the window."],
    ["The cup on the table is white.", "The cat is to the right of the plant.", "The sky is clear."],
    ["A stop sign is visible at the corner.", "The man wears a black hat.", "A bicycle leans against the wall."],
]


def _lists() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []

    def add(family: str, style: str, text: str, items: list[str], kind: str, limit: int = 3,
            reasoning: str | None = None) -> None:
        record: dict[str, object] = {"family": family, "style": style, "text": text, "expected": items,
                                     "kind": kind, "limit": limit}
        if reasoning is not None:
            record["reasoning"] = reasoning
        out.append(record)

    sets = [(qs, "questions") for qs in QUESTION_SETS] + [(cs, "claims") for cs in CLAIM_SETS]
    for items, kind in sets:
        a, b, c = items
        noun = "yes/no questions" if kind == "questions" else "claims"
        add("any", "plain lines", f"{a}\n{b}\n{c}", items, kind)
        add("qwen2.5-vl", "numbered", f"1. {a}\n2. {b}\n3. {c}", items, kind)
        add("internvl3", "numbered with parentheses", f"1) {a}\n2) {b}\n3) {c}", items, kind)
        add("llava-onevision", "bulleted", f"- {a}\n- {b}\n- {c}", items, kind)
        add("any", "star bullets, blank lines", f"* {a}\n\n* {b}\n\n* {c}\n", items, kind)
        add("gpt-4o", "preamble", f"Here are three {noun}:\n\n1. {a}\n2. {b}\n3. {c}", items, kind)
        add("gpt-4o", "preamble and closing remark",
            f"Sure! Here are 3 {noun} to check the draft:\n1. {a}\n2. {b}\n3. {c}\n\n"
            "These check the main facts the draft states.", items, kind)
        add("gemma-3", "bold numbered", f"1. **{a}**\n2. **{b}**\n3. **{c}**", items, kind)
        add("gemma-3", "heading", f"### {noun.capitalize()}\n\n* {a}\n* {b}\n* {c}", items, kind)
        add("any", "labelled", f"{'Question' if kind == 'questions' else 'Claim'} 1: {a}\n"
            f"{'Question' if kind == 'questions' else 'Claim'} 2: {b}\n"
            f"{'Question' if kind == 'questions' else 'Claim'} 3: {c}", items, kind)
        add("gpt-4o", "json array", json.dumps(items), items, kind)
        add("qwen2.5-vl", "fenced json array", f"```json\n{json.dumps(items, indent=2)}\n```", items, kind)
        add("any", "json object", json.dumps({kind: items}), items, kind)
        add("any", "structured output object", json.dumps({"items": items}), items, kind)
        add("qwen3-vl-thinking", "closing tag only",
            f"Okay, I need {noun}. Maybe: is it big? Let me list them.\n</think>\n\n{a}\n{b}\n{c}", items, kind)
        add("bagel", "think mode", f"<think>\nFirst: {a}\nSecond: {b}\n</think>\n1. {a}\n2. {b}\n3. {c}", items,
            kind)
        add("qwen3-vl", "reasoning_content apart", f"{a}\n{b}\n{c}", items, kind,
            reasoning=f"Possible {noun}: {a} Hmm, maybe also: Is it night?")
        add("any", "more items than asked", f"1. {a}\n2. {b}\n3. {c}\n4. {a}", items, kind)
        add("any", "duplicates", f"- {a}\n- {a}\n- {b}\n- {c}", items, kind)
        add("any", "limit two", f"1. {a}\n2. {b}\n3. {c}", [a, b], kind, limit=2)
        add("any", "json cut at max_tokens", json.dumps(items)[:-8], [a, b, c[:-6]], kind)
        if kind == "questions":
            add("llava-onevision", "one line", f"{a} {b} {c}", items, kind)
            add("any", "inline numbering", f"1. {a} 2. {b} 3. {c}", items, kind)
            add("gpt-4o", "answers appended", f"1. {a} (Yes)\n2. {b} (Yes)\n3. {c} (Yes)", items, kind)
            add("any", "answers after arrows", f"- {a} -> yes\n- {b} -> yes\n- {c} -> yes", items, kind)
            add("gemma-3", "intro sentence without colon and remark",
                f"Okay, here are three questions based on the draft\n{a}\n{b}\n{c}\nI hope these help!", items,
                kind)
        else:
            add("gpt-4o", "claims with preamble sentence",
                f"The draft makes the following claims:\n- {a}\n- {b}\n- {c}", items, kind)
            add("any", "claims with note", f"- {a}\n- {b}\n- {c}\n\nNote: each claim can be checked in the image.",
                items, kind)
    out.append({"family": "any", "style": "empty", "text": "", "expected": [], "kind": "questions", "limit": 3})
    out.append({"family": "any", "style": "refusal", "text": "I'm sorry, I can't help with that.", "expected": [],
                "kind": "questions", "limit": 3})
    out.append({"family": "qwen3-vl-thinking", "style": "cut while thinking",
                "text": "<think>\nI should ask about the car and", "expected": [], "kind": "questions", "limit": 3})
    return out


def main() -> None:
    for name, records in (("yes_no", _yes_no()), ("judge", _judge()), ("lists", _lists())):
        path = HERE / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        print(f"{path}: {len(records)} replies")


if __name__ == "__main__":
    main()
