"""Reflect strategies: chosen by name in the context, or passed as an object or compiled graph."""

from __future__ import annotations

from typing import Any

from r3graph.errors import R3ConfigError
from r3graph.reflect.base import (
    CheckingStrategy,
    ReflectRequest,
    ReflectStrategy,
    answer_checks,
)
from r3graph.reflect.graph_strategy import GraphStrategy
from r3graph.reflect.judge import Judge
from r3graph.reflect.multi_step import MultiStep
from r3graph.reflect.none import NoReflect
from r3graph.reflect.self_questions import SelfQuestions
from r3graph.reflect.verdicts import JudgeVerdict, read_items, read_judge, read_yes_no

BUILTIN_STRATEGIES: dict[str, type[Any]] = {
    "self_questions": SelfQuestions,
    "judge": Judge,
    "multi_step": MultiStep,
    "none": NoReflect,
}


def resolve_strategy(value: Any, registry: dict[str, ReflectStrategy] | None = None) -> ReflectStrategy:
    """A strategy from a name (built-in or registered on the graph), an object, or a compiled graph."""
    if isinstance(value, str):
        if registry and value in registry:
            return registry[value]
        if value in BUILTIN_STRATEGIES:
            return BUILTIN_STRATEGIES[value]()
        names = sorted({*BUILTIN_STRATEGIES, *(registry or {})})
        raise R3ConfigError(f"unknown reflect strategy {value!r}: use one of {names}, or pass an object")
    if isinstance(value, ReflectStrategy):
        return value
    if hasattr(value, "ainvoke") and hasattr(value, "get_graph"):
        return GraphStrategy(value)
    raise R3ConfigError(
        f"reflect must be a strategy name, an object with name and async areflect(request), "
        f"or a compiled LangGraph graph; got {type(value).__name__}"
    )


__all__ = [
    "BUILTIN_STRATEGIES",
    "CheckingStrategy",
    "GraphStrategy",
    "Judge",
    "JudgeVerdict",
    "MultiStep",
    "NoReflect",
    "ReflectRequest",
    "ReflectStrategy",
    "SelfQuestions",
    "answer_checks",
    "read_items",
    "read_judge",
    "read_yes_no",
    "resolve_strategy",
]
