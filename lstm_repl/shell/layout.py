"""The layout kit of the panel: lines of styled runs laid out to an exact cell width.

It owns the Lines renderable, the Line builder, cropping and centring text to a width, cached styles
and colour mixing, and wrapping pieces of text onto lines. It knows nothing of models or quantities;
the views (views.py, units_view.py, strip_view.py) decide what the lines say.
"""

from __future__ import annotations

from functools import lru_cache

from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style

ELLIPSIS = "…"  # the last cell of cropped text
PIECE_SEPARATOR = "  "  # between pieces that share a line


@lru_cache(maxsize=None)
def make_style(color: str | None = None, bgcolor: str | None = None, bold: bool = False, dim: bool = False) -> Style:
    """One Style object per combination, so runs compare and convert to fragments cheaply."""
    return Style(color=color, bgcolor=bgcolor, bold=bold or None, dim=dim or None)


DIM = make_style(dim=True)
PLAIN = Style()
BOLD = make_style(bold=True)


def mix_colours(a: str, b: str, t: float) -> str:
    """The '#rrggbb' colour a fraction `t` of the way from `a` to `b`."""
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(_rgb(a), _rgb(b)))


def _rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(colour[start : start + 2], 16) for start in (1, 3, 5))


def fit(text: str, width: int) -> str:
    """Pad or crop (with …) to exactly `width` cells."""
    if width <= 0:
        return ""
    if cell_len(text) > width:
        return set_cell_size(text, width - cell_len(ELLIPSIS)) + ELLIPSIS
    return set_cell_size(text, width)


def centre(text: str, width: int) -> str:
    """Exactly `width` cells with the text in the middle (an odd spare cell goes left)."""
    text = fit(text, width)
    stripped = text.rstrip()
    pad = width - cell_len(stripped)
    return " " * (pad - pad // 2) + stripped + " " * (pad // 2) if pad > 0 else text


Run = tuple[str, Style]  # text and its style; a line is a list of runs


class Lines:
    """Pre-laid-out lines of (text, Style) runs, each line no wider than `width` cells, so nothing
    wraps or shrinks. A rich renderable; fragments.AnsiLines writes it without rich's help."""

    __slots__ = ("lines", "width")

    def __init__(self, lines: list[list[Run]] | None = None, width: int = 0) -> None:
        self.lines: list[list[Run]] = lines if lines is not None else []
        self.width = width  # the widest line, in cells

    @classmethod
    def of(cls, lines: list[Line]) -> Lines:
        return cls([line.runs for line in lines], max((line.width for line in lines), default=0))

    def __len__(self) -> int:
        return len(self.lines)

    def __add__(self, other: Lines) -> Lines:
        return Lines(self.lines + other.lines, max(self.width, other.width))

    def head(self, count: int) -> Lines:
        return Lines(self.lines[: max(0, count)], self.width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        new_line = Segment.line()
        for line in self.lines:
            for text, style in line:
                yield Segment(text, style)
            yield new_line

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.width, self.width)


class Line:
    """One line being built: runs added left to right, its width in cells kept as it grows."""

    __slots__ = ("runs", "width")

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.width = 0

    def add(self, text: str, style: Style = PLAIN, width: int | None = None) -> Line:
        """Append a run; with `width`, the text is first padded or cropped to exactly that many cells."""
        if width is not None:
            text = fit(text, width)
        if text:
            self.runs.append((text, style))
            self.width += width if width is not None else cell_len(text)
        return self

    def add_runs(self, runs: list[Run], width: int) -> Line:
        """Append ready-made runs that together take `width` cells."""
        self.runs.extend(runs)
        self.width += width
        return self


def wrap_pieces(pieces: list[list[Run]], width: int, sep: str = PIECE_SEPARATOR) -> list[Line]:
    """Lay pieces (each a list of runs) on lines no wider than `width`; a piece never splits
    unless it alone is too wide (then it is cropped with …)."""
    lines: list[Line] = []
    line = Line()
    for piece in pieces:
        piece_width = sum(cell_len(text) for text, _ in piece)
        needed = piece_width + (cell_len(sep) if line.width else 0)
        if line.width and line.width + needed > width:
            lines.append(line)
            line = Line()
        if line.width:
            line.add(sep, DIM)
        _add_cropped(line, piece, width - line.width)
    if line.width:
        lines.append(line)
    return lines


def _add_cropped(line: Line, piece: list[Run], room: int) -> None:
    """Add the piece's runs while there is room; the run that reaches the edge is cropped with …."""
    for text, style in piece:
        if room <= 0:
            break
        text = fit(text, room) if cell_len(text) > room else text
        line.add(text, style)
        room -= cell_len(text)
