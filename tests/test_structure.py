"""The code's shape: every module says its job, stays small, and no imports go round in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [
    ROOT / "core" / "src",
    *sorted((ROOT / "plugins").glob("*/src")),
    *sorted((ROOT / "adapters").glob("*/src")),
]
MAX_LINES = 650  # "about 600": split a module by concern before it grows past this


def modules() -> dict[str, Path]:
    found = {}
    for src in SOURCES:
        for path in sorted(src.rglob("*.py")):
            parts = path.relative_to(src).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = modules()


def runtime_imports(name: str, path: Path) -> set[str]:
    """First-party modules ``name`` imports, lazily or not (``TYPE_CHECKING`` blocks excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
                continue  # a module's deprecated aliases, resolved on use, not on import
            if isinstance(node, ast.ExceptHandler):
                visit(node.body)
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    visit([n for n in inner if isinstance(n, ast.stmt | ast.ExceptHandler)])

    visit(tree.body)
    return {module for module in found if module in MODULES and module != name}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_opens_with_a_docstring_and_stays_small(name):
    path = MODULES[name]
    source = path.read_text(encoding="utf-8")
    if source.strip():
        assert ast.get_docstring(ast.parse(source)), f"{path} does not say what it owns"
    lines = source.count("\n")
    assert lines <= MAX_LINES, f"{path} has {lines} lines: split it by concern"


def test_no_module_imports_itself_in_a_circle():
    graph = {name: runtime_imports(name, path) for name, path in MODULES.items()}
    # A package's __init__ re-exporting its modules is not a circle its modules take part in.
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    circles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name)
    assert not circles, "import circles:\n" + "\n".join(circles)


@pytest.mark.parametrize("src", SOURCES, ids=lambda src: src.parent.name)
def test_each_package_ships_its_type_hints(src):
    """Every distribution's package carries ``py.typed``, so type checkers read its hints."""
    packages = [path.parent for path in src.glob("*/__init__.py")]
    assert packages, f"no package under {src}"
    assert [p.name for p in packages if not (p / "py.typed").is_file()] == []
