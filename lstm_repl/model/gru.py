"""The GRU: PyTorch's fused nn.GRU for speed, and a gate path over the same weights.

    r = σ(W_ir·x + b_ir + W_hr·h₋₁ + b_hr)          reset gate
    z = σ(W_iz·x + b_iz + W_hz·h₋₁ + b_hz)          update gate
    n = tanh(W_in·x + b_in + r∗(W_hn·h₋₁ + b_hn))   candidate
    h = (1 − z)∗n + z∗h₋₁

Weights are stacked in PyTorch's gate order r, z, n: weight_ih_l{k} is (3H, in). The state is
(h,) alone: h is also the memory.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from lstm_repl.model.interventions import Interventions
from lstm_repl.model.base import Gates, SingleStateFused, State, layer_weight_names
from lstm_repl.quantities import GRU_QUANTITIES


class GRUStack(SingleStateFused, nn.GRU):
    kind = "gru"
    name = "GRU"
    has_fused_kernel = True
    state_names = ("h",)
    quantities = GRU_QUANTITIES

    def __init__(self, input_size: int, hidden: int, layers: int, dropout: float):
        super().__init__(input_size, hidden, layers, dropout=dropout if layers > 1 else 0.0, batch_first=True)

    def step(self, x: torch.Tensor, state: State,
             edits: Interventions | None = None) -> tuple[torch.Tensor, State, Gates]:
        """Gate path, one time step. x: (B, in) -> top h (B, H), new state, per-layer gates;
        `edits`: interventions applied at their points of the equations (interventions.py)."""
        (h_prev,) = state
        hs, gates = [], []
        inp = x
        H = self.hidden_size
        for k in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = (getattr(self, n) for n in layer_weight_names(k))
            gi = torch.addmm(b_ih, inp, w_ih.t())  # (B, 3H)
            gh = torch.addmm(b_hh, h_prev[k], w_hh.t())  # (B, 3H)
            layer = {"r": (gi[:, :H] + gh[:, :H]).sigmoid(), "z": (gi[:, H : 2 * H] + gh[:, H : 2 * H]).sigmoid()}
            if edits:
                layer = edits.gates(k, layer)
            layer["n"] = (gi[:, 2 * H :] + layer["r"] * gh[:, 2 * H :]).tanh()
            if edits:
                layer = edits.gates(k, layer)
            h = (1 - layer["z"]) * layer["n"] + layer["z"] * h_prev[k]
            if edits:
                h, _ = edits.output(k, edits.memory(k, h), None)
            hs.append(h)
            gates.append({**layer, "h": h})
            inp = F.dropout(h, self.dropout, self.training) if k < self.num_layers - 1 else h
        return inp, (torch.stack(hs),), gates
