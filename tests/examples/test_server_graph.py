"""The served graph in-process (no server): the client's context is vetted, the operator's image policy holds."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from r3graph import R3InputError
from r3graph_scenes.assets import ASSETS_DIR, EXAMPLE_PNG, load_example
from r3graph_scenes.language import caption


def server_module(monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    monkeypatch.setenv("R3GRAPH_BACKEND", "scripted")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import r3graph.graphs.server as server

    return importlib.reload(server)  # the module builds its graph from the environment at import


async def test_file_paths_only_inside_the_operators_image_root(monkeypatch: pytest.MonkeyPatch) -> None:
    server = server_module(monkeypatch)
    with pytest.raises(R3InputError, match="file paths are not accepted"):
        await server.graph.ainvoke({"instruction": "Describe.", "images": [str(EXAMPLE_PNG)]})
    monkeypatch.setenv("R3GRAPH_IMAGE_ROOT", str(ASSETS_DIR))
    result = await server.graph.ainvoke({"instruction": "Describe.", "images": [str(EXAMPLE_PNG)]},
                                        context={"max_rounds": 1})
    assert result["output"] == caption(load_example())
    with pytest.raises(R3InputError, match="outside the allowed image folder"):
        await server.graph.ainvoke({"instruction": "Describe.", "images": ["/etc/hostname"]})


def test_the_client_context_is_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    server = server_module(monkeypatch)
    assert server.r3_context({"max_rounds": 2, "review": True}).review is True
    assert server.r3_context(None).allow_remote_images is False
    for bad in ({"allow_remote_images": True}, {"max_rounds": 99}, {"reflect": "my.module:Strategy"}):
        with pytest.raises(ValueError):
            server.r3_context(bad)
