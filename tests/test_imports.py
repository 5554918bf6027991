"""Every module of the package imports on its own: no import cycles hidden by import order."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import lstm_repl

MODULES = sorted(m.name for m in pkgutil.walk_packages(lstm_repl.__path__, "lstm_repl.") if "._bundled" not in m.name)

# One fresh interpreter; before each module, every lstm_repl module already imported is forgotten, so
# each is imported first, as `python -c "import lstm_repl.x"` would (torch and the others stay loaded).
CHECK = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "lstm_repl" or m.startswith("lstm_repl.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
print("\\n".join(failed))
"""


@pytest.mark.slow  # starts a real process
def test_every_module_imports_first_on_its_own():
    assert "lstm_repl.cli.train" in MODULES and len(MODULES) > 30
    result = subprocess.run([sys.executable, "-c", CHECK, *MODULES], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", result.stdout


@pytest.mark.slow  # starts a real process
def test_the_command_line_lists_the_cell_kinds_without_loading_torch():
    code = "import sys, lstm_repl.cli.main; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stdout + result.stderr


def _imports_of(path, package: str) -> set[str]:
    """Every lstm_repl module `path` imports anywhere in it: at the top, inside functions, under
    `if TYPE_CHECKING:` (a type-only import still ties the two modules together)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lstm_repl"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("lstm_repl"))
    return {name for name in found if name in MODULES and name != package}


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or not."""
    index, low, on_stack, stack, groups = {}, {}, set(), [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_module_imports_one_that_imports_it_back():
    """No import cycles, type-only and function-level imports included. A package's __init__
    counts as the package: a module may use its own package's names."""
    from pathlib import Path

    root = Path(lstm_repl.__file__).parent
    graph = {}
    for name in MODULES:
        relative = Path(*name.split(".")[1:])
        path = root / relative / "__init__.py" if (root / relative).is_dir() else (root / relative).with_suffix(".py")
        own_package = name.rpartition(".")[0]
        graph[name] = {m for m in _imports_of(path, own_package) if not name.startswith(m + ".")}
    cycles = [sorted(group) for group in _strongly_connected(graph) if len(group) > 1]
    assert cycles == [], cycles
