"""The live panel as pure functions: a Snapshot + display settings + a width -> rich renderables.

No torch, no prompt_toolkit. This module owns what the panel means: the colour of each quantity
(PALETTE), quantity labels, which units are drawn, the gate bars, the strip of every unit, the
top-k predictions, the header, and how render_panel fits them into a height. The lines themselves
are built with the layout kit (layout.py) at a fixed, computed width (never wider than the width
asked for), so the panel does not jitter and rich never has to wrap or shrink anything.
Text alone carries the meaning (bar lengths, sparkline heights, numbers); colour is extra, and
each quantity has the same colour in every view (PALETTE).
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rich.cells import cell_len
from rich.style import Style

from lstm_repl.quantities import Quantity
from lstm_repl.repl.layout import BOLD, DIM, PLAIN, Line, Lines, Run, centre, make_style, mix_colours, wrap_pieces
from lstm_repl.snapshot import Snapshot

# One colour per quantity symbol, used by every view (LSTM f i o g c h, GRU r z n).
PALETTE: dict[str, str] = {
    "f": "#ff8700",  # forget: orange
    "i": "#5fd75f",  # input: green
    "o": "#5f87ff",  # output: blue
    "g": "#d75fd7",  # candidate: magenta
    "c": "#ffd700",  # cell: yellow
    "h": "#00d7d7",  # hidden: cyan
    "r": "#ff5f5f",  # reset: red
    "z": "#afd700",  # update: lime
    "n": "#af87ff",  # new (GRU candidate): violet
}
_FALLBACK_COLOURS = ("#87d7af", "#d7af87", "#87afd7", "#d787af", "#afafaf")
# Hints for derived quantities, shown when the quantities they come from are present.
DERIVED_HINTS: dict[str, tuple[str, str]] = {"i": ("f", "1 − f")}  # symbol -> (needs, formula)

_DARK = "#3a3a3a"  # the faint end of strip colours
_NEGATIVE = "#c6c6c6"  # strip colour of strongly negative values (signed quantities)
_TRACK = "#262626"  # background of an empty bar
_PROB_COLOUR = "#d0d0d0"  # top-k bars: not a quantity

_EIGHTHS = " ▏▎▍▌▋▊▉"  # left-aligned partial blocks, index = eighths of a cell
_EIGHTHS_PER_CELL = len(_EIGHTHS)
_FULL_BLOCK = "█"
_RIGHT_HALF_BLOCK = "▐"  # negative bars grow leftwards in half cells
_HALVES_PER_CELL = 2
_SPARK = "▁▂▃▄▅▆▇█"  # strip: one character per unit, height = value on the quantity's range
_SPARK_TOP = len(_SPARK) - 1  # the highest level
_SPARK_MIDDLE = _SPARK_TOP / 2  # the level of zero on a signed quantity's symmetric range
_VISIBLE = {"\n": "⏎", " ": "␣", "\t": "⇥", "\r": "␍"}
_MEMORY_SYMBOLS = ("c", "h")  # the cell state; cells without one (GRU, RNN) carry memory in h

_NUMBER = 5  # cells of a printed value: " 0.83", "-0.42", " 12.3"
_LABEL_GAP = 1  # cells between the widest quantity label and what follows it
_NO_LABELS_WIDTH = 8  # label column of a snapshot without quantities

# Gate bars: a column per unit is ' ' + bar + ' ' + number.
_BAR_WIDTHS = (8, 6, 4)  # tried widest first; narrower bars before fewer units
_COLUMN_GAPS = 2  # the spaces before the bar and between the bar and its number
DEFAULT_MAX_UNITS = 12

# Strip: every unit of a layer, one spark character each.
STRIP_MAX_LINES = 16  # in a height-limited panel the strips take at most this many lines
_STRIP_HEAD_LINES = 2  # the title and the means line
_STRIP_MIN_UNITS = 8  # no strip when fewer units than this fit on a line
_STRIP_GROUP = 8  # wrapped strip lines hold a multiple of this many units: easier to count
_STRIP_GROUPED_FROM = 2 * _STRIP_GROUP  # shorter lines are not rounded down: it would waste too much of them
_MEAN = len(" mean ") + _NUMBER  # " mean  0.53" at the end of a strip
# How far from _DARK towards the colour the faintest level goes, so low values still show.
_SIGNED_FAINTEST = 0.3
_UNSIGNED_FAINTEST = 0.25

# Top-k rows: indent, token, ' ', bar, ' ', percent.
_TOP_K_INDENT = 2
_TOP_K_GAPS = 2
_TOKEN_MIN = 3
_TOKEN_MAX_SHARE = 4  # the token column takes at most a quarter of the width
_PERCENT = len("100.0%")
_PROB_BAR_MAX = 40  # a wider bar adds no precision and moves the percent far from its token
_TOP_K_MIN_WIDTH = _TOP_K_INDENT + _TOKEN_MIN + _TOP_K_GAPS + 1 + _PERCENT  # room for a one-cell bar
_TOP_K_MIN_LINES = 2  # the title and the most likely token


@dataclass
class PanelSettings:
    layer: int = 0  # which layer the gate bars and the strip show (0-based)
    units: list[int] | None = None  # pinned unit indices; None or []: the units that changed most
    top_k: int = 5  # next-token predictions listed
    max_units: int = DEFAULT_MAX_UNITS  # unit columns at most (fewer when the width does not fit them)


# ----------------------------------------------------------------------------- small helpers


def quantity_colour(symbol: str) -> str:
    if symbol in PALETTE:
        return PALETTE[symbol]
    return _FALLBACK_COLOURS[sum(map(ord, symbol)) % len(_FALLBACK_COLOURS)]


def quantity_label(q: Quantity, quantities: tuple[Quantity, ...] = ()) -> str:
    """'forget f', 'cell c', 'candidate g'; a derived quantity gets its formula ('input i =1−f') or a '*'."""
    words = q.name.split()
    if len(words) > 1 and words[-1] in ("gate", "state"):
        words = words[:-1]
    label = f"{' '.join(words)} {q.symbol}"
    if q.derived:
        hint = _derived_hint(q, quantities)
        label += f" ={hint.replace(' ', '')}" if hint else "*"
    return label


def _derived_hint(q: Quantity, quantities: tuple[Quantity, ...]) -> str | None:
    needs, formula = DERIVED_HINTS.get(q.symbol, ("", ""))
    return formula if needs and any(other.symbol == needs for other in quantities) else None


_UNSURE_WIDTH = {"Mn", "Mc", "Me", "Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}  # marks, controls, format, unassigned


def visible_token(text: str | None) -> str:
    """A token's text with whitespace and control characters made visible: ⏎ ␣ ⇥ ␍ \\x07; and
    characters a terminal may draw at a width other than the one counted (combining marks,
    joiners, direction marks, other invisible ones) as their code point: U+200D."""
    if text is None:
        return ""
    if text == "":
        return "∅"
    return "".join(_visible_char(ch) for ch in text)


def _visible_char(ch: str) -> str:
    if ch in _VISIBLE:
        return _VISIBLE[ch]
    if ord(ch) < 0x20 or ord(ch) == 0x7F:  # the other ASCII control characters
        return f"\\x{ord(ch):02x}"
    if unicodedata.category(ch) in _UNSURE_WIDTH:
        return f"U+{ord(ch):04X}"
    return ch


def format_value(v: float) -> str:
    """Exactly 5 cells: ' 0.83', '-0.42', ' 12.3', ' -123', '  nan'."""
    if not math.isfinite(v):
        s = "nan" if math.isnan(v) else ("+inf" if v > 0 else "-inf")
    elif abs(v) < 0.005:
        s = "0.00"  # never "-0.00"
    elif abs(v) < 9.995:  # each bound: the largest value that does not round up into more digits
        s = f"{v:.2f}"
    elif abs(v) < 99.95:
        s = f"{v:.1f}"
    elif abs(v) < 99999.5:
        s = f"{v:.0f}"
    else:
        s = f"{v:.0e}".replace("+", "").replace("e0", "e")
    return s.rjust(_NUMBER)[:_NUMBER]


# ----------------------------------------------------------------------------- unit choice


def select_units(snapshot: Snapshot, layer: int, count: int, pinned: list[int] | None = None) -> list[int]:
    """The units to draw: valid pinned units in the given order, else the `count` units whose cell
    state (h, for cells without c) changed most at this token, most changed first."""
    if not snapshot.layers or count <= 0:
        return []
    layer = _clamp_layer(snapshot, layer)
    hidden = _hidden(snapshot, layer)
    valid = _valid_pinned(hidden, pinned)
    if valid:
        return valid[:count]
    delta = _change(snapshot, layer)
    if delta is None:
        return list(range(min(count, hidden)))
    order = np.argsort(-delta, kind="stable")
    return [int(u) for u in order[:count]]


def _valid_pinned(hidden: int, pinned: list[int] | None) -> list[int]:
    """Pinned units inside the layer, first occurrence of each, in the order given."""
    valid: list[int] = []
    for unit in pinned or ():
        if 0 <= unit < hidden and unit not in valid:
            valid.append(int(unit))
    return valid


def _memory_symbol(values: dict[str, np.ndarray]) -> str:
    return _MEMORY_SYMBOLS[0] if _MEMORY_SYMBOLS[0] in values else _MEMORY_SYMBOLS[1]


def _change(snapshot: Snapshot, layer: int) -> np.ndarray | None:
    values = snapshot.layers[layer]
    symbol = _memory_symbol(values)
    if symbol not in values or layer >= len(snapshot.previous_cell):
        return None
    delta = np.abs(np.asarray(values[symbol], dtype=np.float64) - np.asarray(snapshot.previous_cell[layer]))
    return np.nan_to_num(delta, nan=0.0)


def _hidden(snapshot: Snapshot, layer: int) -> int:
    return len(next(iter(snapshot.layers[layer].values()), ()))


def _clamp_layer(snapshot: Snapshot, layer: int) -> int:
    return max(0, min(layer, len(snapshot.layers) - 1))


def _shown_quantities(snapshot: Snapshot, layer: int) -> list[Quantity]:
    values = snapshot.layers[layer] if snapshot.layers else {}
    return [q for q in snapshot.quantities if q.symbol in values]


def _label_width(snapshot: Snapshot) -> int:
    labels = (cell_len(quantity_label(q, snapshot.quantities)) for q in snapshot.quantities)
    return max(labels, default=_NO_LABELS_WIDTH) + _LABEL_GAP


def _label_style(symbol: str) -> Style:
    return make_style(quantity_colour(symbol), bold=True)


# ----------------------------------------------------------------------------- bars


def _unsigned_bar(fraction: float, width: int) -> str:
    fraction = fraction if math.isfinite(fraction) else 0.0
    eighths = round(min(max(fraction, 0.0), 1.0) * width * _EIGHTHS_PER_CELL)
    full, rest = divmod(eighths, _EIGHTHS_PER_CELL)
    return (_FULL_BLOCK * full + (_EIGHTHS[rest] if rest else "")).ljust(width)


def _signed_bar(value: float, low: float, high: float, width: int) -> str:
    """Drawn from the centre: negative grows left (half-cell steps), positive grows right (eighths)."""
    half = width // 2
    if value >= 0:
        return " " * half + _unsigned_bar(value / high if high > 0 else 0.0, width - half)
    halves = round(min(value / low if low < 0 else 0.0, 1.0) * half * _HALVES_PER_CELL)
    full, rest = divmod(halves, _HALVES_PER_CELL)
    return (_RIGHT_HALF_BLOCK * rest + _FULL_BLOCK * full).rjust(half) + " " * (width - half)


def value_bar(value: float, q: Quantity, width: int) -> str:
    """A bar of exactly `width` cells for a value on the quantity's range (clipped; the number says more)."""
    if not math.isfinite(value):
        return " " * width
    if q.low < 0 < q.high:
        return _signed_bar(value, q.low, q.high, width)
    span = q.high - q.low
    return _unsigned_bar((value - q.low) / span if span > 0 else 0.0, width)


def _column_width(bar: int) -> int:
    return _COLUMN_GAPS + bar + _NUMBER


def _bar_geometry(width: int, label_width: int, max_units: int) -> tuple[int, int]:
    """(bar cells, units that fit): the widest bars that still fit max_units columns, else the
    narrowest bars and fewer units."""
    for bar in _BAR_WIDTHS:
        if label_width + max_units * _column_width(bar) <= width:
            return bar, max_units
    bar = _BAR_WIDTHS[-1]
    return bar, max(0, min(max_units, (width - label_width) // _column_width(bar)))


def units_that_fit(snapshot: Snapshot, width: int, max_units: int = DEFAULT_MAX_UNITS) -> int:
    return _bar_geometry(width, _label_width(snapshot), max_units)[1]


def gate_bars_view(snapshot: Snapshot, layer: int, units: list[int], width: int, bar: int | None = None) -> Lines:
    """One column per unit (header '#17'), one row per quantity: a bar and the value."""
    if not snapshot.layers or not units:
        return Lines()
    layer = _clamp_layer(snapshot, layer)
    label_width = _label_width(snapshot)
    if bar is None:
        bar = _bar_geometry(width, label_width, len(units))[0]
    column = _column_width(bar)
    units = units[: max(0, (width - label_width) // column)]
    if not units:
        return Lines()
    shown = _shown_quantities(snapshot, layer)
    values = snapshot.layers[layer]
    rows = [_bar_row(snapshot, q, values[q.symbol], units, label_width, bar) for q in shown]
    return Lines.of([_unit_header(units, label_width, column), *rows, *_derived_notes(snapshot, shown, width)])


def _unit_header(units: list[int], label_width: int, column: int) -> Line:
    head = Line().add("unit", DIM, label_width)
    for unit in units:
        head.add(" " + centre(f"#{unit}", column - 1), BOLD)  # '#17' centred after the column's first gap
    return head


def _bar_row(snapshot: Snapshot, q: Quantity, row: np.ndarray, units: list[int], label_width: int, bar: int) -> Line:
    """The quantity's label, then per unit a bar and its value (bold when outside the range)."""
    bar_style = make_style(quantity_colour(q.symbol), _TRACK)
    line = Line().add(quantity_label(q, snapshot.quantities), _label_style(q.symbol), label_width)
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
            hint = _derived_hint(q, snapshot.quantities)
            how = f"{q.symbol} = {hint}" if hint else "computed from the others"
            text = f"{q.name} {q.symbol} is derived: {how}, not a gate with weights of its own"
            notes.append(Line().add(text, DIM, min(width, cell_len(text))))
    return notes


# ----------------------------------------------------------------------------- strip


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
    layer = _clamp_layer(snapshot, layer)
    per_line = _strip_per_line(_hidden(snapshot, layer), width - _label_width(snapshot) - _MEAN)
    if not per_line:
        return 0
    return _STRIP_HEAD_LINES + len(_shown_quantities(snapshot, layer)) * _lines_per_strip(snapshot, layer, per_line)


def _lines_per_strip(snapshot: Snapshot, layer: int, per_line: int) -> int:
    return max(1, -(-_hidden(snapshot, layer) // per_line))


def _strip_order(quantities: list[Quantity]) -> list[Quantity]:
    """Which strips go first when not all fit: the memory (c, else h), then display order."""
    memory = next((q for symbol in _MEMORY_SYMBOLS for q in quantities if q.symbol == symbol), None)
    return ([memory] if memory else []) + [q for q in quantities if q is not memory]


def strip_view(snapshot: Snapshot, layer: int, width: int, max_lines: int | None = None) -> Lines:
    """Every unit of the layer, one character each (height and colour = value), one strip per
    quantity, wrapped when the layer is wider than the terminal; a line of every quantity's mean.
    With max_lines, as many strips as fit, the cell state's first."""
    if not snapshot.layers:
        return Lines()
    layer = _clamp_layer(snapshot, layer)
    values = snapshot.layers[layer]
    label_width = _label_width(snapshot)
    hidden = _hidden(snapshot, layer)
    per_line = _strip_per_line(hidden, width - label_width - _MEAN)
    if not per_line:
        return Lines()
    per_strip = _lines_per_strip(snapshot, layer, per_line)
    if max_lines is not None and max_lines < _STRIP_HEAD_LINES + per_strip:
        return Lines()
    shown = _shown_quantities(snapshot, layer)
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
    line = Line().add("means".ljust(_label_width(snapshot)), DIM)
    for q in shown:
        piece = f"{q.symbol} {format_value(_row_mean(values[q.symbol]))}   "
        if line.width + len(piece) > width:
            break
        line.add(piece, _label_style(q.symbol))
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
            line.add(quantity_label(q, snapshot.quantities), _label_style(q.symbol), label_width)
        else:
            line.add(" " * label_width)
        chunk = levels[start : start + per_line]
        line.add_runs(_strip_runs(chunk, styles), len(chunk))
        if start == 0:
            line.add(" " * (per_line - len(chunk)))
            line.add(" mean", DIM).add(" " + format_value(_row_mean(row)))
        lines.append(line)
    return lines


# ----------------------------------------------------------------------------- top-k and header


def top_k_view(snapshot: Snapshot, k: int, width: int) -> Lines:
    """'next token' and the k most likely next tokens, each with a probability bar and percent."""
    top = snapshot.top[: max(0, k)]
    title = f"next token (top {len(top)})" if top else "next token: no predictions"
    lines = [Line().add(title, DIM, min(width, cell_len(title)))]
    if not top or width < _TOP_K_MIN_WIDTH:
        return Lines.of(lines)
    shown = [visible_token(text) for text, _ in top]
    widest = max(_TOKEN_MIN, max(cell_len(s) for s in shown))
    token_width = min(widest, max(_TOKEN_MIN, width // _TOKEN_MAX_SHARE))
    bar_width = max(1, min(_PROB_BAR_MAX, width - _TOP_K_INDENT - token_width - _TOP_K_GAPS - _PERCENT))
    bar_style = make_style(_PROB_COLOUR, _TRACK)
    for rank, (text, (_, p)) in enumerate(zip(shown, top)):
        line = Line().add(" " * _TOP_K_INDENT).add(text, BOLD if rank == 0 else PLAIN, token_width).add(" ")
        line.add(_unsigned_bar(p, bar_width), bar_style).add(" ").add(_percent(p).rjust(_PERCENT))
        lines.append(line)
    return Lines.of(lines)


def _percent(p: float) -> str:
    if not math.isfinite(p):
        return "?"
    if 0 < p < 0.001:
        return "<0.1%"
    return f"{100 * p:.1f}%"


def header_view(snapshot: Snapshot, settings: PanelSettings, units: list[int], width: int) -> Lines:
    """Token just read, its probability and surprisal, the layer, and which units are drawn."""
    pieces = _token_pieces(snapshot)
    if snapshot.layers:
        pieces += _layer_pieces(snapshot, settings, units)
    return Lines.of(wrap_pieces(pieces, width))


def _token_pieces(snapshot: Snapshot) -> list[list[Run]]:
    if snapshot.token is None:
        return [[("nothing read yet", DIM)]]
    token = visible_token(snapshot.token)
    unknown = " as the unknown token" if snapshot.extras.get("unknown") else ""
    pieces = [[("read ", DIM), (token, BOLD), (f"{unknown} (token {snapshot.position})", DIM)]]
    if snapshot.surprisal_bits is not None:
        surprise = [("surprisal ", DIM), (f"{snapshot.surprisal_bits:.2f} bits", BOLD)]
        if snapshot.probability is not None:
            surprise.append((f" (p {snapshot.probability:.3f})", DIM))
        pieces.append(surprise)
    return pieces


def _layer_pieces(snapshot: Snapshot, settings: PanelSettings, units: list[int]) -> list[list[Run]]:
    layer = _clamp_layer(snapshot, settings.layer)
    pieces = [[("layer ", DIM), (f"{layer + 1} of {len(snapshot.layers)}", BOLD)]]
    if units:
        pinned = _valid_pinned(_hidden(snapshot, layer), settings.units)
        why = "pinned" if pinned else f"largest |Δ{_memory_symbol(snapshot.layers[layer])}|"
        if len(pinned) > len(units):
            why += f", {len(pinned) - len(units)} more do not fit"
        pieces.append([("units ", DIM), (" ".join(map(str, units)), PLAIN), (f" ({why})", DIM)])
    return pieces


# ----------------------------------------------------------------------------- the panel


def render_panel(snapshot: Snapshot, settings: PanelSettings, width: int, height: int | None = None) -> Lines:
    """Header, top-k, gate bars, strip; every line fits `width`. With a `height`, see _within_height."""
    width = max(1, width)
    layer = _clamp_layer(snapshot, settings.layer) if snapshot.layers else 0
    fitting = units_that_fit(snapshot, width, max(1, settings.max_units))
    units = select_units(snapshot, layer, fitting, settings.units)
    header = header_view(snapshot, settings, units, width)
    top = top_k_view(snapshot, settings.top_k, width)
    bars = gate_bars_view(snapshot, layer, units, width)
    if height is None:
        return header + top + bars + strip_view(snapshot, layer, width)
    return _within_height(snapshot, layer, width, height, header, top, bars)


def _within_height(
    snapshot: Snapshot, layer: int, width: int, height: int, header: Lines, top: Lines, bars: Lines
) -> Lines:
    """The panel in `height` lines. What gives way first: the strips (the cell state's last), then
    the derived-quantity note, then top-k rows, then quantity rows."""
    budget = max(0, height - len(header))
    header = header.head(height)
    if len(top) + len(bars) <= budget:  # the strip takes what is left: as many quantities as fit
        room = min(budget - len(top) - len(bars), STRIP_MAX_LINES)
        return header + top + bars + strip_view(snapshot, layer, width, room)
    derived_notes = sum(q.derived for q in _shown_quantities(snapshot, layer)) if snapshot.layers else 0
    bars = bars.head(len(bars) - derived_notes)
    if len(bars) + _TOP_K_MIN_LINES <= budget:  # keep all bars, top-k gets the rest
        return header + top.head(budget - len(bars)) + bars
    if len(top) >= _TOP_K_MIN_LINES and budget >= _TOP_K_MIN_LINES:
        top = top.head(_TOP_K_MIN_LINES)
    else:
        top = Lines()
    return header + top + bars.head(budget - len(top))
