"""The live panel as pure functions: a Snapshot + display settings + a width -> rich renderables.

No torch, no prompt_toolkit. Every line is built here with a fixed, computed width (never wider than
the width asked for), so the panel does not jitter and rich never has to wrap or shrink anything.
Text alone carries the meaning (bar lengths, sparkline heights, numbers); colour is extra, and
each quantity has the same colour in every view (PALETTE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style

from lstm_repl.quantities import Quantity
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
_SPARK = "▁▂▃▄▅▆▇█"  # strip: one character per unit, height = value on the quantity's range
_VISIBLE = {"\n": "⏎", " ": "␣", "\t": "⇥", "\r": "␍"}

STRIP_MAX_LINES = 16  # in a height-limited panel the strips take at most this many lines
_NUMBER = 5  # cells of a printed value: " 0.83", "-0.42", " 12.3"
_MEAN = 11  # " mean  0.53" at the end of a strip


@dataclass
class PanelSettings:
    layer: int = 0  # which layer the gate bars and the strip show (0-based)
    units: list[int] | None = None  # pinned unit indices; None or []: the units that changed most
    top_k: int = 5  # next-token predictions listed
    max_units: int = 12  # unit columns at most (fewer when the width does not fit them)


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


def visible_token(text: str | None) -> str:
    """A token's text with whitespace and control characters made visible: ⏎ ␣ ⇥ ␍ \\x07."""
    if text is None:
        return ""
    if text == "":
        return "∅"
    out = []
    for ch in text:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def format_value(v: float) -> str:
    """Exactly 5 cells: ' 0.83', '-0.42', ' 12.3', ' -123', '  nan'."""
    if not math.isfinite(v):
        s = "nan" if math.isnan(v) else ("+inf" if v > 0 else "-inf")
    elif abs(v) < 0.005:
        s = "0.00"  # never "-0.00"
    elif abs(v) < 9.995:
        s = f"{v:.2f}"
    elif abs(v) < 99.95:
        s = f"{v:.1f}"
    elif abs(v) < 99999.5:
        s = f"{v:.0f}"
    else:
        s = f"{v:.0e}".replace("+", "").replace("e0", "e")
    return s.rjust(_NUMBER)[:_NUMBER]


def _fit(text: str, width: int) -> str:
    """Pad or crop (with …) to exactly `width` cells."""
    if width <= 0:
        return ""
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…"
    return set_cell_size(text, width)


def _centre(text: str, width: int) -> str:
    text = _fit(text, width)
    stripped = text.rstrip()
    pad = width - cell_len(stripped)
    return " " * (pad - pad // 2) + stripped + " " * (pad // 2) if pad > 0 else text


@lru_cache(maxsize=None)
def _style(color: str | None = None, bgcolor: str | None = None, bold: bool = False, dim: bool = False) -> Style:
    return Style(color=color, bgcolor=bgcolor, bold=bold or None, dim=dim or None)


def _mix(a: str, b: str, t: float) -> str:
    ra, ga, ba = int(a[1:3], 16), int(a[3:5], 16), int(a[5:7], 16)
    rb, gb, bb = int(b[1:3], 16), int(b[3:5], 16), int(b[5:7], 16)
    return "#%02x%02x%02x" % (round(ra + (rb - ra) * t), round(ga + (gb - ga) * t), round(ba + (bb - ba) * t))


_DIM = _style(dim=True)
_PLAIN = Style()
_BOLD = _style(bold=True)


# ----------------------------------------------------------------------------- the renderable


Run = tuple[str, Style]  # text and its style; a line is a list of runs


class Lines:
    """Pre-laid-out lines of (text, Style) runs, each line no wider than `width` cells, so nothing
    wraps or shrinks. A rich renderable; fragments.to_fragments converts it without rich's help."""

    __slots__ = ("lines", "width")

    def __init__(self, lines: list[list[Run]] | None = None, width: int = 0) -> None:
        self.lines: list[list[Run]] = lines if lines is not None else []
        self.width = width  # the widest line, in cells

    @classmethod
    def of(cls, lines: list[_Line]) -> Lines:
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


class _Line:
    __slots__ = ("runs", "width")

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.width = 0

    def add(self, text: str, style: Style = _PLAIN, width: int | None = None) -> _Line:
        if width is not None:
            text = _fit(text, width)
        if text:
            self.runs.append((text, style))
            self.width += width if width is not None else cell_len(text)
        return self


def _wrap_pieces(pieces: list[list[Run]], width: int, sep: str = "  ") -> list[_Line]:
    """Lay pieces (each a list of runs) on lines no wider than `width`; a piece never splits
    unless it alone is too wide (then it is cropped with …)."""
    lines: list[_Line] = []
    line = _Line()
    for piece in pieces:
        piece_width = sum(cell_len(t) for t, _ in piece)
        needed = piece_width + (cell_len(sep) if line.width else 0)
        if line.width and line.width + needed > width:
            lines.append(line)
            line = _Line()
        if line.width:
            line.add(sep, _DIM)
        room = width - line.width
        for text, style in piece:
            if room <= 0:
                break
            text = _fit(text, room) if cell_len(text) > room else text
            line.add(text, style)
            room -= cell_len(text)
    if line.width:
        lines.append(line)
    return lines


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


def _change(snapshot: Snapshot, layer: int) -> np.ndarray | None:
    values = snapshot.layers[layer]
    symbol = "c" if "c" in values else "h"
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
    return max((cell_len(quantity_label(q, snapshot.quantities)) for q in snapshot.quantities), default=8) + 1


# ----------------------------------------------------------------------------- bars


def _unsigned_bar(fraction: float, width: int) -> str:
    eighths = round(min(max(fraction, 0.0), 1.0) * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[rest] if rest else "")).ljust(width)


def _signed_bar(value: float, low: float, high: float, width: int) -> str:
    """Drawn from the centre: negative grows left (half-cell steps), positive grows right (eighths)."""
    half = width // 2
    if value >= 0:
        return " " * half + _unsigned_bar(value / high if high > 0 else 0.0, width - half)
    halves = round(min(value / low if low < 0 else 0.0, 1.0) * half * 2)
    full, rest = divmod(halves, 2)
    return ("▐" * rest + "█" * full).rjust(half) + " " * (width - half)


def value_bar(value: float, q: Quantity, width: int) -> str:
    """A bar of exactly `width` cells for a value on the quantity's range (clipped; the number says more)."""
    if not math.isfinite(value):
        return " " * width
    if q.low < 0 < q.high:
        return _signed_bar(value, q.low, q.high, width)
    span = q.high - q.low
    return _unsigned_bar((value - q.low) / span if span > 0 else 0.0, width)


def _bar_geometry(width: int, label_width: int, max_units: int) -> tuple[int, int]:
    """(bar cells, units that fit): the widest bars that still fit max_units columns, else narrow
    bars and fewer units. A column is ' ' + bar + ' ' + 5-cell number."""
    for bar in (8, 6, 4):
        if label_width + max_units * (bar + 2 + _NUMBER) <= width:
            return bar, max_units
    bar = 4
    return bar, max(0, min(max_units, (width - label_width) // (bar + 2 + _NUMBER)))


def units_that_fit(snapshot: Snapshot, width: int, max_units: int = 12) -> int:
    return _bar_geometry(width, _label_width(snapshot), max_units)[1]


def gate_bars_view(snapshot: Snapshot, layer: int, units: list[int], width: int, bar: int | None = None) -> Lines:
    """One column per unit (header '#17'), one row per quantity: a bar and the value."""
    if not snapshot.layers or not units:
        return Lines()
    layer = _clamp_layer(snapshot, layer)
    values = snapshot.layers[layer]
    label_width = _label_width(snapshot)
    if bar is None:
        bar = _bar_geometry(width, label_width, len(units))[0]
    column = bar + 2 + _NUMBER
    units = units[: max(0, (width - label_width) // column)]
    if not units:
        return Lines()
    head = _Line().add("unit", _DIM, label_width)
    for unit in units:
        head.add(" " + _centre(f"#{unit}", column - 1), _BOLD)
    lines = [head]
    for q in _shown_quantities(snapshot, layer):
        colour = quantity_colour(q.symbol)
        bar_style = _style(colour, _TRACK)
        line = _Line().add(quantity_label(q, snapshot.quantities), _style(colour, bold=True), label_width)
        row = values[q.symbol]
        for unit in units:
            v = float(row[unit])
            outside = math.isfinite(v) and not (q.low <= v <= q.high)
            line.add(" ").add(value_bar(v, q, bar), bar_style).add(" ")
            line.add(format_value(v), _BOLD if outside else _PLAIN)
        lines.append(line)
    for q in _shown_quantities(snapshot, layer):
        if q.derived:
            hint = _derived_hint(q, snapshot.quantities)
            how = f"{q.symbol} = {hint}" if hint else "computed from the others"
            text = f"{q.name} {q.symbol} is derived: {how}, not a gate with weights of its own"
            lines.append(_Line().add(text, _DIM, min(width, cell_len(text))))
    return Lines.of(lines)


# ----------------------------------------------------------------------------- strip


@lru_cache(maxsize=None)
def _strip_styles(symbol: str, signed: bool) -> tuple[Style, ...]:
    colour = quantity_colour(symbol)
    styles = []
    for level in range(len(_SPARK)):
        if signed:
            magnitude = abs(level - 3.5) / 3.5
            target = colour if level >= 4 else _NEGATIVE
            styles.append(_style(_mix(_DARK, target, 0.3 + 0.7 * magnitude)))
        else:
            styles.append(_style(_mix(_DARK, colour, 0.25 + 0.75 * level / 7)))
    return tuple(styles)


def _strip_levels(row: np.ndarray, q: Quantity) -> np.ndarray:
    span = q.high - q.low if q.high > q.low else 1.0
    t = (np.nan_to_num(np.asarray(row, dtype=np.float32), nan=q.low) - q.low) / span
    return np.clip((t * len(_SPARK)).astype(np.int64), 0, len(_SPARK) - 1)


def _strip_runs(levels: np.ndarray, styles: tuple[Style, ...]) -> list[Run]:
    """Run-length: one run per stretch of equal levels."""
    if len(levels) == 0:
        return []
    starts = np.flatnonzero(np.diff(levels)) + 1
    bounds = [0, *starts.tolist(), len(levels)]
    runs = levels[bounds[:-1]].tolist()
    return [(_SPARK[lv] * (b - a), styles[lv]) for lv, a, b in zip(runs, bounds[:-1], bounds[1:])]


def _strip_per_line(hidden: int, room: int) -> int:
    """Units per strip line: all of them if they fit, else a multiple of 8 (easier to count);
    0 when the terminal is too narrow for a strip."""
    if room < 8:
        return 0
    per_line = room
    if 16 <= per_line < hidden:
        per_line -= per_line % 8
    return per_line


def strip_height(snapshot: Snapshot, layer: int, width: int) -> int:
    """Lines the full strip_view will take (title and means included), without building it."""
    if not snapshot.layers:
        return 0
    layer = _clamp_layer(snapshot, layer)
    per_line = _strip_per_line(_hidden(snapshot, layer), width - _label_width(snapshot) - _MEAN)
    if not per_line:
        return 0
    return 2 + len(_shown_quantities(snapshot, layer)) * _lines_per_strip(snapshot, layer, per_line)


def _lines_per_strip(snapshot: Snapshot, layer: int, per_line: int) -> int:
    return max(1, -(-_hidden(snapshot, layer) // per_line))


def _strip_order(quantities: list[Quantity]) -> list[Quantity]:
    """Which strips go first when not all fit: the memory (c, else h), then display order."""
    memory = next((q for q in quantities if q.symbol == "c"), None) or next((q for q in quantities if q.symbol == "h"), None)
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
    if not per_line or (max_lines is not None and max_lines < 2 + _lines_per_strip(snapshot, layer, per_line)):
        return Lines()
    shown = _shown_quantities(snapshot, layer)
    room = len(shown) if max_lines is None else (max_lines - 2) // _lines_per_strip(snapshot, layer, per_line)
    chosen = {q.symbol for q in _strip_order(shown)[:room]}
    title = f"all {hidden} units of layer {layer + 1}: height = value ({_SPARK[0]} low … {_SPARK[-1]} high)"
    lines = [_Line().add(title, _DIM, min(width, cell_len(title))), _means_line(snapshot, values, shown, width)]
    for q in shown:
        if q.symbol in chosen:
            lines.extend(_strip_lines(snapshot, q, values[q.symbol], label_width, per_line))
    return Lines.of(lines)


def _means_line(snapshot: Snapshot, values: dict, shown: list[Quantity], width: int) -> _Line:
    line = _Line().add("means".ljust(_label_width(snapshot)), _DIM)
    for q in shown:
        row = values[q.symbol]
        finite = np.isfinite(row)
        piece = f"{q.symbol} {format_value(float(np.mean(row[finite])) if finite.any() else float('nan'))}   "
        if line.width + len(piece) > width:
            break
        line.add(piece, _style(quantity_colour(q.symbol), bold=True))
    return line


def _strip_lines(snapshot: Snapshot, q: Quantity, row: np.ndarray, label_width: int, per_line: int) -> list[_Line]:
    levels = _strip_levels(row, q)
    styles = _strip_styles(q.symbol, q.low < 0 < q.high)
    finite = np.isfinite(row)
    mean = float(np.mean(row[finite])) if finite.any() else float("nan")
    lines = []
    for start in range(0, len(row), per_line):
        line = _Line()
        if start == 0:
            line.add(quantity_label(q, snapshot.quantities), _style(quantity_colour(q.symbol), bold=True), label_width)
        else:
            line.add(" " * label_width)
        chunk = levels[start : start + per_line]
        line.runs.extend(_strip_runs(chunk, styles))
        line.width += len(chunk)
        if start == 0:
            line.add(" " * (per_line - len(chunk)))
            line.add(" mean", _DIM).add(" " + format_value(mean))
        lines.append(line)
    return lines


# ----------------------------------------------------------------------------- top-k and header


def top_k_view(snapshot: Snapshot, k: int, width: int) -> Lines:
    """'next token' and the k most likely next tokens, each with a probability bar and percent."""
    top = snapshot.top[: max(0, k)]
    title = f"next token (top {len(top)})" if top else "next token: no predictions"
    lines = [_Line().add(title, _DIM, min(width, cell_len(title)))]
    if not top or width < 14:
        return Lines.of(lines)
    shown = [visible_token(text) for text, _ in top]
    token_width = min(max(3, max(cell_len(s) for s in shown)), max(3, width // 4))
    bar_width = max(1, min(40, width - 2 - token_width - 1 - 1 - 6))
    bar_style = _style(_PROB_COLOUR, _TRACK)
    for rank, (text, (_, p)) in enumerate(zip(shown, top)):
        line = _Line().add("  ").add(text, _BOLD if rank == 0 else _PLAIN, token_width).add(" ")
        line.add(_unsigned_bar(p, bar_width), bar_style).add(" ").add(_percent(p).rjust(6))
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
    pieces: list[list[tuple[str, Style]]] = []
    if snapshot.token is None:
        pieces.append([("nothing read yet", _DIM)])
    else:
        token = visible_token(snapshot.token)
        pieces.append([("read ", _DIM), (token, _BOLD), (f" (token {snapshot.position})", _DIM)])
        if snapshot.surprisal_bits is not None:
            surprise = [("surprisal ", _DIM), (f"{snapshot.surprisal_bits:.2f} bits", _BOLD)]
            if snapshot.probability is not None:
                surprise.append((f" (p {snapshot.probability:.3f})", _DIM))
            pieces.append(surprise)
    if snapshot.layers:
        layer = _clamp_layer(snapshot, settings.layer)
        pieces.append([("layer ", _DIM), (f"{layer + 1} of {len(snapshot.layers)}", _BOLD)])
        if units:
            pinned = _valid_pinned(_hidden(snapshot, layer), settings.units)
            why = "pinned" if pinned else f"largest |Δ{'c' if 'c' in snapshot.layers[layer] else 'h'}|"
            if len(pinned) > len(units):
                why += f", {len(pinned) - len(units)} more do not fit"
            pieces.append([("units ", _DIM), (" ".join(map(str, units)), _PLAIN), (f" ({why})", _DIM)])
    return Lines.of(_wrap_pieces(pieces, width))


# ----------------------------------------------------------------------------- the panel


def render_panel(snapshot: Snapshot, settings: PanelSettings, width: int, height: int | None = None) -> Lines:
    """Header, top-k, gate bars, strip; every line fits `width`. With a `height`, strips go first
    (the cell state's last), then the derived-quantity note, then top-k rows, then quantity rows."""
    width = max(1, width)
    layer = _clamp_layer(snapshot, settings.layer) if snapshot.layers else 0
    fit = units_that_fit(snapshot, width, max(1, settings.max_units))
    units = select_units(snapshot, layer, fit, settings.units)
    header = header_view(snapshot, settings, units, width)
    top = top_k_view(snapshot, settings.top_k, width)
    bars = gate_bars_view(snapshot, layer, units, width)
    if height is None:
        return header + top + bars + strip_view(snapshot, layer, width)
    budget = max(0, height - len(header))
    header = header.head(height)
    if len(top) + len(bars) <= budget:  # the strip takes what is left: as many quantities as fit
        room = min(budget - len(top) - len(bars), STRIP_MAX_LINES)
        return header + top + bars + strip_view(snapshot, layer, width, room)
    derived_notes = sum(q.derived for q in _shown_quantities(snapshot, layer)) if snapshot.layers else 0
    bars = bars.head(len(bars) - derived_notes)
    if len(bars) + 2 <= budget:  # keep all bars, top-k gets the rest (title + at least one row)
        return header + top.head(budget - len(bars)) + bars
    if len(top) >= 2 and budget >= 2:
        top = top.head(2)  # title + the most likely token
    else:
        top = Lines()
    return header + top + bars.head(budget - len(top))
