"""Load pieces of vllm-omni's own code without vLLM or torch (run by ``.venv-omni``'s python only).

vllm-omni's packages import torch and vLLM in their ``__init__`` and at the top of its route and
serving modules, so the modules cannot be imported here. What the conformance check needs is the
request handling itself: the route functions of ``entrypoints/openai/api_server.py``, the methods of
``OmniOpenAIServingChat`` that read a chat request and build its image reply, and the helpers they
call. This module takes those definitions from the installed package's source files, unchanged, and
executes them in a namespace that holds what their module imports when the import works here
(fastapi, PIL, vllm-omni's light modules) and a small stand-in for each vLLM name that does not.
Decorators of route functions are dropped (their paths and methods are read back from them and the
functions mounted on a FastAPI app by the harness).
"""

from __future__ import annotations

import ast
import dis
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def omni_root() -> Path:
    spec = importlib.util.find_spec("vllm_omni")  # finds the package without executing its __init__
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("vllm_omni is not installed in this interpreter (make .venv-omni)")
    return Path(next(iter(spec.submodule_search_locations)))


class _BarePackages(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Every ``vllm_omni`` package imports as an empty package (its ``__init__`` would pull torch in);
    plain modules below it load normally when they are light enough to import."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None,
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "vllm_omni" and not fullname.startswith("vllm_omni."):
            return None
        folder = self.root.joinpath(*fullname.split(".")[1:])
        if not folder.is_dir():
            return None
        spec = importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        spec.submodule_search_locations = [str(folder)]
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        pass  # deliberately empty: see the class docstring


def install_bare_packages() -> Path:
    root = omni_root()
    sys.meta_path.insert(0, _BarePackages(root))
    return root


@dataclass
class Loaded:
    module: types.ModuleType
    # function name -> (path, methods, whether its decorator adds vLLM's JSON-body check, response_model=None)
    route_paths: dict[str, tuple[str, list[str], bool, bool]]


def _source(root: Path, module: str) -> tuple[Path, ast.Module]:
    path = root.joinpath(*module.split(".")[1:]).with_suffix(".py")
    return path, ast.parse(path.read_text(), filename=str(path))


def _route_of(func: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[str, list[str], bool, bool] | None:
    for deco in func.decorator_list:
        if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute)
                and deco.func.attr in ("post", "get") and deco.args and isinstance(deco.args[0], ast.Constant)):
            json_body = any(k.arg == "dependencies" and "validate_json_request" in ast.unparse(k.value)
                            for k in deco.keywords)
            no_model = any(k.arg == "response_model" and ast.unparse(k.value) == "None" for k in deco.keywords)
            return str(deco.args[0].value), [deco.func.attr.upper()], json_body, no_model
    return None


def load_partial(root: Path, module: str, names: Iterable[str], provide: Mapping[str, Any] | None = None,
                 classes: Mapping[str, Iterable[str]] | None = None) -> Loaded:
    """Module ``module`` with only the top-level definitions ``names`` (functions, assignments) and,
    for each class in ``classes``, a class of that name with only the listed methods (and all its
    class-level assignments), its bases dropped. Registered in ``sys.modules`` under the real name,
    so other partial modules import from it."""
    path, tree = _source(root, module)
    mod = types.ModuleType(module)
    mod.__file__ = str(path)
    namespace = mod.__dict__
    wanted, wanted_classes = set(names), {k: set(v) for k, v in (classes or {}).items()}
    # Each import statement on its own: those that work here bind real objects; the others are skipped.
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            _import_each(node, path, namespace)
    for key, value in (provide or {}).items():
        namespace.setdefault(key, value)
    body: list[ast.stmt] = []
    routes: dict[str, tuple[str, list[str], bool, bool]] = {}
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in wanted:
            if (route := _route_of(node)) is not None:
                routes[node.name] = route
            node.decorator_list = []
            body.append(node)
            found.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and _targets(node) & wanted:
            body.append(node)
            found |= _targets(node) & wanted
        elif isinstance(node, ast.ClassDef) and node.name in wanted:
            body.append(node)  # whole class (a dataclass or pydantic model), bases kept
            found.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name in wanted_classes:
            keep = wanted_classes[node.name]
            members = [m for m in node.body if isinstance(m, ast.Assign | ast.AnnAssign)
                       or (isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef) and m.name in keep)]
            missing = keep - {m.name for m in members if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)}
            if missing:
                raise SystemExit(f"{module}.{node.name} has no {sorted(missing)}: vllm-omni changed, update the check")
            node.body, node.bases, node.keywords, node.decorator_list = members, [], [], []
            body.append(node)
            found.add(node.name)
    missing_names = (wanted | set(wanted_classes)) - found
    if missing_names:
        raise SystemExit(f"{module} has no {sorted(missing_names)}: vllm-omni changed, update the check")
    sys.modules[module] = mod  # before executing: dataclasses look their module up there
    exec(compile(ast.fix_missing_locations(ast.Module(body, [])), str(path), "exec"), namespace)
    return Loaded(mod, routes)


def _import_each(node: ast.Import | ast.ImportFrom, path: Path, namespace: dict[str, Any]) -> None:
    """One name at a time, so a statement importing five names still binds the four that load here."""
    for alias in node.names:
        single = (ast.ImportFrom(node.module, [alias], node.level) if isinstance(node, ast.ImportFrom)
                  else ast.Import([alias]))
        try:
            exec(compile(ast.fix_missing_locations(ast.Module([single], [])), str(path), "exec"), namespace)
        except Exception:
            continue


def _targets(node: ast.Assign | ast.AnnAssign) -> set[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return {t.id for t in targets if isinstance(t, ast.Name)}


def unresolved_globals(func: Any, namespace: Mapping[str, Any]) -> set[str]:
    """Global names a function (and its nested code) reads that neither its module nor builtins bind:
    the harness lists them at start so a vllm-omni change shows up as a name, not as a 500 later."""
    code = getattr(func, "__code__", None)
    if code is None:
        return set()
    seen: set[str] = set()
    stack = [code]
    while stack:
        current = stack.pop()
        for ins in dis.get_instructions(current):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(ins.argval, str):
                seen.add(ins.argval)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    builtins = __builtins__ if isinstance(__builtins__, dict) else vars(__builtins__)
    return {name for name in seen if name not in namespace and name not in builtins}
