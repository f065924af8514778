"""The core stands without the scene world (issue 14, item 7).

- every core module imports, and the CLI answers, with ``r3graph_scenes`` blocked and no plugin entry
  point: what only a plugin gives is a typed error that says what to do, never an ImportError;
- no core module imports ``r3graph_scenes`` (read from the source, so a lazy import inside a function
  counts too);
- the core's wheel holds no ``r3graph_scenes``, no weights and no scenes pack.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from r3graph.plugins import ENV
from tests.helpers import REPO

CORE = REPO / "r3graph"
# Run in a child: r3graph_scenes cannot be imported, no distribution offers an r3graph.plugins entry
# point, and R3GRAPH_PLUGINS is unset. Then import every core module and drive the CLI in process.
WITHOUT_PLUGIN = r"""
import importlib, importlib.metadata, io, json, pkgutil, sys, contextlib
sys.modules["r3graph_scenes"] = None  # any import of it raises ImportError
_entry_points = importlib.metadata.entry_points
def entry_points(**params):
    found = _entry_points(**params)
    return found.select(name="no-such-plugin") if params.get("group") == "r3graph.plugins" else found
importlib.metadata.entry_points = entry_points

import r3graph
failed = {}
for info in pkgutil.walk_packages(r3graph.__path__, "r3graph."):
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed[info.name] = f"{type(exc).__name__}: {exc}"

from r3graph import plugins
from r3graph.cli import main
results = {"plugins": [p.name for p in plugins.plugins()], "failed": failed}
for name, argv in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code
        except BaseException as exc:
            status = f"raised {type(exc).__name__}: {exc}"
    results[name] = {"status": status, "stderr": err.getvalue()}
from r3graph.errors import R3ConfigError
from r3graph.backends import make_backend
for kind in ("scripted", "engine"):
    try:
        make_backend(kind)
        results[kind] = "no error"
    except R3ConfigError as exc:
        results[kind] = f"R3ConfigError: {exc}"
    except Exception as exc:
        results[kind] = f"{type(exc).__name__}: {exc}"
print(json.dumps(results))
"""

COMMANDS = {
    "run": ["run", "--image", "x.png"],
    "serve": ["serve"],
    "learned": ["run", "--output", "image", "--instruction", "a red circle", "--base-url", "http://127.0.0.1:9"],
    "stand-in": ["run", "--output", "image", "--image-server", "stand-in", "--instruction", "a red circle",
                 "--base-url", "http://127.0.0.1:9"],
    "paint-server": ["paint-server", "--port", "0"],
    "help": ["--help"],
}


def _core_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env["PYTHONPATH"] = str(REPO)  # the core only: not scenes/
    return env


@pytest.fixture(scope="module")
def without_plugin() -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", WITHOUT_PLUGIN, json.dumps(COMMANDS)], cwd=REPO, env=_core_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# The LangGraph server's module builds its graph when imported, from the environment's model: with no
# model named and no plugin, that is the typed error (what `langgraph dev` then shows), not an ImportError.
BUILDS_AT_IMPORT = {"r3graph.graphs.server"}


def test_every_core_module_imports_without_the_plugin(without_plugin: dict[str, object]) -> None:
    assert without_plugin["plugins"] == []
    failed = without_plugin["failed"]
    assert isinstance(failed, dict) and set(failed) == BUILDS_AT_IMPORT, failed
    for name in BUILDS_AT_IMPORT:
        assert failed[name].startswith("R3ConfigError: no model given"), failed[name]


@pytest.mark.parametrize(("name", "says"), [
    ("run", "pass --model DIR"), ("serve", "pass --model DIR"), ("learned", "--image-server learned: no plugin"),
    ("stand-in", "'stand-in' comes with r3graph-scenes"), ("paint-server", "`paint-server` comes with a plugin"),
])
def test_what_only_a_plugin_gives_is_a_typed_error(without_plugin: dict[str, object], name: str, says: str) -> None:
    outcome = without_plugin[name]
    assert isinstance(outcome, dict)
    assert outcome["status"] == 2, outcome  # EXIT_BAD_INPUT: an R3ValidationError caught by main()
    assert says in outcome["stderr"] and "r3graph-scenes" in outcome["stderr"], outcome
    assert "Error" not in outcome["stderr"] and "Traceback" not in outcome["stderr"], outcome


def test_the_cli_parses_and_the_backends_fail_typed_without_the_plugin(without_plugin: dict[str, object]) -> None:
    assert without_plugin["help"] == {"status": 0, "stderr": ""}
    assert str(without_plugin["scripted"]).startswith("R3ConfigError: the scripted backend comes with a plugin")
    assert str(without_plugin["engine"]).startswith("R3ConfigError: no model given")


def core_imports_of(root: Path, banned: str = "r3graph_scenes") -> list[str]:
    """``file:line`` of every import of ``banned`` (or a module below it) in the Python files under root."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            if any(n == banned or n.startswith(banned + ".") for n in names):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


def test_no_core_module_imports_the_scene_world() -> None:
    assert core_imports_of(CORE) == []


def test_the_import_scan_sees_lazy_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("def f():\n    from r3graph_scenes.world import Scene\n    import r3graph_scenes\n")
    (pkg / "b.py").write_text("import r3graph_scenes_other\nfrom . import a\n")
    assert core_imports_of(pkg) == ["pkg/a.py:2", "pkg/a.py:3"]


def build_wheel(source: Path, out: Path) -> Path:
    """The wheel pip builds from ``source`` (no dependencies, no network, this environment's setuptools)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(out), str(source)], check=True, timeout=300, capture_output=True)
    (wheel,) = out.glob("*.whl")
    return wheel


def wheel_problems(wheel: Path) -> list[str]:
    """What a core wheel must not hold: the scene world, weights, the scenes pack, any model directory."""
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    return [n for n in names if n.startswith("r3graph_scenes/") or n.endswith((".safetensors", "scenes.json"))
            or "/models/" in n or n.startswith("r3graph/scenes/")]


def _copy_checkout(dest: Path) -> Path:
    """What a build of the root project reads, the plugin folder included (a build writes into its
    source folder: never into the checkout)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, dest / name)
    for name in ("r3graph", "scenes"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    return dest


@pytest.mark.slow
def test_the_core_wheel_ships_no_world_and_no_weights(tmp_path: Path) -> None:
    src = _copy_checkout(tmp_path / "src")
    wheel = build_wheel(src, tmp_path / "wheel")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert "r3graph/plugins.py" in names and "r3graph/prompts/packs/default.json" in names
    assert wheel_problems(wheel) == []
    # The check sees weights that slip back into the core (as they were before the split).
    weights = src / "r3graph" / "models" / "m" / "model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"\0")
    pyproject = src / "pyproject.toml"
    data = pyproject.read_text().replace('"prompts/packs/*.json"]', '"prompts/packs/*.json", "models/**/*"]')
    pyproject.write_text(data)
    assert wheel_problems(build_wheel(src, tmp_path / "leaky")) == ["r3graph/models/m/model.safetensors"]


@pytest.mark.slow
def test_the_plugin_wheel_carries_the_world_its_weights_and_its_entry_point(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(REPO / "scenes", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    wheel = build_wheel(src, tmp_path / "wheel")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
        declared = z.read(entry_points).decode()
    for model in ("scenes-vlm", "scenes-imagegen"):
        files = ("config.json", "model.safetensors", "r3graph.json")
        assert {f"r3graph_scenes/models/{model}/{f}" for f in files} <= names
    assert {f"r3graph_scenes/{f}" for f in ("packs/scenes.json", "assets/example.png", "plugin.py")} <= names
    assert not any(n.startswith("r3graph/") for n in names)
    assert "[r3graph.plugins]\nscenes = r3graph_scenes.plugin:PLUGIN" in declared
