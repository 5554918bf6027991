"""What every recurrent cell kind provides, so the language model can stack any of them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

State = tuple[torch.Tensor, ...]  # each (layers, batch, hidden); LSTM kinds: (h, c), others: (h,)
Gates = list[dict[str, torch.Tensor]]  # per layer: quantity symbol -> (batch, hidden)


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


def layer_weight_names(layer: int) -> tuple[str, str, str, str]:
    return (f"weight_ih_l{layer}", f"weight_hh_l{layer}", f"bias_ih_l{layer}", f"bias_hh_l{layer}")
