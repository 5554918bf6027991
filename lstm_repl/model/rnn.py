"""The plain (Elman) RNN: PyTorch's fused nn.RNN (tanh) for speed, and a gate path over the same weights.

    h = tanh(W_ih·x + b_ih + W_hh·h₋₁ + b_hh)

No gates: weight_ih_l{k} is (H, in), a quarter of the LSTM's rows. The state is (h,).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from lstm_repl.model.interventions import Interventions
from lstm_repl.model.base import Gates, SingleStateFused, State, layer_weight_names
from lstm_repl.quantities import RNN_QUANTITIES


class RNNStack(SingleStateFused, nn.RNN):
    kind = "rnn"
    name = "RNN"
    has_fused_kernel = True
    state_names = ("h",)
    quantities = RNN_QUANTITIES

    def __init__(self, input_size: int, hidden: int, layers: int, dropout: float):
        super().__init__(input_size, hidden, layers, nonlinearity="tanh", dropout=dropout if layers > 1 else 0.0,
                         batch_first=True)

    def step(self, x: torch.Tensor, state: State,
             edits: Interventions | None = None) -> tuple[torch.Tensor, State, Gates]:
        """Gate path, one time step. x: (B, in) -> top h (B, H), new state, per-layer values;
        `edits`: clamps and ablations of h (interventions.py)."""
        (h_prev,) = state
        hs, gates = [], []
        inp = x
        for k in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = (getattr(self, n) for n in layer_weight_names(k))
            h = torch.addmm(b_ih, inp, w_ih.t()).add_(torch.addmm(b_hh, h_prev[k], w_hh.t())).tanh_()  # (B, H)
            if edits:
                h, _ = edits.output(k, edits.memory(k, h), None)
            hs.append(h)
            gates.append({"h": h})
            inp = F.dropout(h, self.dropout, self.training) if k < self.num_layers - 1 else h
        return inp, (torch.stack(hs),), gates
