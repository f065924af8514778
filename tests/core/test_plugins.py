"""Plugins (r3graph.plugins): a user's own world plugs in as the scene world does, and a model directory
brings its own prompt pack with no plugin at all."""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from r3graph import plugins
from r3graph.backends import declared_pack, make_backend
from r3graph.cli import main
from r3graph.errors import R3ConfigError
from r3graph.prompts import available_packs, load_named_pack, load_pack
from r3graph.prompts.pack import _packs_dir

MY_PLUGIN = '''
from pathlib import Path
from r3graph.plugins import R3Plugin

HERE = Path(__file__).parent
CALLS = []

def hello(argv):
    CALLS.append(argv)
    return 7

PLUGIN = R3Plugin(name="mine", model_dir=HERE / "my-model",
                  packs={"mine": HERE / "mine.json", "default": HERE / "mine.json"},
                  commands={"hello": "my_r3_plugin:hello"})
NOT_A_PLUGIN = 42
'''


@pytest.fixture
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Plugins looked up again under the test's environment, and again after it."""
    plugins.plugins.cache_clear()
    load_named_pack.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    plugins.plugins.cache_clear()
    load_named_pack.cache_clear()
    sys.modules.pop("my_r3_plugin", None)


@pytest.fixture
def my_plugin(tmp_path: Path, fresh_plugins: pytest.MonkeyPatch) -> Path:
    (tmp_path / "my_r3_plugin.py").write_text(MY_PLUGIN)
    pack = json.loads((_packs_dir() / "default.json").read_text())
    (tmp_path / "mine.json").write_text(json.dumps(pack | {"name": "mine"}))
    fresh_plugins.syspath_prepend(str(tmp_path))
    # first, before any the environment already names (a checkout without r3graph-scenes installed)
    fresh_plugins.setenv(plugins.ENV, ",".join(filter(None, ["my_r3_plugin:PLUGIN", os.environ.get(plugins.ENV)])))
    return tmp_path


def test_a_plugin_named_in_the_environment_comes_first(my_plugin: Path) -> None:
    found = [p.name for p in plugins.plugins()]
    assert found[0] == "mine" and "scenes" in found  # the scene world is still there, after it
    assert plugins.default_model_dir() == my_plugin / "my-model"


def test_a_plugin_pack_is_found_by_name_but_never_shadows_a_bundled_one(my_plugin: Path) -> None:
    assert {"default", "mine", "scenes"} <= set(available_packs())
    assert load_pack("mine").model_dump() == load_pack(my_plugin / "mine.json").model_dump()
    assert load_named_pack("mine") == load_pack("mine")  # per-request names reach plugin packs too
    assert load_pack("default").model_dump() == load_pack(_packs_dir() / "default.json").model_dump()


def test_a_plugin_command_gets_the_rest_of_the_command_line(my_plugin: Path) -> None:
    assert main(["hello", "--x", "1"]) == 7
    assert sys.modules["my_r3_plugin"].CALLS == [["--x", "1"]]


@pytest.mark.parametrize(("spec", "says"), [
    ("no_such_module_r3:PLUGIN", "cannot be loaded (ModuleNotFoundError"),
    ("my_r3_plugin:MISSING", "cannot be loaded (AttributeError"),
    ("my_r3_plugin:NOT_A_PLUGIN", "is a int, not an r3graph.plugins.R3Plugin"),
])
def test_a_broken_plugin_is_a_config_error_naming_it(my_plugin: Path, fresh_plugins: pytest.MonkeyPatch,
                                                     spec: str, says: str) -> None:
    fresh_plugins.setenv(plugins.ENV, spec)
    with pytest.raises(R3ConfigError, match=r"R3GRAPH_PLUGINS|plugin") as info:
        plugins.plugins()
    assert says in str(info.value) and spec in str(info.value)
    assert main(["run", "--image", "x.png"]) == 2  # the CLI says it, no traceback


def test_an_installed_plugin_that_fails_to_load_names_its_entry_point(fresh_plugins: pytest.MonkeyPatch) -> None:
    broken = importlib.metadata.EntryPoint("broken", "no_such_module_r3:PLUGIN", plugins.GROUP)
    real = importlib.metadata.entry_points
    fresh_plugins.delenv(plugins.ENV, raising=False)
    fresh_plugins.setattr(importlib.metadata, "entry_points",
                          lambda **kw: importlib.metadata.EntryPoints([broken]) if kw.get("group") == plugins.GROUP
                          else real(**kw))
    with pytest.raises(R3ConfigError, match=r"plugin 'broken' \(no_such_module_r3:PLUGIN, group r3graph.plugins\)"):
        plugins.plugins()


def test_a_model_directory_may_bring_its_own_pack_file(tmp_path: Path) -> None:
    pack = json.loads((_packs_dir() / "default.json").read_text()) | {"name": "my-model's"}
    (tmp_path / "templates.json").write_text(json.dumps(pack))
    (tmp_path / "r3graph.json").write_text(json.dumps({"pack": "templates.json"}))
    declared = declared_pack(tmp_path)
    assert declared == str(tmp_path / "templates.json")
    assert load_pack(declared).model_dump() == load_pack(pack).model_dump()
    (tmp_path / "r3graph.json").write_text(json.dumps({"pack": "missing.json"}))
    with pytest.raises(R3ConfigError, match=r"names the pack file 'missing\.json'"):
        declared_pack(tmp_path)


def test_a_model_directory_may_name_a_pack(tmp_path: Path) -> None:
    (tmp_path / "r3graph.json").write_text(json.dumps({"pack": "scenes"}))
    assert declared_pack(tmp_path) == "scenes"
    assert declared_pack(tmp_path / "absent") is None


def test_the_scene_world_is_a_plugin_like_any_other() -> None:
    scenes = next(p for p in plugins.plugins() if p.name == "scenes")
    assert (scenes.model_dir / "config.json").is_file() if scenes.model_dir else False
    assert declared_pack(scenes.model_dir) == "scenes" and "scenes" in available_packs()
    backend = make_backend("scripted")
    assert backend.kind == "scripted" and backend.pack == "scenes" and "SCRIPTED" in backend.label
