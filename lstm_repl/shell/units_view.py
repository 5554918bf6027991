"""The gate bars: which units are drawn (pinned, or those whose memory changed most at this token)
and a column per unit, a row per quantity, each a bar and its value."""

from __future__ import annotations

import math

import numpy as np
from rich.cells import cell_len

from lstm_repl.quantities import Quantity
from lstm_repl.shell.drawing import (
    NUMBER_WIDTH,
    TRACK,
    clamp_layer,
    derived_hint,
    format_value,
    hidden_size,
    label_column_width,
    label_style,
    memory_symbol,
    quantity_colour,
    quantity_label,
    shown_quantities,
    value_bar,
)
from lstm_repl.shell.layout import BOLD, DIM, PLAIN, Line, Lines, centre, make_style
from lstm_repl.snapshot import Snapshot
from lstm_repl.terminal_text import terminal_line

# A column per unit is ' ' + bar + ' ' + number.
_BAR_WIDTHS = (8, 6, 4)  # tried widest first; narrower bars before fewer units
_COLUMN_GAPS = 2  # the spaces before the bar and between the bar and its number
DEFAULT_MAX_UNITS = 12


def select_units(snapshot: Snapshot, layer: int, count: int, pinned: list[int] | None = None) -> list[int]:
    """The units to draw: valid pinned units in the given order, else the `count` units whose cell
    state (h, for cells without c) changed most at this token, most changed first."""
    if not snapshot.layers or count <= 0:
        return []
    layer = clamp_layer(snapshot, layer)
    hidden = hidden_size(snapshot, layer)
    valid = valid_pinned(hidden, pinned)
    if valid:
        return valid[:count]
    delta = _change(snapshot, layer)
    if delta is None:
        return list(range(min(count, hidden)))
    order = np.argsort(-delta, kind="stable")
    return [int(u) for u in order[:count]]


def valid_pinned(hidden: int, pinned: list[int] | None) -> list[int]:
    """Pinned units inside the layer, first occurrence of each, in the order given."""
    valid: list[int] = []
    for unit in pinned or ():
        if 0 <= unit < hidden and unit not in valid:
            valid.append(int(unit))
    return valid


def _change(snapshot: Snapshot, layer: int) -> np.ndarray | None:
    values = snapshot.layers[layer]
    symbol = memory_symbol(values)
    if symbol not in values or layer >= len(snapshot.previous_cell):
        return None
    delta = np.abs(np.asarray(values[symbol], dtype=np.float64) - np.asarray(snapshot.previous_cell[layer]))
    return np.nan_to_num(delta, nan=0.0)


def _column_width(bar: int) -> int:
    return _COLUMN_GAPS + bar + NUMBER_WIDTH


def _bar_geometry(width: int, label_width: int, max_units: int) -> tuple[int, int]:
    """(bar cells, units that fit): the widest bars that still fit max_units columns, else the
    narrowest bars and fewer units."""
    for bar in _BAR_WIDTHS:
        if label_width + max_units * _column_width(bar) <= width:
            return bar, max_units
    bar = _BAR_WIDTHS[-1]
    return bar, max(0, min(max_units, (width - label_width) // _column_width(bar)))


def units_that_fit(snapshot: Snapshot, width: int, max_units: int = DEFAULT_MAX_UNITS) -> int:
    return _bar_geometry(width, label_column_width(snapshot), max_units)[1]


def gate_bars_view(snapshot: Snapshot, layer: int, units: list[int], width: int, bar: int | None = None,
                   labels: dict[int, str] | None = None) -> Lines:
    """One column per unit (header '#17'), one row per quantity: a bar and the value; under the
    header, what a unit was found to track (`labels`: unit -> "in-quotes 0.93"), if any is shown."""
    if not snapshot.layers or not units:
        return Lines()
    layer = clamp_layer(snapshot, layer)
    label_width = label_column_width(snapshot)
    if bar is None:
        bar = _bar_geometry(width, label_width, len(units))[0]
    column = _column_width(bar)
    units = units[: max(0, (width - label_width) // column)]
    if not units:
        return Lines()
    shown = shown_quantities(snapshot, layer)
    values = snapshot.layers[layer]
    rows = [_bar_row(snapshot, q, values[q.symbol], units, label_width, bar) for q in shown]
    head = [_unit_header(units, label_width, column)]
    if labels and any(unit in labels for unit in units):
        head.append(_label_row(units, labels, label_width, column))
    return Lines.of([*head, *rows, *_derived_notes(snapshot, shown, width)])


def _label_row(units: list[int], labels: dict[int, str], label_width: int, column: int) -> Line:
    row = Line().add("tracks", DIM, label_width)
    for unit in units:
        row.add(" " + centre(terminal_line(labels.get(unit, "")), column - 1), DIM)  # units.json is data
    return row


def _unit_header(units: list[int], label_width: int, column: int) -> Line:
    head = Line().add("unit", DIM, label_width)
    for unit in units:
        head.add(" " + centre(f"#{unit}", column - 1), BOLD)  # '#17' centred after the column's first gap
    return head


def _bar_row(snapshot: Snapshot, q: Quantity, row: np.ndarray, units: list[int], label_width: int, bar: int) -> Line:
    """The quantity's label, then per unit a bar and its value (bold when outside the range)."""
    bar_style = make_style(quantity_colour(q.symbol), TRACK)
    line = Line().add(quantity_label(q, snapshot.quantities), label_style(q.symbol), label_width)
    for unit in units:
        value = float(row[unit])
        outside = math.isfinite(value) and not (q.low <= value <= q.high)
        line.add(" ").add(value_bar(value, q, bar), bar_style).add(" ")
        line.add(format_value(value), BOLD if outside else PLAIN)
    return line


def _derived_notes(snapshot: Snapshot, shown: list[Quantity], width: int) -> list[Line]:
    notes = []
    for q in shown:
        if q.derived:
            hint = derived_hint(q, snapshot.quantities)
            how = f"{q.symbol} = {hint}" if hint else "computed from the others"
            text = f"{q.name} {q.symbol} is derived: {how}, not a gate with weights of its own"
            notes.append(Line().add(text, DIM, min(width, cell_len(text))))
    return notes
