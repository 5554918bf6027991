"""asciicast v2 files (what asciinema plays and embeds), written from what a program sends a terminal.

The first line is a JSON object, the header: {"version": 2, "width": W, "height": H, ...}; every
line after it is one output event, [time in seconds, "o", the characters written], with times
that never go back. (https://docs.asciinema.org/manual/asciicast/v2/)
"""

from __future__ import annotations

import json
import time
from typing import Callable, TextIO

from lstm_repl.terminal_text import terminal_line

VERSION = 2


class CastWriter:
    """A file-like object for prompt_toolkit's Vt100_Output: each write becomes one "o" event,
    stamped by `clock` (seconds; the first write's time need not be 0)."""

    encoding = "utf-8"

    def __init__(self, file: TextIO, width: int, height: int, clock: Callable[[], float],
                 title: str | None = None, env: dict[str, str] | None = None):
        self.file, self.clock, self.last = file, clock, 0.0
        header = {"version": VERSION, "width": width, "height": height, "timestamp": int(time.time()),
                  "env": env or {"TERM": "xterm-256color", "SHELL": "/bin/sh"}}
        if title:
            header["title"] = terminal_line(title)  # a player may print it: a file or model name is data
        self.file.write(json.dumps(header) + "\n")
        self.events = 0

    def write(self, data: str) -> None:
        if not data:
            return
        self.last = max(self.last, self.clock())  # times never go back
        self.file.write(json.dumps([round(self.last, 6), "o", data], ensure_ascii=False) + "\n")
        self.events += 1

    def flush(self) -> None:
        self.file.flush()

    def isatty(self) -> bool:
        return False  # so prompt_toolkit asks it for no cursor position report
