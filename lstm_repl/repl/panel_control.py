"""The panel as a prompt_toolkit control that hands out its lines as they are.

A FormattedTextControl takes one flat list of fragments and splits it into lines again each time
prompt_toolkit asks for the content or the height (several times a frame); with a panel of a few
thousand fragments that was most of a frame's cost. This control gets its lines already split, and
keeps the UIContent made from them until the lines change.
"""

from __future__ import annotations

from typing import Callable

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout.controls import GetLinePrefixCallable, UIContent, UIControl

FragmentLines = list[StyleAndTextTuples]


class PanelControl(UIControl):
    def __init__(self, get_lines: Callable[[int], FragmentLines]):
        """get_lines(width) -> the panel's lines; the same list object while nothing changed."""
        self.get_lines = get_lines
        self._content: tuple[int, UIContent] | None = None  # (id of the lines, their content)

    def create_content(self, width: int, height: int) -> UIContent:
        lines = self.get_lines(width)
        if self._content is None or self._content[0] != id(lines):
            content = UIContent(get_line=lambda i: lines[i] if i < len(lines) else [], line_count=len(lines),
                                show_cursor=False)
            self._content = (id(lines), content)
        return self._content[1]

    def preferred_height(self, width: int, max_available_height: int, wrap_lines: bool,
                         get_line_prefix: GetLinePrefixCallable | None) -> int:
        return len(self.get_lines(width))

    def is_focusable(self) -> bool:
        return False
