"""Pick the chat model that runs R3 for the examples, ``r3graph export`` and the LangGraph server.

Three backends, one decision each:

- ``server``: a running vLLM OpenAI-compatible server (``--base-url`` / ``R3GRAPH_BASE_URL``);
  outgoing requests carry the current trace context (``traceparent``), see
  :mod:`r3graph.serving.propagation`.
- ``engine``: the in-process vLLM engine over a model directory (``R3GRAPH_MODEL_DIR``), else a
  plugin's default model (r3graph-scenes ships ``scenes-vlm``); with neither, an R3ConfigError.
- ``scripted`` (or any other kind a plugin registers, :mod:`r3graph.plugins`): r3graph-scenes'
  ``ScriptedSceneModel``, a SCRIPTED stand-in with no weights for demos and tests. Its label says so
  wherever it is printed.

vLLM is imported only by the engine backend, and only when chosen.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from langchain_core.language_models import BaseChatModel

from r3graph.errors import R3ConfigError

BackendKind = Literal["scripted", "engine", "server"]
BACKEND_KINDS: tuple[BackendKind, ...] = ("scripted", "engine", "server")


@dataclass
class Backend:
    model: BaseChatModel
    kind: BackendKind
    pack: str
    model_name: str
    label: str  # one line for people: which model answers, and whether it is scripted


def shipped_model_dir() -> Path:
    """The default model directory a plugin ships (R3ConfigError when none does)."""
    from r3graph.plugins import require_model_dir

    return require_model_dir("--model DIR (--model-dir DIR in the benchmarks, R3GRAPH_MODEL_DIR for the server)")


# A model directory may say which prompt pack it was trained on, as data beside its weights:
# ``r3graph.json`` with {"pack": "<name>"} (a bundled pack or one a plugin adds, as scenes-vlm's "scenes")
# or {"pack": "<file>.json"}, a pack file in the model directory itself, so a model brings its own
# templates with no plugin at all. The core never guesses a pack from a model's name; a model with no
# such file gets the ``default`` pack unless told otherwise.
PACK_FILE = "r3graph.json"


def declared_pack(model_dir: str | Path | None) -> str | None:
    """The pack a local model directory declares in its ``r3graph.json`` (a name, or the absolute path of
    a pack file in that directory), or None."""
    if not model_dir:
        return None
    root = Path(model_dir).expanduser()
    try:
        pack = json.loads((root / PACK_FILE).read_text()).get("pack") if (root / PACK_FILE).is_file() else None
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(pack, str) or not pack:
        return None
    if pack.endswith(".json"):  # a file beside the weights; it must be there, or the model dir is broken
        path = (root / pack).resolve()
        if not path.is_file():
            raise R3ConfigError(f"{root / PACK_FILE} names the pack file {pack!r}, which is not in {root}")
        return str(path)
    return pack


def _pack_for(model: object, model_dir: str | Path | None, pack: str | None) -> str:
    """The caller's pack, else the one the model (object or directory) declares, else ``default``."""
    return pack or getattr(model, "r3graph_pack", None) or declared_pack(model_dir) or "default"


def make_backend(
    kind: BackendKind,
    *,
    base_url: str | None = None,
    model_dir: str | Path | None = None,
    served_model: str | None = None,
    pack: str | None = None,
) -> Backend:
    """The model for ``kind`` (see the module docstring); ``pack`` overrides the prompt pack."""
    if kind == "scripted":  # no weights, so no model directory: a plugin provides it (r3graph-scenes)
        from r3graph.plugins import SCENES_HINT, backend

        factory = backend(kind)
        if factory is None:
            raise R3ConfigError(f"the {kind} backend comes with a plugin and none provides it: {SCENES_HINT}")
        scripted, name, label = factory()
        return Backend(scripted, "scripted", _pack_for(scripted, None, pack), name, label)
    if kind == "server":
        if not base_url:
            raise ValueError("the server backend needs a base URL (--base-url or R3GRAPH_BASE_URL)")
        from r3graph.serving.client import chat_model_for_server, served_models

        chat = chat_model_for_server(base_url, served_model)  # propagates traceparent itself
        name = str(chat.model_name)
        # vLLM lists the path it loaded as the model's root: a directory on this machine may declare its pack.
        root = next((m.get("root") for m in served_models(base_url) if m.get("id") == name), None) if not pack else None
        return Backend(chat, "server", _pack_for(chat, root, pack), name, f"vLLM server {base_url} serving {name}")
    if kind == "engine":
        from r3graph.serving.engine import ChatVLLMEngine

        directory = Path(model_dir) if model_dir else shipped_model_dir()
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"no model at {directory} (config.json missing); pass a model directory")
        return Backend(ChatVLLMEngine(model=str(directory)), "engine", _pack_for(None, directory, pack),
                       directory.name, f"in-process vLLM engine over {directory}")
    raise ValueError(f"unknown backend {kind!r}; use one of {', '.join(BACKEND_KINDS)}")


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every benchmark takes to choose its model: a server, or the in-process engine."""
    parser.add_argument("--base-url", help="an OpenAI-compatible server instead of the embedded engine")
    parser.add_argument("--model", help="served model name (server mode; default: the server's first)")
    parser.add_argument("--model-dir", help="model directory for the embedded engine (default: a plugin's, scenes-vlm)")
    parser.add_argument("--pack", help="prompt pack (default: the one the model directory declares, else default)")


@asynccontextmanager
async def started_backend(args: argparse.Namespace, log: Callable[[str], None] = print) -> AsyncIterator[Backend]:
    """The backend :func:`add_backend_arguments` chose, started before the first measurement (engine
    start-up, ~30 s on CPU, is not part of any condition's time) and shut down after the last."""
    kind: BackendKind = "server" if args.base_url else "engine"
    backend = make_backend(kind, base_url=args.base_url, model_dir=args.model_dir, served_model=args.model,
                           pack=args.pack)
    log(f"backend: {backend.label}; pack {backend.pack}")
    if hasattr(backend.model, "astart"):
        await backend.model.astart()
    try:
        yield backend
    finally:
        if kind == "engine":
            from r3graph.serving import ashutdown_engines

            await ashutdown_engines()


def backend_from_env(env: Mapping[str, str] | None = None) -> Backend:
    """``R3GRAPH_BACKEND`` (scripted|engine|server) or, when unset, ``server`` if ``R3GRAPH_BASE_URL`` is
    set, else ``engine``. Also read: ``R3GRAPH_MODEL_DIR``, ``R3GRAPH_SERVED_MODEL``, ``R3GRAPH_PACK``."""
    env = os.environ if env is None else env
    base_url = env.get("R3GRAPH_BASE_URL") or None
    kind = env.get("R3GRAPH_BACKEND") or ("server" if base_url else "engine")
    if kind not in BACKEND_KINDS:
        raise ValueError(f"R3GRAPH_BACKEND={kind!r}; use one of {', '.join(BACKEND_KINDS)}")
    return make_backend(cast(BackendKind, kind), base_url=base_url, model_dir=env.get("R3GRAPH_MODEL_DIR") or None,
                        served_model=env.get("R3GRAPH_SERVED_MODEL") or None, pack=env.get("R3GRAPH_PACK") or None)
