"""r3graph: Reason -> Reflect -> Refine, self-correcting multimodal generation as a LangGraph graph."""

from r3graph.context import R3Context, Sampling
from r3graph.errors import (
    R3ConfigError,
    R3Error,
    R3InputError,
    R3ModelError,
    R3ReflectError,
    R3TimeoutError,
    R3ValidationError,
)
from r3graph.graphs import build_r3_graph, default_retry_policy
from r3graph.prompts import PromptPack, load_pack
from r3graph.reflect import (
    CheckingStrategy,
    Judge,
    MultiStep,
    NoReflect,
    ReflectRequest,
    ReflectStrategy,
    SelfQuestions,
)
from r3graph.state import CheckPlan, Finding, R3Input, R3Output, R3State, Reflection, Round, Usage

__version__ = "0.1.0"

__all__ = [
    "CheckPlan",
    "CheckingStrategy",
    "Finding",
    "Judge",
    "MultiStep",
    "NoReflect",
    "PromptPack",
    "R3ConfigError",
    "R3Context",
    "R3Error",
    "R3Input",
    "R3InputError",
    "R3ModelError",
    "R3Output",
    "R3ReflectError",
    "R3State",
    "R3TimeoutError",
    "R3ValidationError",
    "ReflectRequest",
    "ReflectStrategy",
    "Reflection",
    "Round",
    "Sampling",
    "SelfQuestions",
    "Usage",
    "build_r3_graph",
    "default_retry_policy",
    "load_pack",
]
