"""Plugins: what a package beside the core adds to r3graph, without the core importing it.

The core ships no weights and knows no world. A plugin brings them: default model directories (the
model ``r3graph run`` and ``serve`` use without ``--model``, the generator behind ``--image-server
learned``), prompt packs by name, extra ``r3graph`` commands, ``--image-server`` names and
``R3GRAPH_BACKEND`` kinds. The
scene world (``r3graph-scenes``, folder ``scenes/`` of this repository) is one; a user's own world and
model plug in the same way.

A plugin is an :class:`R3Plugin` object, found in two places (both, in this order):

- ``R3GRAPH_PLUGINS``: comma-separated ``module:attribute`` names, for a plugin that is importable
  (on ``PYTHONPATH``) but not installed, e.g. while developing it;
- the entry-point group ``r3graph.plugins`` of every installed distribution, which is how an installed
  plugin is found (``pip install`` is all it takes)::

      [project.entry-points."r3graph.plugins"]
      scenes = "r3graph_scenes.plugin:PLUGIN"

Where two plugins give the same default or name, the first found wins. Commands, image servers and
backends are ``module:function`` strings, imported only when used, so finding the plugins stays cheap (importing a
plugin's object must not import torch or vLLM). A plugin that cannot be loaded is an
:class:`~r3graph.errors.R3ConfigError` naming it, never a bare ImportError.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r3graph.errors import R3ConfigError

GROUP = "r3graph.plugins"
ENV = "R3GRAPH_PLUGINS"
# What the core says when something only a plugin provides is missing: the one this repository ships.
SCENES_HINT = "install r3graph-scenes (`pip install -e ./scenes` in a checkout; `make setup` does it)"


@dataclass(frozen=True)
class R3Plugin:
    """What one plugin provides (every field optional but ``name``)."""

    name: str
    model_dir: Path | None = None  # default model for `run`, `serve` and the engine backend
    image_model_dir: Path | None = None  # default token-image model for `run --output image`
    packs: Mapping[str, Path] = field(default_factory=dict)  # prompt pack name -> pack .json file
    # `r3graph <name> ...` -> "module:function"; the function takes the rest of the command line
    # (list[str]) and returns an exit status or None (= 0).
    commands: Mapping[str, str] = field(default_factory=dict)
    # `run --output image --image-server <name>` -> "module:function"; the function takes the parsed
    # `run` arguments and returns (a started server with .url and .stop(), a line saying what it is).
    image_servers: Mapping[str, str] = field(default_factory=dict)
    # R3GRAPH_BACKEND / make_backend kind -> "module:function"; the function takes no argument and
    # returns (chat model, model name, one-line label for people).
    backends: Mapping[str, str] = field(default_factory=dict)


def load_object(spec: str, what: str) -> Any:
    """``module:attribute`` imported; any failure is an R3ConfigError that names ``what``."""
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
    except Exception as exc:  # a broken plugin must say which one, not fail deep inside an import
        raise R3ConfigError(f"{what} {spec!r} cannot be loaded ({type(exc).__name__}: {exc})") from exc
    return obj


def _checked(obj: Any, origin: str) -> R3Plugin:
    if not isinstance(obj, R3Plugin):
        raise R3ConfigError(f"plugin {origin} is a {type(obj).__name__}, not an r3graph.plugins.R3Plugin")
    return obj


@functools.cache
def plugins() -> tuple[R3Plugin, ...]:
    """Every plugin: ``R3GRAPH_PLUGINS`` first, then installed entry points by name (found once per
    process; ``plugins.cache_clear()`` looks again)."""
    found: list[R3Plugin] = []
    for spec in filter(None, (s.strip() for s in os.environ.get(ENV, "").split(","))):
        found.append(_checked(load_object(spec, f"{ENV} plugin"), spec))
    for ep in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
        except Exception as exc:
            raise R3ConfigError(f"plugin {ep.name!r} ({ep.value}, group {GROUP}) cannot be loaded "
                                f"({type(exc).__name__}: {exc})") from exc
        plugin = _checked(obj, f"{ep.name!r} ({ep.value})")
        if plugin not in found:
            found.append(plugin)
    return tuple(found)


def default_model_dir() -> Path | None:
    """The first plugin's default model directory, or None when no plugin gives one."""
    return next((p.model_dir for p in plugins() if p.model_dir is not None), None)


def default_image_model_dir() -> Path | None:
    """The first plugin's default token-image model directory, or None."""
    return next((p.image_model_dir for p in plugins() if p.image_model_dir is not None), None)


def require_model_dir(flag: str = "--model DIR") -> Path:
    """The default model directory, or an R3ConfigError that says how to get one (``flag``: what to pass)."""
    found = default_model_dir()
    if found is None:
        raise R3ConfigError(f"no model given and no plugin ships a default one: pass {flag} (an HF-format "
                            f"model directory), or {SCENES_HINT} for the shipped scenes-vlm")
    return found


def require_image_model_dir() -> Path:
    found = default_image_model_dir()
    if found is None:
        raise R3ConfigError("--image-server learned: no plugin ships a learned generator; pass an http(s) URL of "
                            f"an image server, or {SCENES_HINT} for the shipped scenes-imagegen")
    return found


def plugin_packs() -> dict[str, Path]:
    """Prompt packs the plugins add, by name (the first plugin to name one wins)."""
    packs: dict[str, Path] = {}
    for plugin in plugins():
        for name, path in plugin.packs.items():
            packs.setdefault(name, Path(path))
    return packs


def command_names() -> list[str]:
    return sorted({name for p in plugins() for name in p.commands})


def command(name: str) -> Callable[[list[str]], int | None] | None:
    """A plugin's ``r3graph <name>`` entry, imported now; None if no plugin has it."""
    spec = next((p.commands[name] for p in plugins() if name in p.commands), None)
    return None if spec is None else load_object(spec, f"command {name!r}")


def image_server_names() -> list[str]:
    return sorted({name for p in plugins() for name in p.image_servers})


def image_server(name: str) -> Callable[[Any], tuple[Any, str]] | None:
    """A plugin's ``--image-server <name>`` starter, imported now; None if no plugin has it."""
    spec = next((p.image_servers[name] for p in plugins() if name in p.image_servers), None)
    return None if spec is None else load_object(spec, f"image server {name!r}")


def backend(name: str) -> Callable[[], tuple[Any, str, str]] | None:
    """A plugin's backend factory for ``name``, imported now; None if no plugin has it."""
    spec = next((p.backends[name] for p in plugins() if name in p.backends), None)
    return None if spec is None else load_object(spec, f"backend {name!r}")
