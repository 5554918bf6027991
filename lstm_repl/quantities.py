"""The per-unit quantities a recurrent cell exposes, as plain data shared by model and UI. No torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Quantity:
    """One per-unit vector a cell exposes on its gate path, as the UI labels it."""

    symbol: str  # f, i, o, g, c, h, r, z, n
    name: str  # "forget gate"
    low: float  # value range, for drawing bars
    high: float
    derived: bool = False  # computed from others (coupled: i = 1 - f), not a separate weight


GATE_01 = (0.0, 1.0)
GATE_11 = (-1.0, 1.0)

LSTM_QUANTITIES = (
    Quantity("f", "forget gate", *GATE_01),
    Quantity("i", "input gate", *GATE_01),
    Quantity("o", "output gate", *GATE_01),
    Quantity("g", "candidate", *GATE_11),
    Quantity("c", "cell state", *GATE_11),
    Quantity("h", "hidden state", *GATE_11),
)

PEEPHOLE_QUANTITIES = LSTM_QUANTITIES  # the same gates; they also read the cell state

COUPLED_QUANTITIES = (
    Quantity("f", "forget gate", *GATE_01),
    Quantity("i", "input gate", *GATE_01, derived=True),  # i = 1 - f: no weights of its own
    Quantity("o", "output gate", *GATE_01),
    Quantity("g", "candidate", *GATE_11),
    Quantity("c", "cell state", *GATE_11),
    Quantity("h", "hidden state", *GATE_11),
)

GRU_QUANTITIES = (
    Quantity("r", "reset gate", *GATE_01),
    Quantity("z", "update gate", *GATE_01),
    Quantity("n", "candidate", *GATE_11),
    Quantity("h", "hidden state", *GATE_11),
)

RNN_QUANTITIES = (Quantity("h", "hidden state", *GATE_11),)
