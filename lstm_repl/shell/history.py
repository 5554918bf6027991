"""The shell's history of lines (Up and Down recall them), kept in the user's state folder."""

from __future__ import annotations

import os
from pathlib import Path

from prompt_toolkit.history import FileHistory, History, InMemoryHistory

HISTORY_LINE_MAX = 4000  # longer lines are not kept in the history file


def history_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "lstm-repl" / "history"


def file_history() -> History:
    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return FileHistory(str(path))
    except OSError:  # an unwritable home must not stop the shell
        return InMemoryHistory()
