"""The peephole LSTM (Gers & Schmidhuber 2000): the gates also look at the cell state.

    i = σ(W_i·[h₋₁, x] + b_i + w_ci∗c₋₁)    f = σ(W_f·[h₋₁, x] + b_f + w_cf∗c₋₁)
    g = tanh(W_g·[h₋₁, x] + b_g)             c = f∗c₋₁ + i∗g
    o = σ(W_o·[h₋₁, x] + b_o + w_co∗c)       h = o∗tanh(c)

The input and forget gates read the previous cell state, the output gate the new one, each
through diagonal (per-unit) weights weight_ci_l{k}, weight_cf_l{k}, weight_co_l{k}, each (H,).
The other weights are the LSTM's, in PyTorch's gate order i, f, g, o. PyTorch has no fused
kernel for this cell: training runs the hand-written sequence below, with its own backward pass.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from lstm_repl.model.handwritten import (HandWrittenStack, add_recurrent, incoming_gradients, loop_buffers, lstm_output,
                                         recurrent_weight_gradient, scripted)
from lstm_repl.quantities import PEEPHOLE_QUANTITIES


class PeepholeStack(HandWrittenStack):
    kind = "peephole"
    name = "peephole LSTM"
    quantities = PEEPHOLE_QUANTITIES
    gate_count = 4
    unit_weights = ("weight_ci", "weight_cf", "weight_co")

    def _sequence(self, xp, w_hh, units, state):
        return PeepholeSequence.apply(xp, w_hh, *units, *state)

    def _cell(self, w, x, state, edits=None):
        h_prev, c_prev = state
        z = torch.addmm(w["bias_ih"], x, w["weight_ih"].t()) + torch.addmm(w["bias_hh"], h_prev, w["weight_hh"].t())
        zi, zf, zg, zo = z.chunk(4, 1)  # (B, H) each
        gates = {"i": torch.sigmoid(zi + w["weight_ci"] * c_prev), "f": torch.sigmoid(zf + w["weight_cf"] * c_prev),
                 "g": torch.tanh(zg)}
        if edits:
            gates = edits.gates(gates)
        c = gates["f"] * c_prev + gates["i"] * gates["g"]
        if edits:
            c = edits.memory(c)
        gates["o"] = torch.sigmoid(zo + w["weight_co"] * c)  # o peeks at the new c
        if edits:
            gates = edits.gates(gates)
        return lstm_output(gates, c, edits)


class PeepholeSequence(torch.autograd.Function):
    """One layer over T steps. xp: (T, B, 4H) input projection (biases included), w_hh: (4H, H)
    in the matmul dtype, w_c*: (H,), h0, c0: (B, H) in the state dtype -> out (T, B, H), h_T, c_T."""

    @staticmethod
    def forward(ctx, xp, w_hh, w_ci, w_cf, w_co, h0, c0):
        acts, hs, cs = loop_buffers(xp, h0, c0)
        scripted(_forward_loop)(acts, hs, cs, w_hh, w_ci, w_cf, w_co)
        ctx.save_for_backward(hs, cs, acts, w_hh, w_ci, w_cf, w_co)
        ctx.xp_dtype = xp.dtype
        return hs[1:], hs[-1].clone(), cs[-1].clone()

    @staticmethod
    def backward(ctx, d_out, d_h, d_c):
        hs, cs, acts, w_hh, w_ci, w_cf, w_co = ctx.saved_tensors
        d_out, d_h, d_c = incoming_gradients(hs, cs, d_out, d_h, d_c)
        da, d_h0, d_c0 = scripted(_backward_loop)(d_out, d_h, d_c, cs, acts, w_hh, w_ci, w_cf, w_co)
        flat, d_w_hh = recurrent_weight_gradient(da, hs, w_hh)
        H = hs.shape[-1]
        c_prev, c_new = cs[:-1].reshape(-1, H), cs[1:].reshape(-1, H)
        d_w_ci = (flat[:, :H] * c_prev).sum(0)
        d_w_cf = (flat[:, H : 2 * H] * c_prev).sum(0)
        d_w_co = (flat[:, 3 * H :] * c_new).sum(0)
        return da.to(ctx.xp_dtype), d_w_hh, d_w_ci, d_w_cf, d_w_co, d_h0, d_c0


def _forward_loop(acts: Tensor, hs: Tensor, cs: Tensor, w_hh: Tensor, w_ci: Tensor, w_cf: Tensor, w_co: Tensor) -> None:
    """Fills, from loop_buffers: acts (T, B, 4H), xp so far, with the gates i|f|g|o; hs and cs
    (T+1, B, H), h0 and c0 so far, with every step's h and c.

    Each small operation costs a fixed overhead, so there are few per step, and each writes
    where its result is kept: the gates in place in acts, h and c straight into hs and cs."""
    h, c = hs[0], cs[0]
    B, H = h.shape
    w_t = w_hh.t()
    w_if = torch.stack([w_ci, w_cf])  # (2, H): the peepholes of i and f, applied in one operation
    for t in range(acts.shape[0]):
        z = acts[t]  # (B, 4H), xp[t] so far
        add_recurrent(z, h, w_t)
        z[:, : 2 * H].view(B, 2, H).addcmul_(w_if, c.unsqueeze(1)).sigmoid_()  # i, f
        g = z[:, 2 * H : 3 * H].tanh_()
        c = torch.addcmul(z[:, H : 2 * H] * c, z[:, :H], g, out=cs[t + 1])  # f∗c₋₁ + i∗g
        o = z[:, 3 * H :].addcmul_(w_co, c).sigmoid_()
        h = torch.mul(o, torch.tanh(c), out=hs[t + 1])


def _backward_loop(d_out: Tensor, d_h: Tensor, d_c: Tensor, cs: Tensor, acts: Tensor, w_hh: Tensor,
                   w_ci: Tensor, w_cf: Tensor, w_co: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Back through time. -> gradients of the gate pre-activations (T, B, 4H), of h0 and of c0.

    Per step about fifteen small operations (aten's sigmoid_backward and tanh_backward do σ′ and
    tanh′ in one each, writing straight into the result) and one matmul. Computing the σ′ and
    tanh′ factors for all steps before the loop saves operations but measured slower: those
    passes over (T, B, H) leave the cache."""
    T = acts.shape[0]
    H = d_h.shape[-1]
    das = torch.empty_like(acts)
    for s in range(T):
        t = T - 1 - s
        a, da = acts[t], das[t]
        i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        tanh_c = torch.tanh(cs[t + 1])
        dh = d_h + d_out[t]  # from the next step and from this step's output
        dzo = torch.ops.aten.sigmoid_backward(dh * tanh_c, o, grad_input=da[:, 3 * H :])  # h = o∗tanh(c)
        # c reaches h directly and through o's peephole
        dc = torch.addcmul(d_c + torch.ops.aten.tanh_backward(dh * o, tanh_c), dzo, w_co)
        dzi = torch.ops.aten.sigmoid_backward(dc * g, i, grad_input=da[:, :H])
        dzf = torch.ops.aten.sigmoid_backward(dc * cs[t], f, grad_input=da[:, H : 2 * H])
        torch.ops.aten.tanh_backward(dc * i, g, grad_input=da[:, 2 * H : 3 * H])
        d_c = torch.addcmul(torch.addcmul(dc * f, dzi, w_ci), dzf, w_cf)  # c₋₁: through c and the i, f peepholes
        d_h = torch.mm(da.to(w_hh.dtype), w_hh).to(d_c.dtype)
    return das, d_h, d_c
