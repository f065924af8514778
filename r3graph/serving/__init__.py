"""Serving R3 graphs with vLLM: in-process engine, OpenAI-compatible server, and its client.

Exports are lazy so ``import r3graph`` never imports vLLM (seconds of start-up, and absent on
machines that only talk to a remote server).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from r3graph.serving.client import chat_model_for_server, discover_model
    from r3graph.serving.cluster import VLLMCluster, VLLMRouter
    from r3graph.serving.engine import ChatVLLMEngine
    from r3graph.serving.image_server import ImageServerProcess, TokenImageServer
    from r3graph.serving.registry import ashutdown_engines, shutdown_engines
    from r3graph.serving.server import VLLMServer, VLLMServerError

_EXPORTS = {
    "ChatVLLMEngine": "r3graph.serving.engine",
    "shutdown_engines": "r3graph.serving.registry",
    "ashutdown_engines": "r3graph.serving.registry",
    "VLLMServer": "r3graph.serving.server",
    "TokenImageServer": "r3graph.serving.image_server",
    "ImageServerProcess": "r3graph.serving.image_server",
    "VLLMCluster": "r3graph.serving.cluster",
    "VLLMRouter": "r3graph.serving.cluster",
    "VLLMServerError": "r3graph.serving.server",
    "chat_model_for_server": "r3graph.serving.client",
    "discover_model": "r3graph.serving.client",
}

__all__ = [
    "ChatVLLMEngine",
    "ImageServerProcess",
    "TokenImageServer",
    "VLLMCluster",
    "VLLMRouter",
    "VLLMServer",
    "VLLMServerError",
    "ashutdown_engines",
    "chat_model_for_server",
    "discover_model",
    "shutdown_engines",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'r3graph.serving' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
