"""The coupled input-forget gate LSTM (CIFG): what is forgotten is what gets written.

    f = σ(W_f·[h₋₁, x] + b_f)    g = tanh(W_g·[h₋₁, x] + b_g)    o = σ(W_o·[h₋₁, x] + b_o)
    i = 1 − f                    c = f∗c₋₁ + (1 − f)∗g          h = o∗tanh(c)

The input gate has no weights of its own: three blocks of rows in the gate order f, g, o,
so weight_ih_l{k} is (3H, in), three quarters of the LSTM's. PyTorch has no fused kernel for
this cell: training runs the hand-written sequence below, with its own backward pass.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor

from lstm_repl.model.handwritten import HandWrittenStack, scripted
from lstm_repl.quantities import COUPLED_QUANTITIES


class CoupledStack(HandWrittenStack):
    kind = "coupled"
    quantities = COUPLED_QUANTITIES
    gate_count = 3
    forget_block = 0

    def _sequence(self, xp, w_hh, units, state):
        return CoupledSequence.apply(xp, w_hh, *state)

    def _cell(self, w, x, state):
        h_prev, c_prev = state
        z = torch.addmm(w["bias_ih"], x, w["weight_ih"].t()) + torch.addmm(w["bias_hh"], h_prev, w["weight_hh"].t())
        zf, zg, zo = z.chunk(3, 1)  # (B, H) each
        f, g, o = torch.sigmoid(zf), torch.tanh(zg), torch.sigmoid(zo)
        i = 1 - f
        c = f * c_prev + i * g
        h = o * torch.tanh(c)
        return (h, c), {"f": f, "i": i, "g": g, "o": o, "c": c, "h": h}


class CoupledSequence(torch.autograd.Function):
    """One layer over T steps. xp: (T, B, 3H) input projection (biases included), w_hh: (3H, H)
    in the matmul dtype, h0, c0: (B, H) in the state dtype -> out (T, B, H), h_T, c_T."""

    @staticmethod
    def forward(ctx, xp, w_hh, h0, c0):
        hs, cs, acts = scripted(_forward_loop)(xp, w_hh, h0, c0)
        ctx.save_for_backward(hs, cs, acts, w_hh)
        ctx.xp_dtype = xp.dtype
        return hs[1:], hs[-1].clone(), cs[-1].clone()

    @staticmethod
    def backward(ctx, d_out, d_h, d_c):
        hs, cs, acts, w_hh = ctx.saved_tensors
        d_out = torch.zeros_like(hs[1:]) if d_out is None else d_out.to(hs.dtype)
        d_h = torch.zeros_like(hs[0]) if d_h is None else d_h.to(hs.dtype)
        d_c = torch.zeros_like(cs[0]) if d_c is None else d_c.to(cs.dtype)
        da, d_h0, d_c0 = scripted(_backward_loop)(d_out, d_h, d_c, cs, acts, w_hh)
        T, B, H = d_out.shape
        flat = da.reshape(T * B, 3 * H)  # every step's gate gradients: the weight gradient is one matmul
        d_w_hh = torch.mm(flat.t().to(w_hh.dtype), hs[:-1].reshape(T * B, H).to(w_hh.dtype))
        return da.to(ctx.xp_dtype), d_w_hh, d_h0, d_c0


def _forward_loop(xp: Tensor, w_hh: Tensor, h: Tensor, c: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """-> hs (T+1, B, H) with h0 first, cs (T+1, B, H) with c0 first, gates f|g|o (T, B, 3H).

    Each small operation costs a fixed overhead, so there are few per step, and each writes
    where its result is kept: the gates in place in one buffer that starts as a copy of xp, h
    and c straight into hs and cs."""
    T, B, G = xp.shape
    H = G // 3
    acts = xp.to(c.dtype)
    if acts.data_ptr() == xp.data_ptr():
        acts = acts.clone()
    hs = torch.empty((T + 1, B, H), dtype=c.dtype, device=c.device)
    cs = torch.empty_like(hs)
    hs[0], cs[0] = h, c
    w_t = w_hh.t()
    same_dtype = w_t.dtype == acts.dtype
    for t in range(T):
        z = acts[t]  # (B, 3H), xp[t] so far
        if same_dtype:
            z.addmm_(h, w_t)
        else:  # bf16 matmul, float32 gates
            z.add_(torch.mm(h.to(w_t.dtype), w_t))
        f = z[:, :H].sigmoid_()
        g = z[:, H : 2 * H].tanh_()
        o = z[:, 2 * H :].sigmoid_()
        c = torch.addcmul(g, f, c - g, out=cs[t + 1])  # f∗c₋₁ + (1 − f)∗g
        h = torch.mul(o, torch.tanh(c), out=hs[t + 1])
    return hs, cs, acts


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
