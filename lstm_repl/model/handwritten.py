"""What the cell kinds without a fused PyTorch kernel (peephole, coupled) share.

- Weights in PyTorch's layout and names (weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k},
  bias_hh_l{k}, plus a kind's own per-unit vectors), initialised as nn.LSTM does.
- run(): the training path. Per layer, the input projection of ALL time steps is one matmul
  before the time loop; the loop itself is the kind's autograd.Function, whose forward and
  backward time loops are TorchScript and whose weight gradients are one matmul after the loop.
  Under autocast (bf16) the matmuls run in bf16 and the cell state stays float32.
- step(): the gate path, one token, the kind's equations written plainly, every gate returned.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from lstm_repl.model.interventions import Interventions
from lstm_repl.model.base import Gates, State, try_script

LOW_PRECISION = (torch.bfloat16, torch.float16)


scripted: Callable[[Callable], Callable] = functools.cache(try_script)  # once per function, on first use


def loop_buffers(xp: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For a forward time loop over xp (T, B, G·H): the gate buffer, a copy of xp in the state
    dtype that the loop overwrites in place, and hs, cs (T+1, B, H) with h0 and c0 first.
    (Plain Python: TorchScript has no data_ptr.)"""
    acts = xp.to(c.dtype)
    if acts.data_ptr() == xp.data_ptr():
        acts = acts.clone()
    hs = torch.empty((xp.shape[0] + 1, h.shape[0], h.shape[1]), dtype=c.dtype, device=c.device)
    cs = torch.empty_like(hs)
    hs[0], cs[0] = h, c
    return acts, hs, cs


def add_recurrent(z: torch.Tensor, h: torch.Tensor, w_t: torch.Tensor) -> None:
    """z += h·W_hhᵀ in place (w_t is W_hhᵀ): in bf16 when the weights are, the gates staying float32."""
    if w_t.dtype == z.dtype:
        z.addmm_(h, w_t)
    else:
        z.add_(torch.mm(h.to(w_t.dtype), w_t))


def incoming_gradients(hs: torch.Tensor, cs: torch.Tensor, d_out, d_h, d_c) -> tuple[torch.Tensor, ...]:
    """A backward's output gradients in the state dtype, zeros for those autograd left out (None)."""
    return (
        torch.zeros_like(hs[1:]) if d_out is None else d_out.to(hs.dtype),
        torch.zeros_like(hs[0]) if d_h is None else d_h.to(hs.dtype),
        torch.zeros_like(cs[0]) if d_c is None else d_c.to(cs.dtype),
    )


def recurrent_weight_gradient(
    da: torch.Tensor, hs: torch.Tensor, w_hh: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every step's gate gradients da (T, B, G·H) as one (T·B, G·H) matrix, and from it the
    gradient of W_hh in one matmul."""
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    flat = da.reshape(T * B, da.shape[-1])
    return flat, torch.mm(flat.t().to(w_hh.dtype), hs[:-1].reshape(T * B, H).to(w_hh.dtype))


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast gives matmuls on this device type right now, or None when it is off."""
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


class HandWrittenStack(nn.Module):
    """A stack of layers of one hand-written cell kind. Subclasses set the class attributes below
    and define _sequence (training path, one layer, all steps) and _cell (gate path, one step)."""

    kind: str
    name: str  # as the UI says it
    has_fused_kernel = False
    packer = None
    state_names: tuple[str, ...] = ("h", "c")
    quantities: tuple = ()
    gate_count: int  # G: weight_ih_l{k} has G·H rows
    unit_weights: tuple[str, ...] = ()  # per-unit (H,) weights, e.g. peepholes: "weight_ci"

    def __init__(self, input_size: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden, layers
        self.dropout = dropout if layers > 1 else 0.0
        rows, bound = self.gate_count * hidden, 1.0 / math.sqrt(hidden)
        for k in range(layers):
            shapes = {
                "weight_ih": (rows, input_size if k == 0 else hidden),
                "weight_hh": (rows, hidden),
                "bias_ih": (rows,),
                "bias_hh": (rows,),
                **{name: (hidden,) for name in self.unit_weights},
            }
            for name, shape in shapes.items():  # as nn.LSTM.reset_parameters: all uniform(±1/√H)
                self.register_parameter(f"{name}_l{k}", nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))

    def layer_weights(self, k: int) -> dict[str, torch.Tensor]:
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", *self.unit_weights)
        return {name: getattr(self, f"{name}_l{k}") for name in names}

    def zero_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> State:
        shape = (self.num_layers, batch, self.hidden_size)
        return tuple(torch.zeros(shape, device=device, dtype=dtype) for _ in self.state_names)

    def run(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """Training path. x: (B, T, in) -> outputs (B, T, H), state (float32 under bf16 autocast)."""
        assert x.dim() == 3 and x.shape[-1] == self.input_size, (
            f"x must be (batch, time, {self.input_size}), got {tuple(x.shape)}"
        )
        device_type = x.device.type
        matmul_dtype = autocast_dtype(device_type) or x.dtype
        state_dtype = torch.float32 if matmul_dtype in LOW_PRECISION else matmul_dtype
        if state is None:
            state = self.zero_state(x.shape[0], x.device, state_dtype)
        inp = x.transpose(0, 1)  # (T, B, in): time-major, so each step's slice is contiguous
        finals: list[list[torch.Tensor]] = [[] for _ in self.state_names]
        for k in range(self.num_layers):
            w = self.layer_weights(k)
            xp = F.linear(inp, w["weight_ih"], w["bias_ih"] + w["bias_hh"])  # (T, B, G·H), every step at once
            units = tuple(w[name].to(state_dtype) for name in self.unit_weights)
            with torch.autocast(device_type, enabled=False):
                out, *final = self._sequence(xp, w["weight_hh"].to(matmul_dtype), units,
                                             tuple(s[k].to(state_dtype) for s in state))
            for store, value in zip(finals, final):
                store.append(value)
            inp = F.dropout(out, self.dropout, self.training) if k < self.num_layers - 1 else out  # (T, B, H)
        return inp.transpose(0, 1), tuple(torch.stack(values) for values in finals)

    def step(self, x: torch.Tensor, state: State,
             edits: Interventions | None = None) -> tuple[torch.Tensor, State, Gates]:
        """Gate path, one time step. x: (B, in) -> top h (B, H), new state, per-layer gates;
        `edits`: interventions, applied by _cell at their points of the equations."""
        new: list[list[torch.Tensor]] = [[] for _ in self.state_names]
        gates = []
        inp = x
        for k in range(self.num_layers):
            hooks = _LayerEdits(edits, k) if edits else None
            layer_state, layer_gates = self._cell(self.layer_weights(k), inp, tuple(s[k] for s in state), hooks)
            for store, value in zip(new, layer_state):
                store.append(value)
            gates.append(layer_gates)
            h = layer_state[0]
            inp = F.dropout(h, self.dropout, self.training) if k < self.num_layers - 1 else h
        return inp, tuple(torch.stack(values) for values in new), gates

    def _sequence(self, xp: torch.Tensor, w_hh: torch.Tensor, units: tuple[torch.Tensor, ...],
                  state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """One layer over all steps. xp: (T, B, G·H) -> outputs (T, B, H), then the final state."""
        raise NotImplementedError

    def _cell(self, w: dict[str, torch.Tensor], x: torch.Tensor, state: tuple[torch.Tensor, ...],
              edits: _LayerEdits | None = None) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
        """One layer, one step, plainly: (new state, gates by quantity symbol)."""
        raise NotImplementedError


def lstm_output(gates: dict[str, torch.Tensor], c: torch.Tensor, edits: _LayerEdits | None = None):
    """The end of an LSTM-kind step: h = o * tanh(c), the output interventions, and what the gate
    path reports -> ((h, c), gates with c and h)."""
    h = gates["o"] * torch.tanh(c)
    if edits:
        h, c = edits.output(h, c)
    return (h, c), {**gates, "c": c, "h": h}


class _LayerEdits:
    """An Interventions object's hooks bound to one layer (what a _cell calls)."""

    def __init__(self, edits: Interventions, layer: int):
        self.edits, self.layer = edits, layer

    def gates(self, gates: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.edits.gates(self.layer, gates)

    def memory(self, memory: torch.Tensor) -> torch.Tensor:
        return self.edits.memory(self.layer, memory)

    def output(self, h: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.edits.output(self.layer, h, c)
