"""No import cycle inside the package, function-level imports included.

Every module of ``skcfae/`` is parsed with :mod:`ast` (its whole body: imports inside functions
and methods count, imports under ``if TYPE_CHECKING:`` do not), the graph of
``from .x import ...`` / ``from ..x import ...`` / ``import skcfae.x`` / ``from skcfae.x import``
edges is built with packages resolved, and the test fails on any cycle, printing it.

Run it alone with ``python -m pytest tests/test_imports.py -q``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "skcfae"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (``pkg.__init__`` is ``pkg``)."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The package module that importing ``name`` executes last: itself, or its package."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Edges ``module -> modules it imports`` inside the package."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == PACKAGE]
            else:
                if node.level:
                    base_parts = package.split(".")
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                    base = ".".join(base_parts)
                    source = f"{base}.{node.module}" if node.module else base
                elif node.module and node.module.split(".")[0] == PACKAGE:
                    source = node.module
                else:
                    continue
                # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one
                subs = [f"{source}.{a.name}" for a in node.names]
                targets = [s for s in subs if s in modules] or [source]
                if len(targets) < len(subs):  # some names are attributes of ``source``
                    targets.append(source)
            for target in targets:
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != name:
                    graph[name].add(resolved)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as ``[a, b, ..., a]``, or None (iterative DFS, sorted order)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_graph_sees_the_package():
    graph = import_graph()
    assert {"skcfae", "skcfae.base", "skcfae.metrics", "skcfae._ranking"} <= set(graph)
    assert "skcfae._ranking" in graph["skcfae.base"]
    assert "skcfae._ranking" in graph["skcfae.metrics"]


def test_find_cycle_reports_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_in_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle inside skcfae: " + " -> ".join(cycle or [])
