"""The language model: embedding -> recurrent stack -> output layer (full or adaptive softmax).

Two execution paths over one set of weights:
- forward(tokens, state): the stack's fused kernel, for training, validation and long prompts;
- step(token, state): the gate path, one token at a time, returning every gate of every layer.
  In eval mode with autograd off, kinds that have a packed form (lstm: model/packed.py) step
  through it.
"""

from __future__ import annotations

import torch
from torch import nn

from lstm_repl.cells import stack_class
from lstm_repl.config import ModelConfig
from lstm_repl.model.interventions import Interventions
from lstm_repl.model.base import Gates, State
from lstm_repl.model.output_head import make_head
from lstm_repl.model.regularise import embedding_dropout, locked_dropout, run_with_weight_drop


class LanguageModel(nn.Module):
    def __init__(self, config: ModelConfig, initialise: bool = True):
        """initialise=False: the embedding is left uninitialised, for weights about to be loaded
        (its normal_ on the meta device would pull in torch's compile stack: seconds at start-up)."""
        super().__init__()
        self.config = config
        weight = None if initialise else torch.empty(config.vocab_size, config.embed)
        self.embedding = nn.Embedding(config.vocab_size, config.embed, _weight=weight)
        self.rnn = stack_class(config.cell)(config.embed, config.hidden, config.layers, config.dropout)
        self.decoder = make_head(config.softmax, config.hidden, config.vocab_size, config.cutoffs, config.div_value)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight
        self._packed: dict[str, nn.Module] = {}  # precision -> pack of the weights as they were at _packed_from
        self._packed_from: tuple = ()

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def zero_state(self, batch: int = 1) -> State:
        return self.rnn.zero_state(batch, self.device, self.embedding.weight.dtype)

    def forward(self, tokens: torch.Tensor, state: State | None = None, targets: torch.Tensor | None = None,
                reduction: str = "mean") -> tuple[torch.Tensor, State]:
        """Fused path. tokens: (B, T) int64 -> scores (B, T, V) whose softmax is the next-token
        distribution (logits; log-probabilities with the adaptive softmax), final state. Given
        targets (B, T): the cross-entropy in nats instead (mean or sum over the tokens), by the
        output layer's cheap route, never the (B, T, V) scores."""
        out, state = self.read(tokens, state)
        if targets is None:
            return self.decoder(out), state
        return self.decoder.loss(out.reshape(-1, out.shape[-1]), targets.reshape(-1), reduction), state

    def read(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Fused path without the decoder, for reading text whose logits are not all wanted (a
        T x V tensor is hundreds of MB at word level). tokens: (B, T) -> top h (B, T, H), state."""
        assert tokens.dim() == 2, f"tokens must be (batch, time), got {tuple(tokens.shape)}"
        config, training = self.config, self.training
        x = locked_dropout(embedding_dropout(self.embedding, tokens, config.embed_dropout, training),
                           config.input_dropout, training)
        out, state = run_with_weight_drop(self.rnn, x, state, config.weight_drop, training)
        return locked_dropout(out, config.output_dropout, training), state

    def step(
        self, token: torch.Tensor, state: State | None = None, precision: str = "fp32",
        edits: Interventions | None = None,
    ) -> tuple[torch.Tensor, State, Gates]:
        """Gate path. token: (B,) int64 -> logits (B, V), new state, per-layer gates. precision:
        of the weights a packed step reads (see packed()); kinds without a pack run fp32.
        `edits`: interventions (interventions.py), taken by the plain gate path, never packed."""
        assert token.dim() == 1, f"token must be (batch,), got {tuple(token.shape)}"
        if state is None:
            state = self.zero_state(token.shape[0])
        packed = None if edits else self.packed(precision)
        if packed is not None:
            logits, new_state, gates = packed.step(token, list(state))
            return logits, tuple(new_state), gates
        if edits:
            top, state, gates = self.rnn.step(self.embedding(token), state, edits)
        else:
            top, state, gates = self.rnn.step(self.embedding(token), state)
        return self.decoder(top), state, gates

    def packed(self, precision: str = "fp32") -> nn.Module | None:
        """With autograd off and in eval mode, this kind's packed gate path (model/packed.py), its
        weights in "fp32" or "fp16"; None for kinds without one. Packs are dropped on a switch to
        training mode (fused optimizers update in place without a trace), rebuilt when a
        parameter's storage has changed (a load, a move to another device), and refreshed in place
        when only a parameter's version has (weights written in place: the shell's learning). The pack
        holds a linear decoder: a model with the adaptive softmax steps through the plain path."""
        if self.rnn.packer is None or self.config.softmax != "full" or self.training or torch.is_grad_enabled():
            return None
        fingerprint = tuple((p._version, p.data_ptr()) for p in self.parameters())
        earlier: dict[str, nn.Module] = {}
        if fingerprint != self._packed_from:
            in_place = [ptr for _, ptr in fingerprint] == [ptr for _, ptr in self._packed_from]
            earlier = self._packed if in_place else {}  # weights written in place: the packs take them
            self._packed, self._packed_from = {}, fingerprint
        if precision not in self._packed:
            self._packed[precision] = self.rnn.packer(self, precision, earlier.get(precision))
        return self._packed[precision]

    def train(self, mode: bool = True) -> "LanguageModel":
        if mode:
            self._packed = {}
        return super().train(mode)

    def step_sequence(
        self, tokens: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State, list[Gates]]:
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
