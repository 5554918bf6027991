"""The coupled input-forget gate LSTM (CIFG): what is forgotten is what gets written.

    f = σ(W_f·[h₋₁, x] + b_f)    g = tanh(W_g·[h₋₁, x] + b_g)    o = σ(W_o·[h₋₁, x] + b_o)
    i = 1 − f                    c = f∗c₋₁ + (1 − f)∗g          h = o∗tanh(c)

The input gate has no weights of its own: three blocks of rows in the gate order f, g, o,
so weight_ih_l{k} is (3H, in), three quarters of the LSTM's. PyTorch has no fused kernel for
this cell: training runs the hand-written sequence below, with its own backward pass.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from lstm_repl.model.handwritten import (HandWrittenStack, add_recurrent, incoming_gradients, loop_buffers, lstm_output,
                                         recurrent_weight_gradient, scripted)
from lstm_repl.quantities import COUPLED_QUANTITIES


class CoupledStack(HandWrittenStack):
    kind = "coupled"
    name = "coupled LSTM"
    quantities = COUPLED_QUANTITIES
    gate_count = 3

    def _sequence(self, xp, w_hh, units, state):
        return CoupledSequence.apply(xp, w_hh, *state)

    def _cell(self, w, x, state, edits=None):
        h_prev, c_prev = state
        z = torch.addmm(w["bias_ih"], x, w["weight_ih"].t()) + torch.addmm(w["bias_hh"], h_prev, w["weight_hh"].t())
        zf, zg, zo = z.chunk(3, 1)  # (B, H) each
        gates = {"f": torch.sigmoid(zf), "g": torch.tanh(zg), "o": torch.sigmoid(zo)}
        if edits:
            gates = edits.gates(gates)
        gates["i"] = 1 - gates["f"]  # coupled: forcing f sets i too
        c = gates["f"] * c_prev + gates["i"] * gates["g"]
        if edits:
            c = edits.memory(c)
        return lstm_output(gates, c, edits)


class CoupledSequence(torch.autograd.Function):
    """One layer over T steps. xp: (T, B, 3H) input projection (biases included), w_hh: (3H, H)
    in the matmul dtype, h0, c0: (B, H) in the state dtype -> out (T, B, H), h_T, c_T."""

    @staticmethod
    def forward(ctx, xp, w_hh, h0, c0):
        acts, hs, cs = loop_buffers(xp, h0, c0)
        scripted(_forward_loop)(acts, hs, cs, w_hh)
        ctx.save_for_backward(hs, cs, acts, w_hh)
        ctx.xp_dtype = xp.dtype
        return hs[1:], hs[-1].clone(), cs[-1].clone()

    @staticmethod
    def backward(ctx, d_out, d_h, d_c):
        hs, cs, acts, w_hh = ctx.saved_tensors
        d_out, d_h, d_c = incoming_gradients(hs, cs, d_out, d_h, d_c)
        da, d_h0, d_c0 = scripted(_backward_loop)(d_out, d_h, d_c, cs, acts, w_hh)
        _, d_w_hh = recurrent_weight_gradient(da, hs, w_hh)
        return da.to(ctx.xp_dtype), d_w_hh, d_h0, d_c0


def _forward_loop(acts: Tensor, hs: Tensor, cs: Tensor, w_hh: Tensor) -> None:
    """Fills, from loop_buffers: acts (T, B, 3H), xp so far, with the gates f|g|o; hs and cs
    (T+1, B, H), h0 and c0 so far, with every step's h and c.

    Each small operation costs a fixed overhead, so there are few per step, and each writes
    where its result is kept: the gates in place in acts, h and c straight into hs and cs."""
    h, c = hs[0], cs[0]
    H = h.shape[1]
    w_t = w_hh.t()
    for t in range(acts.shape[0]):
        z = acts[t]  # (B, 3H), xp[t] so far
        add_recurrent(z, h, w_t)
        f = z[:, :H].sigmoid_()
        g = z[:, H : 2 * H].tanh_()
        o = z[:, 2 * H :].sigmoid_()
        c = torch.addcmul(g, f, c - g, out=cs[t + 1])  # f∗c₋₁ + (1 − f)∗g
        h = torch.mul(o, torch.tanh(c), out=hs[t + 1])


def _backward_loop(d_out: Tensor, d_h: Tensor, d_c: Tensor, cs: Tensor, acts: Tensor,
                   w_hh: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Back through time. -> gradients of the gate pre-activations (T, B, 3H), of h0 and of c0.

    Per step about twelve small operations (aten's sigmoid_backward and tanh_backward do σ′ and
    tanh′ in one each, writing straight into the result) and one matmul. Computing the σ′ and
    tanh′ factors for all steps before the loop saves operations but measured slower: those
    passes over (T, B, H) leave the cache."""
    T = acts.shape[0]
    H = d_h.shape[-1]
    das = torch.empty_like(acts)
    for s in range(T):
        t = T - 1 - s
        a, da = acts[t], das[t]
        f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]
        tanh_c = torch.tanh(cs[t + 1])
        dh = d_h + d_out[t]  # from the next step and from this step's output
        torch.ops.aten.sigmoid_backward(dh * tanh_c, o, grad_input=da[:, 2 * H :])  # h = o∗tanh(c)
        dc = d_c + torch.ops.aten.tanh_backward(dh * o, tanh_c)
        torch.ops.aten.sigmoid_backward(dc * (cs[t] - g), f, grad_input=da[:, :H])
        d_c = dc * f  # c = f∗c₋₁ + (1 − f)∗g
        torch.ops.aten.tanh_backward(dc - d_c, g, grad_input=da[:, H : 2 * H])  # dc∗(1 − f)
        d_h = torch.mm(da.to(w_hh.dtype), w_hh).to(d_c.dtype)
    return das, d_h, d_c
