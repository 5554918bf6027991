"""A terminal emulator (pyte) that prompt_toolkit's VT100 output writes into: the tests read back
the screen a person would see."""

from __future__ import annotations

import pyte
from prompt_toolkit.data_structures import Size


class Terminal:
    encoding = "utf-8"

    def __init__(self, columns: int = 100, rows: int = 30):
        self.size = Size(rows=rows, columns=columns)
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.Stream(self.screen)

    def write(self, data: str) -> None:
        self.stream.feed(data)

    def flush(self) -> None:
        pass

    def resize(self, columns: int, rows: int) -> None:
        self.size = Size(rows=rows, columns=columns)
        self.screen.resize(rows, columns)

    def rows(self) -> list[str]:
        return [row.rstrip() for row in self.screen.display]
