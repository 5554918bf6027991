"""How the panel draws one quantity and one value: each quantity's colour (PALETTE) and label, a
value as a five-cell number or as a bar in eighths of a cell; and the small questions every view
asks of a snapshot's layers. (A token's text is shown by terminal_text.visible_token.)
Text alone carries the meaning (bar lengths, numbers); colour is extra, and each quantity has the
same colour in every view.
"""

from __future__ import annotations

import math

import numpy as np
from rich.cells import cell_len
from rich.style import Style

from lstm_repl.quantities import Quantity
from lstm_repl.shell.layout import make_style
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

TRACK = "#262626"  # background of an empty bar

_EIGHTHS = " ▏▎▍▌▋▊▉"  # left-aligned partial blocks, index = eighths of a cell
_EIGHTHS_PER_CELL = len(_EIGHTHS)
_FULL_BLOCK = "█"
_RIGHT_HALF_BLOCK = "▐"  # negative bars grow leftwards in half cells
_HALVES_PER_CELL = 2
MEMORY_SYMBOLS = ("c", "h")  # the cell state; cells without one (GRU, RNN) carry memory in h

NUMBER_WIDTH = 5  # cells of a printed value: " 0.83", "-0.42", " 12.3"
_LABEL_GAP = 1  # cells between the widest quantity label and what follows it
_NO_LABELS_WIDTH = 8  # label column of a snapshot without quantities


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
        hint = derived_hint(q, quantities)
        label += f" ={hint.replace(' ', '')}" if hint else "*"
    return label


def derived_hint(q: Quantity, quantities: tuple[Quantity, ...]) -> str | None:
    needs, formula = DERIVED_HINTS.get(q.symbol, ("", ""))
    return formula if needs and any(other.symbol == needs for other in quantities) else None


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
    return s.rjust(NUMBER_WIDTH)[:NUMBER_WIDTH]


def hidden_size(snapshot: Snapshot, layer: int) -> int:
    return len(next(iter(snapshot.layers[layer].values()), ()))


def clamp_layer(snapshot: Snapshot, layer: int) -> int:
    return max(0, min(layer, len(snapshot.layers) - 1))


def shown_quantities(snapshot: Snapshot, layer: int) -> list[Quantity]:
    values = snapshot.layers[layer] if snapshot.layers else {}
    return [q for q in snapshot.quantities if q.symbol in values]


def label_column_width(snapshot: Snapshot) -> int:
    labels = (cell_len(quantity_label(q, snapshot.quantities)) for q in snapshot.quantities)
    return max(labels, default=_NO_LABELS_WIDTH) + _LABEL_GAP


def label_style(symbol: str) -> Style:
    return make_style(quantity_colour(symbol), bold=True)


def memory_symbol(values: dict[str, np.ndarray]) -> str:
    return MEMORY_SYMBOLS[0] if MEMORY_SYMBOLS[0] in values else MEMORY_SYMBOLS[1]



# ----------------------------------------------------------------------------- bars


def unsigned_bar(fraction: float, width: int) -> str:
    fraction = fraction if math.isfinite(fraction) else 0.0
    eighths = round(min(max(fraction, 0.0), 1.0) * width * _EIGHTHS_PER_CELL)
    full, rest = divmod(eighths, _EIGHTHS_PER_CELL)
    return (_FULL_BLOCK * full + (_EIGHTHS[rest] if rest else "")).ljust(width)


def _signed_bar(value: float, low: float, high: float, width: int) -> str:
    """Drawn from the centre: negative grows left (half-cell steps), positive grows right (eighths)."""
    half = width // 2
    if value >= 0:
        return " " * half + unsigned_bar(value / high if high > 0 else 0.0, width - half)
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
    return unsigned_bar((value - q.low) / span if span > 0 else 0.0, width)
