"""The LSTM gate path packed for inference: one token at a time, every gate returned.

At batch 1 on a CPU a step is bound by reading the weights once (13 MB of float32 for 2 x 512)
and by the fixed cost of each tensor op, most of it Python's. So, with autograd off:
- layer 0's input projection becomes a table, embedding · W_ih0ᵀ + b_ih0 + b_hh0, one row per
  token: a lookup instead of a matmul (when the table is small enough to keep);
- every other projection reads [x, h₋₁] through one matrix [W_ih | W_hh] and one summed bias;
- precision "fp32" keeps the weights as they are (the fused path's numbers, within 1e-5);
  "fp16" stores them in half precision, half the bytes to read, while the arithmetic stays in
  float32 (fbgemm's kernel on x86; elsewhere a half-precision matmul);
- the module is compiled by TorchScript, and decode() runs whole stretches of generation
  (step, then choose the next token) without returning to Python.
The pack is a snapshot of the weights: LanguageModel.packed() says when it is rebuilt.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import nn

from lstm_repl.model.devices import fbgemm_half_available
from lstm_repl.model.base import layer_weight_names, try_script

MAX_TABLE_BYTES = 64 * 2**20  # beyond this (a large word vocabulary), project the embedding per token


class DenseLinear(nn.Module):
    """x · Wᵀ + bias with W as it is (float32: exactly the fused path's weights)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight_t = weight.t()  # (in, out)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return torch.addmm(bias, x, self.weight_t)


class FbgemmHalfLinear(nn.Module):
    """W stored in float16, products and sums in float32 (fbgemm, x86 CPUs)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.packed = torch.ops.quantized.linear_prepack_fp16(weight.float().contiguous(), None)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic_fp16(x, self.packed).add_(bias)


class HalfLinear(nn.Module):
    """W stored in float16 and multiplied in float16 (CUDA, or a CPU without fbgemm)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight_t = weight.half().t()

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return torch.mm(x.half(), self.weight_t).float().add_(bias)


def linear_class(precision: str, device: torch.device) -> type[nn.Module]:
    if precision == "fp32":
        return DenseLinear
    if device.type == "cpu" and fbgemm_half_available():
        return FbgemmHalfLinear
    return HalfLinear


def pick_token(logits: torch.Tensor, mask: torch.Tensor, temperature: float, uniform: float) -> int:
    """The next token from logits (V,): the argmax at temperature 0, else the token where the
    cumulative probability under softmax(logits / T) first reaches 1 - uniform (uniform in [0, 1)),
    which draws it with its probability. mask (V,) is 0, or -inf for a token never to choose.

    One uniform a token, where Gumbel-max would need V random numbers (costly for words)."""
    if temperature == 0:
        return int((logits + mask).argmax())
    probabilities = torch.add(mask, logits, alpha=1 / temperature).softmax(-1)
    cdf = probabilities.cumsum(-1, dtype=torch.float64)  # in float32, a p under 3e-8 near the end would vanish
    # 1 - uniform is in (0, 1]: a target above 0 skips unlikely tokens at the start, and one at
    # most the total never runs past the end, whatever the rounding
    return int(torch.searchsorted(cdf, cdf[-1:] * (1 - uniform)))


class PackedLSTM(nn.Module):
    """LanguageModel.step for the lstm kind, over weights rearranged for one token at a time.
    The state is a list [h, c] of (layers, B, H) tensors."""

    def __init__(self, model: nn.Module, precision: str):
        super().__init__()
        rnn = model.rnn
        self.hidden = rnn.hidden_size
        linear_type = linear_class(precision, model.device)
        w_ih0, w_hh0, b_ih0, b_hh0 = (getattr(rnn, name) for name in layer_weight_names(0))
        embedding = model.embedding.weight  # (V, E)
        self.has_table = embedding.shape[0] * w_ih0.shape[0] * 4 <= MAX_TABLE_BYTES
        if self.has_table:
            self.input_rows = torch.addmm(b_ih0 + b_hh0, embedding, w_ih0.t())  # (V, 4H): layer 0's projection
            layers = [linear_type(w_hh0)]
        else:
            self.input_rows = embedding.detach()  # (V, E): the embedding itself
            layers = [linear_type(torch.cat([w_ih0, w_hh0], 1))]
        self.biases = [(b_ih0 + b_hh0)[None]]
        for k in range(1, rnn.num_layers):
            w_ih, w_hh, b_ih, b_hh = (getattr(rnn, name) for name in layer_weight_names(k))
            layers.append(linear_type(torch.cat([w_ih, w_hh], 1)))  # (4H, 2H)
            self.biases.append((b_ih + b_hh)[None])
        self.layers = nn.ModuleList(layers)
        self.decoder = linear_type(model.decoder.weight)
        self.decoder_bias = model.decoder.bias[None]

    @torch.jit.export
    def step(
        self, token: torch.Tensor, state: List[torch.Tensor]
    ) -> Tuple[torch.Tensor, List[torch.Tensor], List[Dict[str, torch.Tensor]]]:
        """token: (B,) int64 -> logits (B, V), new state, per-layer gates i f g o c h."""
        hs, cs, acts = self._advance(
            self.input_rows.index_select(0, token), list(state[0].unbind(0)), list(state[1].unbind(0))
        )
        gates: List[Dict[str, torch.Tensor]] = []
        for k in range(len(hs)):
            i, f, g, o = acts[k][0], acts[k][1], acts[k][2], acts[k][3]
            gates.append({"i": i, "f": f, "g": g, "o": o, "c": cs[k], "h": hs[k]})
        return self.decoder(hs[-1], self.decoder_bias), [torch.stack(hs), torch.stack(cs)], gates

    @torch.jit.export
    def decode(self, token: int, state: List[torch.Tensor], uniforms: List[float], mask: torch.Tensor,
               temperature: float) -> Tuple[List[int], List[torch.Tensor]]:
        """Batch 1: read `token`, pick the next with pick_token(logits, mask, temperature,
        uniforms[0]), read that, and so on, one token per uniform.
        -> the chosen ids, the state after reading all but the last of them."""
        hs, cs = list(state[0].unbind(0)), list(state[1].unbind(0))
        chosen: List[int] = []
        for uniform in uniforms:
            hs, cs, _ = self._advance(self.input_rows[token : token + 1], hs, cs)
            token = pick_token(self.decoder(hs[-1], self.decoder_bias)[0], mask, temperature, uniform)
            chosen.append(token)
        return chosen, [torch.stack(hs), torch.stack(cs)]

    @torch.jit.export
    def read_weights(self, times: int) -> List[torch.Tensor]:
        """Only the matmuls of `times` batch-1 steps: the floor a step cannot go below (for bench)."""
        outputs: List[torch.Tensor] = []  # kept, or TorchScript would drop the unused matmuls
        inputs: List[torch.Tensor] = []
        for k in range(len(self.biases)):
            if k == 0 and self.has_table:
                width = self.hidden  # h₋₁ alone: the table row stands for the input's part
            elif k == 0:
                width = self.input_rows.shape[1] + self.hidden  # [embedding row, h₋₁]
            else:
                width = 2 * self.hidden  # [h of the layer below, h₋₁]
            inputs.append(torch.zeros(1, width, device=self.input_rows.device))
        for _ in range(times):
            k = 0
            for layer in self.layers:
                outputs.append(layer(inputs[k], self.biases[k]))
                k += 1
            outputs.append(self.decoder(inputs[-1][:, : self.hidden], self.decoder_bias))
        return outputs

    def _advance(
        self, inputs: torch.Tensor, hs: List[torch.Tensor], cs: List[torch.Tensor]
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor], List[List[torch.Tensor]]]:
        """One step of every layer. inputs: table rows (B, 4H) or embedding rows (B, E).
        -> new h and c per layer, and [i, f, g, o] per layer."""
        H = self.hidden
        new_h: List[torch.Tensor] = []
        new_c: List[torch.Tensor] = []
        acts: List[List[torch.Tensor]] = []
        x = inputs
        k = 0
        for layer in self.layers:  # TorchScript unrolls this loop: each layer may be its own class
            if k == 0 and self.has_table:
                z = layer(hs[0], inputs)
            else:
                z = layer(torch.cat([x, hs[k]], 1), self.biases[k])
            s = z.sigmoid()  # one op for i, f and o; the g rows are redone with tanh
            i, f, o = s[:, :H], s[:, H : 2 * H], s[:, 3 * H :]
            g = z[:, 2 * H : 3 * H].tanh()
            c = torch.addcmul(f * cs[k], i, g)
            x = o * c.tanh()
            new_h.append(x)
            new_c.append(c)
            acts.append([i, f, g, o])
            k += 1
        return new_h, new_c, acts


@torch.no_grad()
def pack_lstm(model: nn.Module, precision: str, earlier: nn.Module | None = None) -> nn.Module:
    """earlier: a pack of this model in this precision, made before its weights changed in place.
    It takes the new weights and keeps its compiled code: TorchScript takes about 45 ms to compile
    a pack, holding Python's lock, and learning in the shell changes the weights every few seconds."""
    fresh = PackedLSTM(model, precision)
    if earlier is not None and _refresh(earlier, fresh):
        return earlier
    return try_script(fresh)


def _refresh(earlier: nn.Module, fresh: PackedLSTM) -> bool:
    """Copy fresh's tensors into earlier's, the same values a new pack holds. -> False where it
    cannot: half-precision kernels hold prepacked weights, and an inference tensor takes no
    in-place write outside inference mode."""
    if not all(isinstance(layer, DenseLinear) for layer in [*fresh.layers, fresh.decoder]):
        return False
    pairs = [(earlier.input_rows, fresh.input_rows), (earlier.decoder_bias, fresh.decoder_bias),
             (earlier.decoder.weight_t, fresh.decoder.weight_t), *zip(earlier.biases, fresh.biases),
             *((old.weight_t, new.weight_t) for old, new in zip(earlier.layers, fresh.layers))]
    if any(old.is_inference() for old, _ in pairs) and not torch.is_inference_mode_enabled():
        return False
    for old, new in pairs:
        if old.data_ptr() != new.data_ptr():  # a view of a parameter has its new values already
            old.copy_(new)
    return True
