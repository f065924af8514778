"""The reliability corpus: every input a caller (or an agent's model) may hand R3, and what it gets.

Each :class:`Case` names its class of problem, builds its input lazily (some are tens of MB) from an
:class:`Env` (a temporary folder, the hostile image host on 127.0.0.1), and says what must happen:
a typed error whose message matches a pattern, raised before any model call, or (``error=None``)
acceptance, with the model called. ``target`` says who receives the input: the R3 graph as a caller
invokes it, the HTTP server's graph, or the agent-tool example.

``docs/bad-input.md`` is generated from this list (``scripts/bad_input_doc.py``); a test fails when
the two differ. Add a case here, then regenerate the doc.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NamedTuple

from tests.fakes import png_bytes


class Env(NamedTuple):
    tmp: Path
    host: str  # http://127.0.0.1:<port> of the ImageHost
    port: int


class Case(NamedTuple):
    id: str
    cls: str  # the class of problem, as docs/bad-input.md groups them
    inputs: Callable[[Env], dict[str, Any]]
    context: Any  # the raw context object, or a function of the Env
    error: type[Exception] | None  # None: a valid input that must be accepted
    message: str  # regex the error message must match (or, accepted, what the output must contain)
    target: Literal["graph", "server", "tool"] = "graph"

    def context_for(self, env: Env) -> Any:
        return self.context(env) if callable(self.context) else self.context


def img(factory: Callable[[Env], Any]) -> Callable[[Env], dict[str, Any]]:
    return lambda env: {"instruction": "Describe.", "images": [factory(env)]}


def ins(instruction: Any) -> Callable[[Env], dict[str, Any]]:
    return lambda env: {"instruction": instruction, "images": [png_bytes()]}


def imgs(images: Callable[[Env], Any]) -> Callable[[Env], dict[str, Any]]:
    return lambda env: {"instruction": "Describe.", "images": images(env)}


GOOD = ins("Describe.")
REMOTE = {"allow_remote_images": True}
REMOTE_PRIVATE_OK = {"allow_remote_images": True, "allow_private_image_hosts": True}


def all_cases() -> list[Case]:
    from tests.reliability.corpus import accepted, contexts, images, locations

    return [*images.CASES, *locations.CASES, *contexts.CASES, *accepted.CASES]
