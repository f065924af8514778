"""Verdicts for the strategies: read a reply, and decide what an unclear one does.

"Unclear" (an empty reply, a refusal, a hedge, JSON without a verdict) is not a failed check. The
request's context, else its pack, says what happens (``on_unclear``): ``reask`` asks once more with
the pack's stricter format and reads that; ``ignore`` (or a second unclear reply) leaves the check
out: a finding with ``consistent=None``, a judge that asks for no edit. Reflections count what was
left unclear (``Reflection.unclear``), and spans and stream events carry the count.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from r3graph.reflect.verdicts import JudgeReading, YesNoReading, read_judge, read_yes_no
from r3graph.state import Finding

if TYPE_CHECKING:  # base.py uses these readers
    from r3graph.reflect.base import ReflectRequest


def reasks(request: ReflectRequest) -> bool:
    return (request.context.on_unclear or request.pack.on_unclear) == "reask"


def yes_no(request: ReflectRequest, answer: str) -> YesNoReading:
    return read_yes_no(answer, yes_words=request.pack.yes_words, no_words=request.pack.no_words)


def consistent(reading: YesNoReading) -> bool | None:
    return None if reading.verdict == "unclear" else reading.verdict == "yes"


async def read_check(request: ReflectRequest, stage: str, field: str, item: str, answer: str) -> YesNoReading:
    """The answer to one question or claim, re-asked once in the stricter format when unclear."""
    reading = yes_no(request, answer)
    if reading.verdict == "unclear" and reasks(request):
        prompt = request.pack.render(stage, instruction=request.instruction, **{field: item})
        again = await request.caller.call(stage, f"{prompt}\n{request.pack.reask_text('yes_no')}")
        reading = yes_no(request, again.text)
    return reading


async def read_checks(
    request: ReflectRequest, stage: str, field: str, items: list[str], answers: list[str]
) -> list[Finding]:
    """Findings for answered checks: "yes" means the draft's statement holds, unclear is left out."""
    readings = await asyncio.gather(
        *(read_check(request, stage, field, item, answer) for item, answer in zip(items, answers, strict=True))
    )
    return [
        Finding(question=item, answer=reading.text or answer, consistent=consistent(reading))
        for item, answer, reading in zip(items, answers, readings, strict=True)
    ]


async def read_edit(request: ReflectRequest, stage: str, prompt: str, reply: str) -> JudgeReading:
    """A judge's (or summary's) verdict, re-asked once in the stricter format when unclear."""
    reading = read_judge(reply, request.pack.accepted_passes)
    if reading.outcome == "unclear" and reasks(request):
        again = await request.caller.call(stage, f"{prompt}\n{request.pack.reask_text('judge')}")
        reading = read_judge(again.text, request.pack.accepted_passes)
    return reading
