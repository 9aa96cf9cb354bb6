"""The import graph of the project's own modules: no circle, and no arrow from the engine up to
presentation (see docs/architecture.md). Read from the source with ``ast``, counting every import:
module-level, inside functions and under ``if TYPE_CHECKING:`` alike, so a circle cannot hide
behind a lazy import (the shared floor's check alone leaves type-only imports out)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ckptgate", "scorers")
# Modules that present results to people, and the top floor that drives a run and may use them
# (the pytest plugin and what its hooks call, the command line and the merge of shards it runs);
# nothing below may import them.
PRESENTATION = {"ckptgate.reports", "ckptgate.terminal"}
TOP = {"ckptgate.plugin", "ckptgate.cli", "ckptgate.benchmark_run", "ckptgate.settling", "ckptgate.merge"}
# The shared bottom floor: it imports nothing of the project's.
BOTTOM = {"ckptgate.scores", "ckptgate.errors", "ckptgate.atomicio", "ckptgate.exitcodes"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")
            if "__pycache__" not in p.parts}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST, name: str, is_package: bool, *, typing: bool) -> set[str]:
    """Modules ``tree`` imports; ``typing`` False leaves out those under ``if TYPE_CHECKING:``."""
    found: set[str] = set()
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
        elif typing or not _is_type_checking(node):
            found |= _imports(node, name, is_package, typing=typing)
    return found


def import_graph(*, typing: bool = True) -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = _imports(tree, name, path.name == "__init__.py", typing=typing)
        targets = {target for target in imported if target in modules}
        # Importing a.b.c runs a/__init__ and a/b/__init__ first.
        targets |= {parent for target in targets for parent in _parents(target) if parent in modules}
        graph[name] = targets - {name} - set(_parents(name))
    return graph


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "ckptgate.scores" in graph["scorers.lm_eval_task"]
    assert "ckptgate.gate" in graph["ckptgate.reports"]


def test_no_import_circle() -> None:
    assert cycles(import_graph()) == []


def test_cycle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_nothing_below_presentation_imports_it() -> None:
    upward = sorted(f"{name} -> {target}" for name, targets in import_graph().items()
                    if name not in PRESENTATION | TOP for target in targets & (PRESENTATION | TOP))
    assert upward == []


def test_the_shared_floor_imports_nothing_of_the_project() -> None:
    graph = import_graph(typing=False)  # its protocols name the suite's types for type checkers only
    assert {name: sorted(graph[name]) for name in BOTTOM if graph[name]} == {}
