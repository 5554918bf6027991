"""The strip: every unit of a layer, one spark character each (height and colour = value), one
strip per quantity, wrapped when the layer is wider than the terminal."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from rich.cells import cell_len
from rich.style import Style

from lstm_repl.quantities import Quantity
from lstm_repl.shell.drawing import (
    MEMORY_SYMBOLS,
    NUMBER_WIDTH,
    clamp_layer,
    format_value,
    hidden_size,
    label_column_width,
    label_style,
    quantity_colour,
    quantity_label,
    shown_quantities,
)
from lstm_repl.shell.layout import DIM, Line, Lines, Run, make_style, mix_colours
from lstm_repl.snapshot import Snapshot

_DARK = "#3a3a3a"  # the faint end of strip colours
_NEGATIVE = "#c6c6c6"  # strip colour of strongly negative values (signed quantities)
_SPARK = "▁▂▃▄▅▆▇█"  # one character per unit, height = value on the quantity's range
_SPARK_TOP = len(_SPARK) - 1  # the highest level
_SPARK_MIDDLE = _SPARK_TOP / 2  # the level of zero on a signed quantity's symmetric range
STRIP_MAX_LINES = 16  # in a height-limited panel the strips take at most this many lines
_STRIP_HEAD_LINES = 2  # the title and the means line
_STRIP_MIN_UNITS = 8  # no strip when fewer units than this fit on a line
_STRIP_GROUP = 8  # wrapped strip lines hold a multiple of this many units: easier to count
_STRIP_GROUPED_FROM = 2 * _STRIP_GROUP  # shorter lines are not rounded down: it would waste too much of them
_MEAN = len(" mean ") + NUMBER_WIDTH  # " mean  0.53" at the end of a strip
# How far from _DARK towards the colour the faintest level goes, so low values still show.
_SIGNED_FAINTEST = 0.3
_UNSIGNED_FAINTEST = 0.25


@lru_cache(maxsize=None)
def _strip_styles(symbol: str, signed: bool) -> tuple[Style, ...]:
    """A style per spark level, fading in from _DARK: signed quantities towards _NEGATIVE below
    zero and their colour above it, the others towards their colour as the level rises."""
    colour = quantity_colour(symbol)
    styles = []
    for level in range(len(_SPARK)):
        if signed:
            magnitude = abs(level - _SPARK_MIDDLE) / _SPARK_MIDDLE
            target = colour if level > _SPARK_MIDDLE else _NEGATIVE
            share = _SIGNED_FAINTEST + (1 - _SIGNED_FAINTEST) * magnitude
        else:
            target, share = colour, _UNSIGNED_FAINTEST + (1 - _UNSIGNED_FAINTEST) * level / _SPARK_TOP
        styles.append(make_style(mix_colours(_DARK, target, share)))
    return tuple(styles)


def _strip_levels(row: np.ndarray, q: Quantity) -> np.ndarray:
    span = q.high - q.low if q.high > q.low else 1.0
    t = (np.nan_to_num(np.asarray(row, dtype=np.float32), nan=q.low) - q.low) / span
    return np.clip((t * len(_SPARK)).astype(np.int64), 0, _SPARK_TOP)


def _strip_runs(levels: np.ndarray, styles: tuple[Style, ...]) -> list[Run]:
    """Run-length: one run per stretch of equal levels."""
    if len(levels) == 0:
        return []
    starts = np.flatnonzero(np.diff(levels)) + 1
    bounds = [0, *starts.tolist(), len(levels)]
    runs = levels[bounds[:-1]].tolist()
    return [(_SPARK[lv] * (b - a), styles[lv]) for lv, a, b in zip(runs, bounds[:-1], bounds[1:])]


def _strip_per_line(hidden: int, room: int) -> int:
    """Units per strip line: all of them if they fit, else a multiple of _STRIP_GROUP;
    0 when the terminal is too narrow for a strip."""
    if room < _STRIP_MIN_UNITS:
        return 0
    per_line = room
    if _STRIP_GROUPED_FROM <= per_line < hidden:
        per_line -= per_line % _STRIP_GROUP
    return per_line


def strip_height(snapshot: Snapshot, layer: int, width: int) -> int:
    """Lines the full strip_view will take (title and means included), without building it."""
    if not snapshot.layers:
        return 0
    layer = clamp_layer(snapshot, layer)
    per_line = _strip_per_line(hidden_size(snapshot, layer), width - label_column_width(snapshot) - _MEAN)
    if not per_line:
        return 0
    return _STRIP_HEAD_LINES + len(shown_quantities(snapshot, layer)) * _lines_per_strip(snapshot, layer, per_line)


def _lines_per_strip(snapshot: Snapshot, layer: int, per_line: int) -> int:
    return max(1, -(-hidden_size(snapshot, layer) // per_line))


def _strip_order(quantities: list[Quantity]) -> list[Quantity]:
    """Which strips go first when not all fit: the memory (c, else h), then display order."""
    memory = next((q for symbol in MEMORY_SYMBOLS for q in quantities if q.symbol == symbol), None)
    return ([memory] if memory else []) + [q for q in quantities if q is not memory]


def strip_view(snapshot: Snapshot, layer: int, width: int, max_lines: int | None = None) -> Lines:
    """Every unit of the layer, one character each (height and colour = value), one strip per
    quantity, wrapped when the layer is wider than the terminal; a line of every quantity's mean.
    With max_lines, as many strips as fit, the cell state's first."""
    if not snapshot.layers:
        return Lines()
    layer = clamp_layer(snapshot, layer)
    values = snapshot.layers[layer]
    label_width = label_column_width(snapshot)
    hidden = hidden_size(snapshot, layer)
    per_line = _strip_per_line(hidden, width - label_width - _MEAN)
    if not per_line:
        return Lines()
    per_strip = _lines_per_strip(snapshot, layer, per_line)
    if max_lines is not None and max_lines < _STRIP_HEAD_LINES + per_strip:
        return Lines()
    shown = shown_quantities(snapshot, layer)
    room = len(shown) if max_lines is None else (max_lines - _STRIP_HEAD_LINES) // per_strip
    chosen = {q.symbol for q in _strip_order(shown)[:room]}
    title = f"all {hidden} units of layer {layer + 1}: height = value ({_SPARK[0]} low … {_SPARK[-1]} high)"
    lines = [Line().add(title, DIM, min(width, cell_len(title))), _means_line(snapshot, values, shown, width)]
    for q in shown:
        if q.symbol in chosen:
            lines.extend(_strip_lines(snapshot, q, values[q.symbol], label_width, per_line))
    return Lines.of(lines)


def _row_mean(row: np.ndarray) -> float:
    finite = np.isfinite(row)
    return float(np.mean(row[finite])) if finite.any() else float("nan")


def _means_line(snapshot: Snapshot, values: dict, shown: list[Quantity], width: int) -> Line:
    line = Line().add("means".ljust(label_column_width(snapshot)), DIM)
    for q in shown:
        piece = f"{q.symbol} {format_value(_row_mean(values[q.symbol]))}   "
        if line.width + len(piece) > width:
            break
        line.add(piece, label_style(q.symbol))
    return line


def _strip_lines(snapshot: Snapshot, q: Quantity, row: np.ndarray, label_width: int, per_line: int) -> list[Line]:
    """The quantity's strip: its label and the first units, the mean at the end of that line;
    further lines (indented under the label) for the units that did not fit."""
    levels = _strip_levels(row, q)
    styles = _strip_styles(q.symbol, q.low < 0 < q.high)
    lines = []
    for start in range(0, len(row), per_line):
        line = Line()
        if start == 0:
            line.add(quantity_label(q, snapshot.quantities), label_style(q.symbol), label_width)
        else:
            line.add(" " * label_width)
        chunk = levels[start : start + per_line]
        line.add_runs(_strip_runs(chunk, styles), len(chunk))
        if start == 0:
            line.add(" " * (per_line - len(chunk)))
            line.add(" mean", DIM).add(" " + format_value(_row_mean(row)))
        lines.append(line)
    return lines
