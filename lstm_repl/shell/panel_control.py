"""Everything under the input line, written to the terminal a line at a time by the shell itself.

prompt_toolkit copies every character of a window into its screen, registers a mouse handler for
every cell, and then compares the whole screen cell by cell with the last one; for the panel's few
thousand cells that was 7-15 ms of a keystroke's frame, more than the model's step. So the layout
is the input line (prompt_toolkit's, for editing) and a PanelArea under it, which only takes its
rows: prompt_toolkit sees them blank, so they cost it nothing. After each frame PanelWriter writes
the changed lines into them (the stream, the rule, the panel, the status line), moving the cursor
there from where prompt_toolkit left it and back again. Whenever prompt_toolkit redraws from
scratch (a resize, text printed above) every line is written again.
"""

from __future__ import annotations

import io
from typing import Callable

from prompt_toolkit.application import Application
from prompt_toolkit.data_structures import Size
from prompt_toolkit.layout import Container, Dimension
from prompt_toolkit.layout.mouse_handlers import MouseHandlers
from prompt_toolkit.layout.screen import Screen, WritePosition
from prompt_toolkit.output import ColorDepth
from prompt_toolkit.output.vt100 import Vt100_Output
from prompt_toolkit.styles import BaseStyle, Style

from lstm_repl.shell.fragments import AnsiLines

_ERASE_REST = "\x1b[0m\x1b[K"  # reset the attributes, then clear to the end of the line


class PanelArea(Container):
    """A place in the layout for lines PanelWriter writes: as many rows as there are lines."""

    def __init__(self, get_lines: Callable[[int], list[str]]):
        """get_lines(width) -> the lines, each as text with the escape codes that style it."""
        self.get_lines = get_lines
        self.place: WritePosition | None = None  # where the last frame put it, if anywhere

    def reset(self) -> None:
        self.place = None

    def preferred_width(self, max_available_width: int) -> Dimension:
        return Dimension()

    def preferred_height(self, width: int, max_available_height: int) -> Dimension:
        rows = len(self.get_lines(width))
        return Dimension(min=0, preferred=rows, max=rows)

    def write_to_screen(self, screen: Screen, mouse_handlers: MouseHandlers, write_position: WritePosition,
                        parent_style: str, erase_bg: bool, z_index: int | None) -> None:
        self.place = write_position
        # the rows count as used, as a Window's would: prompt_toolkit then makes room for them
        # (scrolling the terminal when the app starts near its bottom)
        screen.height = max(screen.height, write_position.ypos + write_position.height)

    def get_children(self) -> list[Container]:
        return []


class PanelWriter:
    """Writes an area's lines into the rows it was given, after each frame."""

    def __init__(self, app: Application, area: PanelArea):
        self.app, self.area = app, area
        self._written: dict[int, str] = {}  # screen row -> the line written there
        self._screen: Screen | None = None  # prompt_toolkit's screen when we last wrote
        self._escapes: EscapeCodes | None = None
        app.before_render += self._before_render
        app.after_render += self._after_render

    def _before_render(self, _app) -> None:
        self.area.place = None
        renderer = self.app.renderer
        if renderer._last_screen is not self._screen or renderer._last_size != self.app.output.get_size():
            self._written.clear()  # prompt_toolkit erases and redraws everything this frame

    def _after_render(self, _app) -> None:
        screen = self.app.renderer._last_screen
        if screen is None or self.app.is_done:  # erased: at exit, or before printing above
            self._written.clear()
            self._screen = None
            return
        self._screen = screen
        wanted = self._wanted_rows()
        changed = {row: line for row, line in wanted.items() if self._written.get(row) != line}
        vacated = [row for row in self._written if row not in wanted]
        if changed or vacated:
            self._write(screen, changed, vacated)

    def escape(self, style_string: str) -> str:
        """The escape code that sets a prompt_toolkit style string in this app's terminal."""
        style, depth = self.app.renderer.style, self.app.color_depth
        if self._escapes is None or (self._escapes.style, self._escapes.depth) != (style, depth):
            self._escapes = EscapeCodes(style, depth)
        return self._escapes(style_string)

    def _wanted_rows(self) -> dict[int, str]:
        place = self.area.place
        if place is None:
            return {}
        lines = self.area.get_lines(place.width)
        rows = min(len(lines), place.height, self.app.output.get_size().rows - place.ypos)
        return {place.ypos + index: lines[index] for index in range(max(0, rows))}

    def _write(self, screen: Screen, changed: dict[int, str], vacated: list[int]) -> None:
        home = screen.get_cursor_position(self.app.layout.current_window)
        out, at_row = ["\x1b[?25l\x1b[?7l"], home.y  # hide the cursor, no autowrap
        for row in sorted(set(changed) | set(vacated)):
            out.append(_move(at_row, row))
            at_row = row
            if row in changed:
                out.append(changed[row])
                self._written[row] = changed[row]
            else:
                out.append(self._screen_row(screen, row))  # what prompt_toolkit has there now
                del self._written[row]
            out.append(_ERASE_REST)
        out.append(_move(at_row, home.y) + (f"\x1b[{home.x}C" if home.x else ""))
        out.append("\x1b[?7h" + ("\x1b[?25h" if screen.show_cursor else ""))
        self.app.output.write_raw("".join(out))
        self.app.output.flush()

    def _screen_row(self, screen: Screen, row: int) -> str:
        cells = screen.data_buffer[row]
        parts, column, end = [], 0, max(cells, default=-1)
        while column <= end:
            cell = cells[column]
            parts.append(self.escape(cell.style) + cell.char)
            column += cell.width or 1
        return "".join(parts)


def _move(from_row: int, to_row: int) -> str:
    """Cursor up or down to another row, then to its first column (never scrolls)."""
    if to_row > from_row:
        return f"\x1b[{to_row - from_row}B\r"
    if to_row < from_row:
        return f"\x1b[{from_row - to_row}A\r"
    return "\r"


class EscapeCodes:
    """A prompt_toolkit style string -> the escape code that sets it (attributes reset first) with
    `style` at colour `depth`; worked out once per style string through prompt_toolkit's own output."""

    def __init__(self, style: BaseStyle, depth: ColorDepth):
        self.style, self.depth = style, depth
        self._codes: dict[str, str] = {}
        self._buffer = io.StringIO()
        self._vt100 = Vt100_Output(self._buffer, lambda: Size(rows=1, columns=1), term="xterm")

    def __call__(self, style_string: str) -> str:
        code = self._codes.get(style_string)
        if code is None:
            self._vt100.set_attributes(self.style.get_attrs_for_style_str(style_string), self.depth)
            self._vt100.flush()
            code = self._codes[style_string] = self._buffer.getvalue()
            self._buffer.seek(0)
            self._buffer.truncate()
        return code


def truecolor_lines() -> AnsiLines:
    """The panel's lines as a 24-bit colour terminal gets them, without an app (for benchmarks)."""
    return AnsiLines(EscapeCodes(Style([]), ColorDepth.TRUE_COLOR))
