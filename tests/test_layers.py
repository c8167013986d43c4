"""The layers of the package, read from the imports (with `ast`, nothing is imported).

- The core (`trio_election/_core/`) imports nothing of the package outside itself, and none
  of Kubernetes access, the command, the test tools, `httpx` or `yaml`: every import counts,
  at module level, inside functions, and under `if TYPE_CHECKING:`.
- No import circle anywhere in the package. A circle counts the imports that run: those
  at module level and inside functions, not those under `if TYPE_CHECKING:`. Inside the
  core, not even the type-only imports go round in a circle.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import trio_election

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

PACKAGE = "trio_election"
CORE = f"{PACKAGE}._core"
ROOT = Path(trio_election.__file__).parent

FORBIDDEN_OUTSIDE = ("httpx", "yaml")
"""Third-party packages the core must not import (it sees locks only through its protocol)."""


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement of one module, resolved to the modules it names."""

    module: str
    line: int
    text: str
    targets: tuple[str, ...]
    """Absolute names of what it imports: modules of the package when they exist, else
    the dotted name as written (third-party or a name in a package's `__init__`)."""
    type_only: bool
    """Under `if TYPE_CHECKING:` (it does not run)."""


def _module_names() -> dict[str, Path]:
    names: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


MODULES = _module_names()


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> tuple[str, ...]:
    if isinstance(node, ast.Import):
        return tuple(alias.name for alias in node.names)
    base = _resolve(module, node)
    named = [f"{base}.{alias.name}" for alias in node.names]
    submodules = tuple(name for name in named if name in MODULES)
    # `from package import name`: the package itself runs, and any submodule named
    return (base, *submodules) if len(submodules) < len(named) else submodules


def _imports_in(module: str, source: str | None = None) -> Iterator[Import]:
    """The imports of `module` (of its file, or of `source` in its place)."""
    path = MODULES[module]
    if source is None:
        source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))

    def walk(nodes: Iterable[ast.AST], type_only: bool) -> Iterator[Import]:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                yield from walk(node.body, True)
                yield from walk(node.orelse, type_only)
                continue
            if isinstance(node, ast.Import | ast.ImportFrom):
                text = ast.get_source_segment(source, node) or ast.dump(node)
                yield Import(module, node.lineno, text, _targets(module, node), type_only)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute | ast.Name)
                and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
                in {"import_module", "__import__"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                name = node.args[0].value
                text = ast.get_source_segment(source, node) or name
                yield Import(module, node.lineno, text, (name,), type_only)
            yield from walk(ast.iter_child_nodes(node), type_only)

    yield from walk(tree.body, False)


def _all_imports() -> list[Import]:
    return [imp for module in MODULES for imp in _imports_in(module)]


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _why_forbidden(target: str) -> str | None:
    for outside in FORBIDDEN_OUTSIDE:
        if _in(target, outside):
            return f"the core does not use {outside}"
    if _in(target, PACKAGE) and not _in(target, CORE):
        return f"{target} lies outside the core"
    return None


def test_core_imports_nothing_outside_itself() -> None:
    core = [module for module in MODULES if _in(module, CORE)]
    assert f"{CORE}._engine" in core
    wrong = [
        f"{imp.module}:{imp.line}: {imp.text!r} ({why})"
        for module in core
        for imp in _imports_in(module)
        for target in imp.targets
        if (why := _why_forbidden(target)) is not None
    ]
    assert not wrong, "the core imports beyond its boundary:\n" + "\n".join(wrong)


def _graph(*, type_only: bool, within: str = PACKAGE) -> dict[str, dict[str, Import]]:
    """Module -> module of the package it imports -> the (first) import that does it."""
    graph: dict[str, dict[str, Import]] = {m: {} for m in MODULES if _in(m, within)}
    for imp in _all_imports():
        if imp.module not in graph or (imp.type_only and not type_only):
            continue
        for target in imp.targets:
            # a dotted name below a module of the package (`from pkg.mod import name`)
            # resolves to that module
            while target not in MODULES and "." in target:
                target = target.rpartition(".")[0]
            if target in graph and target != imp.module:
                graph[imp.module].setdefault(target, imp)
    return graph


def _circles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """One circle through each strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_one_circle(graph, group) for group in groups]


def _one_circle(graph: dict[str, dict[str, Import]], group: set[str]) -> list[str]:
    """The shortest circle from the group's first module back to it (breadth first)."""
    start = min(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(graph[node]):
                if nxt not in group:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no circle in {group}")  # pragma: no cover


def _describe(graph: dict[str, dict[str, Import]], circle: list[str]) -> str:
    steps = [
        f"  {a} -> {b}  ({graph[a][b].module}:{graph[a][b].line}: {graph[a][b].text!r})"
        for a, b in itertools.pairwise(circle)
    ]
    return " -> ".join(circle) + "\n" + "\n".join(steps)


def test_no_import_circle() -> None:
    graph = _graph(type_only=False)
    circles = _circles(graph)
    assert not circles, "import circles:\n" + "\n".join(_describe(graph, c) for c in circles)


def test_no_import_circle_in_the_core_even_for_types() -> None:
    graph = _graph(type_only=True, within=CORE)
    circles = _circles(graph)
    assert not circles, "import circles:\n" + "\n".join(_describe(graph, c) for c in circles)


def test_the_reader_sees_every_kind_of_import() -> None:
    # the checks above are only as good as the reader: relative imports resolved against
    # the module's package, imports inside functions found, type-only ones told apart
    source = """
import trio
from . import _lock, _nothing
from .._kube import KubeClient
if TYPE_CHECKING:
    from ..testing import FakeKubeApi
else:
    import yaml
def f():
    from trio_election._cli._run import main
    importlib.import_module("trio_election.demo")
"""
    seen = [
        (imp.line, imp.targets, imp.type_only) for imp in _imports_in(f"{CORE}._engine", source)
    ]
    assert seen == [
        (2, ("trio",), False),
        (3, (CORE, f"{CORE}._lock"), False),
        (4, (f"{PACKAGE}._kube",), False),
        (6, (f"{PACKAGE}.testing",), True),
        (8, ("yaml",), False),
        (10, (f"{PACKAGE}._cli._run",), False),
        (11, (f"{PACKAGE}.demo",), False),
    ]
    assert _why_forbidden(f"{PACKAGE}._kube") is not None
    assert _why_forbidden(f"{PACKAGE}") is not None
    assert _why_forbidden("httpx._client") is not None
    assert _why_forbidden(f"{CORE}._lock") is None
    assert _why_forbidden("trio") is None
    # and a circle is found, and shown with the imports that make it
    imp = Import("a", 1, "import b", ("b",), type_only=False)
    graph = {"a": {"b": imp}, "b": {"c": imp}, "c": {"a": imp}, "d": {"a": imp}}
    assert _circles(graph) == [["a", "b", "c", "a"]]
