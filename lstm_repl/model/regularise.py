"""AWD-LSTM's regularisers (Merity, Keskar and Socher 2017), applied in training only.

- embedding dropout: whole tokens dropped from the embedding matrix for a batch, so a word is
  sometimes unknown everywhere it occurs;
- locked (variational) dropout: one mask per sequence, the same at every time step, on the
  embedded input and on the top layer's output;
- weight drop: DropConnect on the recurrent matrices W_hh, one mask per batch, so the fused
  kernel still runs (the dropped matrices are passed in for the call).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call


def embedding_dropout(embedding: nn.Embedding, tokens: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p == 0:
        return embedding(tokens)
    weight = embedding.weight
    keep = weight.new_empty((weight.shape[0], 1)).bernoulli_(1 - p) / (1 - p)
    return nn.functional.embedding(tokens, weight * keep)


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """x: (B, T, D), one mask per sequence shared by its T steps."""
    if not training or p == 0:
        return x
    keep = x.new_empty((x.shape[0], 1, x.shape[2])).bernoulli_(1 - p) / (1 - p)
    return x * keep


def recurrent_names(stack: nn.Module) -> list[str]:
    return [name for name, _ in stack.named_parameters() if name.startswith("weight_hh_l")]


def run_with_weight_drop(stack: nn.Module, x: torch.Tensor, state, p: float, training: bool):
    """stack.run(x, state), its recurrent matrices DropConnected with probability p in training."""
    if not training or p == 0:
        return stack.run(x, state)
    dropped = {f"stack.{name}": nn.functional.dropout(getattr(stack, name), p, True)
               for name in recurrent_names(stack)}
    return functional_call(_Run(stack), dropped, (x, state), strict=False, tie_weights=False)


class _Run(nn.Module):
    """stack.run as a module's forward, for functional_call (which calls forward)."""

    def __init__(self, stack: nn.Module):
        super().__init__()
        self.stack = stack

    def forward(self, x: torch.Tensor, state):
        return self.stack.run(x, state)
