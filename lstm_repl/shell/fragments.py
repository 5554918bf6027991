"""Rich renderables -> lines of escape-coded text for the panel writer (AnsiLines).

A reused rich Console per (width, color) renders the lines; each Segment's Style becomes a
prompt_toolkit style string ("fg:#rrggbb bg:#rrggbb bold dim italic underline reverse"), cached per
Style, whose escape code the terminal's output gives. Fragments are plain (style, text) tuples, as
prompt_toolkit takes formatted text (the status line: one_line).
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any, Callable, Iterable

from rich.cells import cell_len, chop_cells, set_cell_size
from rich.color import Color, ColorType
from rich.console import Console, RenderableType
from rich.style import Style

from lstm_repl.shell.layout import Lines
from lstm_repl.terminal_text import terminal_line

Fragments = list[tuple[str, str]]

# rich's standard colour numbers 0-15 -> prompt_toolkit's ANSI names (they follow the terminal theme)
_ANSI_NAMES = (
    "ansiblack", "ansired", "ansigreen", "ansiyellow", "ansiblue", "ansimagenta", "ansicyan", "ansigray",
    "ansibrightblack", "ansibrightred", "ansibrightgreen", "ansibrightyellow", "ansibrightblue",
    "ansibrightmagenta", "ansibrightcyan", "ansiwhite",
)  # fmt: skip
_ATTRIBUTES = ("bold", "dim", "italic", "underline", "blink", "reverse", "strike", "conceal")
_PT_NAME = {"conceal": "hidden"}
_style_cache: dict[tuple[Style, bool], str] = {}


@lru_cache(maxsize=8)
def console_for(width: int, color: bool) -> Console:
    """One Console per (width, color), reused across frames; it writes nowhere."""
    return Console(
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor" if color else None,
        width=max(1, width),
        legacy_windows=False,
        highlight=False,
        emoji=False,
        markup=False,
    )


def _colour(color: Color) -> str | None:
    if color.type == ColorType.DEFAULT:
        return None
    if color.type in (ColorType.STANDARD, ColorType.WINDOWS) and color.number is not None and color.number < 16:
        return _ANSI_NAMES[color.number]
    return color.get_truecolor().hex


def style_string(style: Style | None, color: bool = True) -> str:
    """A rich Style as a prompt_toolkit style string; color=False keeps attributes, drops colours."""
    if style is None:
        return ""
    key = (style, color)
    cached = _style_cache.get(key)
    if cached is not None:
        return cached
    parts = []
    if color:
        if style.color is not None and (fg := _colour(style.color)):
            parts.append(f"fg:{fg}")
        if style.bgcolor is not None and (bg := _colour(style.bgcolor)):
            parts.append(f"bg:{bg}")
    for attribute in _ATTRIBUTES:
        if getattr(style, attribute):
            parts.append(_PT_NAME.get(attribute, attribute))
    result = " ".join(parts)
    if len(_style_cache) > 4096:
        _style_cache.clear()
    _style_cache[key] = result
    return result


def _rendered_lines(renderable: RenderableType, width: int, color: bool) -> Iterable[Iterable[tuple[Any, ...]]]:
    """Lines of (text, Style, ...) runs; a layout.Lines that fits the width skips rich entirely."""
    if isinstance(renderable, Lines) and renderable.width <= width:
        return renderable.lines
    console = console_for(width, color)
    return console.render_lines(renderable, console.options, pad=False)


class AnsiLines:
    """Rich renderables -> one string per line with the escape codes that style it, for writing
    straight to a terminal (repl/panel_control.py). `escape(style string)` gives the code that sets
    a prompt_toolkit style string (at the terminal's colour depth); the codes are cached per Style."""

    def __init__(self, escape: Callable[[str], str], color: bool = True):
        self.escape, self.color = escape, color
        self._codes: dict[int, str] = {}  # id(style) -> its escape code
        self._styles: list[Style | None] = []  # the styles in _codes, held so their ids stay theirs

    def lines(self, renderable: RenderableType, width: int) -> list[str]:
        return [self._line(line) for line in _rendered_lines(renderable, width, self.color)]

    def _line(self, line: Iterable[tuple[Any, ...]]) -> str:
        codes, parts, last = self._codes, [], None
        append = parts.append
        for run in line:
            text = run[0]
            if not text or (len(run) > 2 and run[2]):  # a rich Segment's control codes
                continue
            code = codes.get(id(run[1])) or self._code(run[1])
            if code is not last:  # one string object per style: identity is enough
                append(code)
                last = code
            # the views show data safely already; this is the last guard (isprintable: cheap, and
            # False for every character terminal_line changes)
            append(text if text.isprintable() else terminal_line(text))
        return "".join(parts)

    def _code(self, style: Style | None) -> str:
        if len(self._styles) > 4096:
            self._codes.clear()
            self._styles.clear()
        self._styles.append(style)
        code = self._codes[id(style)] = self.escape(style_string(style, self.color))
        return code


def wrapped(text: str, width: int) -> list[str]:
    """Text cut into lines of at most `width` cells (no line when there is no text)."""
    return chop_cells(text, max(1, width)) if text else []


def one_line(fragments: Fragments, width: int, escape: Callable[[str], str]) -> str:
    """prompt_toolkit fragments as one line of escape-coded text, cut at `width` cells; their text
    (a model's name, a message naming a file) shown safely."""
    parts, room = [], width
    for style, text, *_ in fragments:
        if room <= 0:
            break
        text = terminal_line(text)
        if cell_len(text) > room:
            text = set_cell_size(text, room)
        parts.append(escape(style) + text)
        room -= cell_len(text)
    return "".join(parts)


def to_text(renderable: RenderableType, width: int) -> str:
    """Plain text (no styles, trailing spaces removed), for tests and output that is not a terminal."""
    console = console_for(width, False)
    lines = console.render_lines(renderable, console.options, pad=False)
    return "\n".join("".join(segment.text for segment in line if not segment.control).rstrip() for line in lines)
