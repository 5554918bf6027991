"""The live panel as pure functions: a Snapshot + display settings + a width -> lines.

No torch, no prompt_toolkit. This module puts the panel together: the header, the top-k
predictions, the gate bars (units_view.py) and the strip (strip_view.py), and decides what gives
way when the height does not hold them all. Every line is built with the layout kit (layout.py)
at a fixed, computed width (never wider than the width asked for), so the panel does not jitter
and rich never has to wrap or shrink anything. How single values are drawn is in drawing.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rich.cells import cell_len

from lstm_repl.shell.drawing import (
    TRACK,
    clamp_layer,
    hidden_size,
    memory_symbol,
    shown_quantities,
    unsigned_bar,
)
from lstm_repl.shell.layout import BOLD, DIM, PLAIN, Line, Lines, Run, make_style, wrap_pieces
from lstm_repl.shell.strip_view import STRIP_MAX_LINES, strip_view
from lstm_repl.shell.units_view import DEFAULT_MAX_UNITS, gate_bars_view, select_units, units_that_fit, valid_pinned
from lstm_repl.snapshot import Snapshot
from lstm_repl.terminal_text import visible_token

_PROB_COLOUR = "#d0d0d0"  # top-k bars: not a quantity

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
    labels: dict[tuple[int, int], str] = field(default_factory=dict)  # (layer, unit) -> "in-quotes 0.93"



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
    bar_style = make_style(_PROB_COLOUR, TRACK)
    for rank, (text, (_, p)) in enumerate(zip(shown, top)):
        line = Line().add(" " * _TOP_K_INDENT).add(text, BOLD if rank == 0 else PLAIN, token_width).add(" ")
        line.add(unsigned_bar(p, bar_width), bar_style).add(" ").add(_percent(p).rjust(_PERCENT))
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
    layer = clamp_layer(snapshot, settings.layer)
    pieces = [[("layer ", DIM), (f"{layer + 1} of {len(snapshot.layers)}", BOLD)]]
    if units:
        pinned = valid_pinned(hidden_size(snapshot, layer), settings.units)
        why = "pinned" if pinned else f"largest |Δ{memory_symbol(snapshot.layers[layer])}|"
        if len(pinned) > len(units):
            why += f", {len(pinned) - len(units)} more do not fit"
        pieces.append([("units ", DIM), (" ".join(map(str, units)), PLAIN), (f" ({why})", DIM)])
    return pieces


# ----------------------------------------------------------------------------- the panel


def render_panel(snapshot: Snapshot, settings: PanelSettings, width: int, height: int | None = None) -> Lines:
    """Header, top-k, gate bars, strip; every line fits `width`. With a `height`, see _within_height."""
    width = max(1, width)
    layer = clamp_layer(snapshot, settings.layer) if snapshot.layers else 0
    fitting = units_that_fit(snapshot, width, max(1, settings.max_units))
    units = select_units(snapshot, layer, fitting, settings.units)
    header = header_view(snapshot, settings, units, width)
    top = top_k_view(snapshot, settings.top_k, width)
    labels = {unit: text for (at, unit), text in settings.labels.items() if at == layer}
    bars = gate_bars_view(snapshot, layer, units, width, labels=labels)
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
    derived_notes = sum(q.derived for q in shown_quantities(snapshot, layer)) if snapshot.layers else 0
    bars = bars.head(len(bars) - derived_notes)
    if len(bars) + _TOP_K_MIN_LINES <= budget:  # keep all bars, top-k gets the rest
        return header + top.head(budget - len(bars)) + bars
    if len(top) >= _TOP_K_MIN_LINES and budget >= _TOP_K_MIN_LINES:
        top = top.head(_TOP_K_MIN_LINES)
    else:
        top = Lines()
    return header + top + bars.head(budget - len(top))
