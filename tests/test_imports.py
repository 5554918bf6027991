"""Every module of the package imports on its own: no import cycles hidden by import order."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

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


def test_every_module_imports_first_on_its_own():
    assert "lstm_repl.commands.train" in MODULES and len(MODULES) > 30
    result = subprocess.run([sys.executable, "-c", CHECK, *MODULES], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_the_command_line_lists_the_cell_kinds_without_loading_torch():
    code = "import sys, lstm_repl.cli; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stdout + result.stderr
