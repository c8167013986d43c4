"""What the package's modules import: the command and the demo never `trio_election.testing`
(a user tool, not something the product stands on), and the control plane's build and
binaries lookup nothing but the standard library (scripts/build_control_plane.py loads them
by path, before any virtualenv exists)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "trio_election"


def _imports(path: Path) -> list[str]:
    """Every module `path` imports, relative ones resolved against its package."""
    package = list(path.relative_to(PACKAGE.parent).parts[:-1])
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append(module)
            found += [f"{module}.{alias.name}" for alias in node.names]
    return found


def test_the_product_does_not_import_testing() -> None:
    offenders = [
        (str(path.relative_to(PACKAGE.parent)), name)
        for path in sorted(PACKAGE.rglob("*.py"))
        if "testing" not in path.relative_to(PACKAGE).parts
        for name in _imports(path)
        if name == "trio_election.testing" or name.startswith("trio_election.testing.")
    ]
    assert offenders == []


def test_the_build_and_the_binaries_lookup_need_only_the_standard_library() -> None:
    for name in ("_binaries.py", "_build.py"):
        path = PACKAGE / "_controlplane" / name
        outside = [
            module
            for module in _imports(path)
            if module.split(".")[0] not in sys.stdlib_module_names
            and not module.startswith("trio_election._controlplane._binaries")
            and module != "trio_election._controlplane"
        ]
        assert outside == [], name
