"""No reflection: the ablation "refine without reflect". Refine then only sees its own draft
(the pack's ``refine_blind`` template), which the seed says falls back to the baseline."""

from __future__ import annotations

from r3graph.reflect.base import ReflectRequest
from r3graph.state import Reflection


class NoReflect:
    name = "none"

    async def areflect(self, request: ReflectRequest) -> Reflection:
        return Reflection(strategy=self.name, verdict="revise", critique="", score=0.0, passes=request.pass_index)
