"""The language model: embedding -> recurrent stack -> dropout -> linear decoder.

Two execution paths over one set of weights:
- forward(tokens, state): the stack's fused kernel, for training, validation and long prompts;
- step(token, state): the gate path, one token at a time, returning every gate of every layer.
  With autograd off, kinds that have a packed form (lstm: model/packed.py) step through it.
"""

from __future__ import annotations

import torch
from torch import nn

from lstm_repl.config import ModelConfig
from lstm_repl.model.base import Gates, State
from lstm_repl.model.coupled import CoupledStack
from lstm_repl.model.gru import GRUStack
from lstm_repl.model.lstm import LSTMStack
from lstm_repl.model.packed import pack_lstm
from lstm_repl.model.peephole import PeepholeStack
from lstm_repl.model.rnn import RNNStack

CELL_STACKS: dict[str, type[nn.Module]] = {
    stack.kind: stack for stack in (LSTMStack, PeepholeStack, CoupledStack, GRUStack, RNNStack)
}
PACKERS = {"lstm": pack_lstm}  # kinds whose inference step has its weights rearranged for speed


def register_cell(stack_class: type[nn.Module]) -> None:
    CELL_STACKS[stack_class.kind] = stack_class


class LanguageModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed)
        self.rnn = CELL_STACKS[config.cell](config.embed, config.hidden, config.layers, config.dropout)
        self.drop = nn.Dropout(config.dropout)
        self.decoder = nn.Linear(config.hidden, config.vocab_size)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight
        self._packed: dict[str, tuple[tuple, nn.Module]] = {}  # precision -> (weights' fingerprint, pack)

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def zero_state(self, batch: int = 1) -> State:
        return self.rnn.zero_state(batch, self.device, self.embedding.weight.dtype)

    def forward(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Fused path. tokens: (B, T) int64 -> logits (B, T, V), final state."""
        assert tokens.dim() == 2, f"tokens must be (batch, time), got {tuple(tokens.shape)}"
        out, state = self.rnn.run(self.embedding(tokens), state)  # (B, T, H)
        return self.decoder(self.drop(out)), state

    def step(self, token: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State, Gates]:
        """Gate path. token: (B,) int64 -> logits (B, V), new state, per-layer gates."""
        assert token.dim() == 1, f"token must be (batch,), got {tuple(token.shape)}"
        if state is None:
            state = self.zero_state(token.shape[0])
        packed = self.packed()
        if packed is not None:
            logits, new_state, gates = packed.step(token, list(state))
            return logits, tuple(new_state), gates
        top, state, gates = self.rnn.step(self.embedding(token), state)
        return self.decoder(self.drop(top)), state, gates

    def packed(self, precision: str = "fp32") -> nn.Module | None:
        """With autograd off, this kind's packed gate path (model/packed.py) with weights in "fp32"
        or "fp16", rebuilt when any parameter has changed (an optimizer step, a load, a move);
        None for kinds without one, in training mode, or with autograd on."""
        if self.config.cell not in PACKERS or self.training or torch.is_grad_enabled():
            return None
        fingerprint = tuple((p._version, p.data_ptr()) for p in self.parameters())
        cached = self._packed.get(precision)
        if cached is None or cached[0] != fingerprint:
            cached = (fingerprint, PACKERS[self.config.cell](self, precision))
            self._packed[precision] = cached
        return cached[1]

    def step_sequence(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State, list[Gates]]:
        """Gate path over a sequence. tokens: (B, T) -> logits (B, T, V), state, gates per step."""
        logits, all_gates = [], []
        for t in range(tokens.shape[1]):
            step_logits, state, gates = self.step(tokens[:, t], state)
            logits.append(step_logits)
            all_gates.append(gates)
        return torch.stack(logits, 1), state, all_gates

    def flatten(self) -> None:
        """Re-pack fused weights after loading (cuDNN wants them contiguous)."""
        if hasattr(self.rnn, "flatten_parameters"):
            self.rnn.flatten_parameters()


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameters per part (embedding, rnn, decoder) and in total; a tied matrix counts once."""
    seen: set[int] = set()
    parts: dict[str, int] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            continue
        seen.add(id(param))
        part = name.split(".")[0]
        parts[part] = parts.get(part, 0) + param.numel()
    parts["total"] = sum(parts.values())
    return parts
