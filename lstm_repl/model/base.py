"""What every recurrent cell kind provides, so the language model can stack any of them."""

from __future__ import annotations

import torch

from lstm_repl.quantities import Quantity  # noqa: F401  (re-exported for cell modules)

State = tuple[torch.Tensor, ...]  # each (layers, batch, hidden); LSTM kinds: (h, c), others: (h,)
Gates = list[dict[str, torch.Tensor]]  # per layer: quantity symbol -> (batch, hidden)


def layer_weight_names(layer: int) -> tuple[str, str, str, str]:
    return (f"weight_ih_l{layer}", f"weight_hh_l{layer}", f"bias_ih_l{layer}", f"bias_hh_l{layer}")
