"""The shell's history of lines (Up, Down and Ctrl-R recall them), kept across sessions in the
user's data folder: $LSTM_REPL_HISTORY, else $XDG_DATA_HOME/lstm-repl/history, else
~/.local/share/lstm-repl/history.

The file is prompt_toolkit's FileHistory format (`# time` then `+line` lines), and may be
anything by the time it is read: only the last HISTORY_READ bytes of a regular file are read
(a FIFO, a device or a gigabyte cost nothing), bytes that are not UTF-8 are replaced, and a line
too long is skipped. Each entry is appended in one write to a file opened O_APPEND, never
rewritten, so two shells writing at once keep each other's lines. A folder or file that cannot
be written leaves the history in memory for the session: the shell never stops for it.
"""

from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path
from typing import Iterable

from prompt_toolkit.history import History

from lstm_repl.errors import LstmReplError
from lstm_repl.safe_read import open_regular

HISTORY_ENV = "LSTM_REPL_HISTORY"  # a file to keep the history in instead (tests, or a shared machine)
HISTORY_LINE_MAX = 4000  # longer lines are not kept in the history file
HISTORY_READ = 1 << 20  # bytes read from the end of the file: thousands of lines
_ANY_SIZE = 1 << 62


def history_path() -> Path:
    if os.environ.get(HISTORY_ENV):
        return Path(os.environ[HISTORY_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "lstm-repl" / "history"


class PersistentHistory(History):
    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.writable = True  # until a write fails: then the session's lines stay in memory

    def load_history_strings(self) -> Iterable[str]:
        """The lines kept, newest first."""
        return reversed(entries(_tail(self.path)))

    def store_string(self, string: str) -> None:
        if not self.writable or len(string) > HISTORY_LINE_MAX:
            return
        when = datetime.datetime.now().isoformat(timespec="seconds")
        entry = f"\n# {when}\n" + "".join(f"+{line}\n" for line in string.split("\n"))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _append(self.path, entry.encode("utf-8", "surrogateescape"))
        except OSError:
            self.writable = False


def file_history() -> History:
    return PersistentHistory(history_path())


def entries(text: str) -> list[str]:
    """The entries of a history file's text, oldest first: runs of `+` lines; anything else is
    a separator (a `#` line, a blank one, or a line cut in two where reading began)."""
    out: list[str] = []
    current: list[str] = []
    for line in text.split("\n"):
        if line.startswith("+"):
            current.append(line[1:])
            continue
        if current:
            out.append("\n".join(current))
            current = []
    if current:
        out.append("\n".join(current))
    return [entry for entry in out if len(entry) <= HISTORY_LINE_MAX]


def _tail(path: Path) -> str:
    """The last HISTORY_READ bytes of a regular file as text (nothing of anything else)."""
    try:
        with open_regular(path, _ANY_SIZE, LstmReplError, "history file") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - HISTORY_READ))
            data = f.read(HISTORY_READ)
    except (LstmReplError, OSError):
        return ""
    if size > HISTORY_READ:  # the first line may be cut: it is dropped
        data = data[data.find(b"\n") + 1 :] if b"\n" in data else b""
    return data.decode("utf-8", "replace")


def _append(path: Path, data: bytes) -> None:
    """One write at the end of a regular file (made if missing, never through a symbolic link)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    descriptor = os.open(path, flags, 0o600)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(f"{path} is not a regular file")
        written = os.write(descriptor, data)
        if written != len(data):
            raise OSError("short write")
    finally:
        os.close(descriptor)
