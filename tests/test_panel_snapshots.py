"""Exact-output snapshots of the whole panel: hand-made Snapshots with fixed values, printed through a
recording console without colour, compared line by line with the text below. Any change to the layout
(a moved column, a different bar, a dropped line) fails these tests; colour is not compared."""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console

from lstm_repl.quantities import COUPLED_QUANTITIES, GRU_QUANTITIES, LSTM_QUANTITIES
from lstm_repl.shell.views import PanelSettings, render_panel
from lstm_repl.snapshot import Snapshot

TOP = [("e", 0.31), (" ", 0.22), ("\n", 0.09), ("th", 0.004), ("q", 0.0004)]


def _spread(hidden: int, step: int, shift: int) -> np.ndarray:
    """Fixed values in (0, 1), every unit different: ((step * unit + shift) mod hidden + 0.5) / hidden."""
    return ((np.arange(hidden) * step + shift) % hidden + 0.5) / hidden


def _lstm_layer(hidden: int, shift: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One layer's f i o g c h, and the cell state before the step, rounded to 3 decimals."""
    units = np.arange(hidden)
    f, i, o = _spread(hidden, 5, shift), _spread(hidden, 3, shift + 1), _spread(hidden, 7, shift + 2)
    g = np.round(np.sin(units + shift), 3)
    previous = np.round(0.8 * np.cos(1.3 * units + shift), 3)
    c = np.round(f * previous + i * g, 3)
    values = dict(f=f, i=i, o=o, g=g, c=c, h=np.round(o * np.tanh(c), 3))
    return {k: np.round(v, 3).astype(np.float32) for k, v in values.items()}, previous.astype(np.float32)


def lstm_snapshot(hidden: int, n_layers: int, quantities=LSTM_QUANTITIES) -> Snapshot:
    layers, previous = zip(*(_lstm_layer(hidden, shift) for shift in range(n_layers)))
    if quantities is COUPLED_QUANTITIES:
        for layer in layers:
            layer["i"] = 1 - layer["f"]  # the coupled cell's input gate has no weights of its own
    return Snapshot(7, "e", 0.183, 2.45, list(TOP), list(layers), list(previous), quantities)


def gru_snapshot(hidden: int) -> Snapshot:
    units = np.arange(hidden)
    r, z = _spread(hidden, 5, 0), _spread(hidden, 7, 3)
    n = np.round(np.sin(2 * units), 3)
    previous = np.round(0.9 * np.cos(units), 3)
    h = np.round((1 - z) * n + z * previous, 3)
    r[10] = np.nan  # a broken value is drawn as 'nan' with an empty bar, not a crash
    layer = {k: v.astype(np.float32) for k, v in dict(r=r, z=z, n=n, h=h).items()}
    return Snapshot(3, "\n", 0.5, 1.0, list(TOP), [layer], [previous.astype(np.float32)], GRU_QUANTITIES, "gru")


def printed(snapshot: Snapshot, settings: PanelSettings, width: int, height: int | None = None) -> str:
    """The panel as a recording console without colour prints it; trailing spaces removed per line."""
    panel = render_panel(snapshot, settings, width, height)
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(panel)
    text = console.export_text()
    assert len(text.splitlines()) == len(panel)  # nothing wrapped
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


LSTM_80 = """\
read e (token 7)  surprisal 2.45 bits (p 0.183)  layer 1 of 2
units 10 4 7 8 0 2 (largest |Δc|)
next token (top 5)
  e   ████████████▍                             31.0%
  ␣   ████████▊                                 22.0%
  ⏎   ███▋                                       9.0%
  th  ▏                                          0.4%
  q                                             <0.1%
unit             #10        #4         #7         #8         #0         #2
forget f     ▋     0.16 █▏    0.28 ▉     0.22 ██▏   0.53 ▏     0.03 ██▋   0.66
input i      ███▉  0.97 ███▍  0.84 █▋    0.41 ██▍   0.59 ▍     0.09 █▉    0.47
output o     ██▏   0.53 ███▋  0.91 ▉     0.22 ██▋   0.66 ▋     0.16 ▏     0.03
candidate g   █   -0.54 ▐█   -0.76   █▍  0.66   ██  0.99       0.00   █▉  0.91
cell c        █   -0.41  █   -0.53   ▎   0.10   ▊   0.35       0.03      -0.02
hidden h      ▐   -0.21  █   -0.44       0.02   ▌   0.22       0.00       0.00
all 16 units of layer 1: height = value (▁ low … █ high)
means       f  0.50   i  0.50   o  0.50   g  0.12   c  0.11   h  0.01
forget f    ▁▃▆█▃▅█▂▅▇▂▄▇▁▄▆                                          mean  0.50
input i     ▁▃▄▆▇▁▂▄▅▇█▂▃▅▆█                                          mean  0.50
output o    ▂▅▁▄█▃▇▂▆▁▅█▄▇▃▆                                          mean  0.50
candidate g ▅██▅▁▁▃▇█▆▂▁▂▆█▇                                          mean  0.12
cell c      ▅▆▄▃▂▆▄▅▆█▃▄▁▅██                                          mean  0.11
hidden h    ▅▅▄▄▃▅▄▅▅▅▄▄▃▅▅▇                                          mean  0.01
"""


def test_lstm_two_layers_at_80_columns():
    assert printed(lstm_snapshot(16, 2), PanelSettings(), 80) == LSTM_80


COUPLED_60_HEIGHT_20 = """\
read e (token 7)  surprisal 2.45 bits (p 0.183)
layer 1 of 1  units 5 1 38 7 (pinned, 1 more do not fit)
next token (top 5)
  e   ████████████▍                             31.0%
  ␣   ████████▊                                 22.0%
  ⏎   ███▋                                       9.0%
  th  ▏                                          0.4%
  q                                             <0.1%
unit              #5         #1         #38        #7
forget f      ██▌   0.64 ▌     0.14 ███   0.76 ███▌  0.89
input i =1−f  █▌    0.36 ███▌  0.86 █     0.24 ▌     0.11
output o      ███▊  0.94 █     0.24 ██▉   0.71 █▏    0.29
candidate g   ██   -0.96   █▋  0.84   ▋   0.30   █▍  0.66
cell c          ▎   0.10   ▎   0.12   █▍  0.66  ▐   -0.30
hidden h        ▎   0.09       0.03   ▉   0.41      -0.09
input gate i is derived: i = 1 − f, not a gate with weights…
all 40 units of layer 1: height = value (▁ low … █ high)
means        f  0.45   i  0.55   o  0.50   g  0.03
cell c       ▅▅▄▄▄▅▄▃▇▆▄▁▁▄▇▇▄▃▃▆█▅▂▂▂▄▇▄▅▆▄▁ mean -0.01
             ▅▇▇▃▁▁▇█
"""


def test_coupled_lstm_at_60_columns_and_20_lines_keeps_the_cell_strip():
    settings = PanelSettings(units=[5, 1, 38, 7, 20, 99])
    assert printed(lstm_snapshot(40, 1, COUPLED_QUANTITIES), settings, 60, 20) == COUPLED_60_HEIGHT_20


GRU_60_HEIGHT_9 = """\
read ⏎ (token 3)  surprisal 1.00 bits (p 0.500)
layer 1 of 1  units 10 0 5 4 (largest |Δh|)
next token (top 3)
  e   ████████████▍                             31.0%
unit             #10        #0         #5         #4
reset r             nan ▏     0.04 ▌     0.12 ██▉   0.71
update z     ▌     0.12 █▏    0.29 ▉     0.21 ██▌   0.62
candidate n    █▉  0.91       0.00  █   -0.54   ██  0.99
hidden h       █▍  0.70   ▌   0.26  █   -0.38       0.00
"""


def test_gru_at_60_columns_and_9_lines_shrinks_the_top_k():
    assert printed(gru_snapshot(12), PanelSettings(top_k=3), 60, 9) == GRU_60_HEIGHT_9
