"""The standard LSTM: PyTorch's fused nn.LSTM for speed, and a gate path over the same weights.

    i = σ(W_i·[h₋₁, x] + b_i)    f = σ(W_f·[h₋₁, x] + b_f)    g = tanh(W_g·[h₋₁, x] + b_g)
    o = σ(W_o·[h₋₁, x] + b_o)    c = f∗c₋₁ + i∗g              h = o∗tanh(c)

Weights are stacked in PyTorch's gate order i, f, g, o: weight_ih_l{k} is (4H, in).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from lstm_repl.model.interventions import Interventions
from lstm_repl.model.base import Gates, State, layer_weight_names
from lstm_repl.model.packed import pack_lstm
from lstm_repl.quantities import LSTM_QUANTITIES


class LSTMStack(nn.LSTM):
    kind = "lstm"
    name = "LSTM"
    has_fused_kernel = True
    packer = staticmethod(pack_lstm)
    state_names = ("h", "c")
    quantities = LSTM_QUANTITIES

    def __init__(self, input_size: int, hidden: int, layers: int, dropout: float):
        super().__init__(input_size, hidden, layers, dropout=dropout if layers > 1 else 0.0, batch_first=True)

    def run(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """Fused path. x: (B, T, in) -> outputs (B, T, H), state."""
        out, (h, c) = super().forward(x, None if state is None else (state[0], state[1]))
        return out, (h, c)

    def zero_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> State:
        shape = (self.num_layers, batch, self.hidden_size)
        return (torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype))

    def step(self, x: torch.Tensor, state: State,
             edits: Interventions | None = None) -> tuple[torch.Tensor, State, Gates]:
        """Gate path, one time step. x: (B, in) -> top h (B, H), new state, per-layer gates;
        `edits`: interventions applied at their points of the equations (interventions.py)."""
        h_prev, c_prev = state
        hs, cs, gates = [], [], []
        inp = x
        H = self.hidden_size
        for k in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = (getattr(self, n) for n in layer_weight_names(k))
            z = torch.addmm(b_ih, inp, w_ih.t()).add_(torch.addmm(b_hh, h_prev[k], w_hh.t()))  # (B, 4H)
            layer = {"i": z[:, :H].sigmoid(), "f": z[:, H : 2 * H].sigmoid(),
                     "g": z[:, 2 * H : 3 * H].tanh(), "o": z[:, 3 * H :].sigmoid()}
            if edits:
                layer = edits.gates(k, layer)
            c = layer["f"] * c_prev[k] + layer["i"] * layer["g"]
            if edits:
                c = edits.memory(k, c)
            h = layer["o"] * c.tanh()
            if edits:
                h, c = edits.output(k, h, c)
            hs.append(h)
            cs.append(c)
            gates.append({**layer, "c": c, "h": h})
            inp = F.dropout(h, self.dropout, self.training) if k < self.num_layers - 1 else h
        return inp, (torch.stack(hs), torch.stack(cs)), gates
