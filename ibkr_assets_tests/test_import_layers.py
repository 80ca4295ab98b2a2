"""The package's import graph has no circles, and the domain does not know Dagster.

Every import counts, wherever it is written (module top, inside a function, under
``TYPE_CHECKING``): an import moved into a function hides a circle, it does not remove it.
Two graphs are checked: modules (``ibkr_assets.analysis.cache``) and the package's rooms (its
subpackages and top-level modules: ``ibkr_assets.analysis``, ``ibkr_assets.cli``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "ibkr_assets"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _parse(path: Path) -> ast.Module:
    """``ast.parse`` of ``path``, tried again on CPython 3.11's "AST constructor recursion depth
    mismatch" (python/cpython#106905: its AST state is shared by threads, and a thread an earlier
    test left running in this worker can parse at the same moment); the source itself is fine."""
    source = path.read_text(encoding="utf-8")
    for attempt in range(5):
        try:
            return ast.parse(source, str(path))
        except SystemError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def _imported(module: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules ``module`` imports (``from a import b``: ``a.b`` if a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names]
            names = [name if name in known else base for name in names]
        else:
            continue
        for name in names:
            while name and name not in known:  # ``import a.b.c`` of a name inside a module
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    sources = _sources()
    known = set(sources)
    return {module: _imported(module, path, known) for module, path in sources.items()}


def _room(module: str) -> str:
    """``ibkr_assets.analysis.cache`` -> ``ibkr_assets.analysis``; top-level modules stay."""
    return ".".join(module.split(".")[:2])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected component of more than one node, sorted (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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
    return sorted(found)


def _paths(graph: dict[str, set[str]], cycle: list[str]) -> list[str]:
    """``a -> b`` for each edge inside ``cycle``, to say where to cut it."""
    members = set(cycle)
    return [f"{a} -> {b}" for a in cycle for b in sorted(graph[a] & members)]


def test_no_import_circle_between_modules() -> None:
    graph = _graph()
    # A package's __init__ naming its own modules is not a circle with them.
    within = {
        module: {t for t in targets if not module.startswith(t + ".")}
        for module, targets in graph.items()
    }
    cycles = _cycles(within)
    assert not cycles, "\n".join(" | ".join(_paths(within, cycle)) for cycle in cycles)


def test_no_import_circle_between_rooms() -> None:
    rooms: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        room = _room(module)
        rooms.setdefault(room, set()).update(_room(t) for t in targets if _room(t) != room)
    rooms.pop(PACKAGE, None)  # the package's own __init__ is no room
    rooms = {room: targets - {PACKAGE} for room, targets in rooms.items()}
    cycles = _cycles(rooms)
    assert not cycles, "\n".join(" | ".join(_paths(rooms, cycle)) for cycle in cycles)


def test_domain_does_not_import_dagster() -> None:
    offenders = []
    for path in sorted((ROOT / "domain").rglob("*.py")):
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if not node.level else []
            else:
                continue
            offenders += [
                f"{path.relative_to(ROOT.parent)}:{node.lineno} imports {name}"
                for name in names
                if name == "dagster" or name.startswith(("dagster.", "dagster_"))
            ]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ],
)
def test_cycle_finder(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert _cycles(graph) == expected
