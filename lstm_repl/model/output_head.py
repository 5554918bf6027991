"""The output layer: top h -> scores over the vocabulary, and the training loss.

Two kinds share one interface, so training, evaluation, sampling and the shell never ask which:
- head(h) (..., H) -> (..., V) scores whose softmax is the next-token distribution: logits for
  the full softmax, the log-probabilities themselves for the adaptive one (softmax of a
  log-distribution is that distribution, so every caller that softmaxes scores stays right);
- head.loss(h, targets, reduction) -> cross-entropy in nats, by the cheapest route each has.

FullSoftmax is nn.Linear itself, so its weights keep the names `decoder.weight`/`decoder.bias`
of every checkpoint written before the adaptive softmax existed.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class FullSoftmax(nn.Linear):
    """A linear decoder over every token: logits (..., V)."""

    def loss(self, h: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """h (N, H), targets (N,) -> cross-entropy in nats (mean or sum)."""
        return F.cross_entropy(self(h).float(), targets, reduction=reduction)


class AdaptiveSoftmax(nn.AdaptiveLogSoftmaxWithLoss):
    """Grave et al.'s adaptive softmax (PyTorch's nn.AdaptiveLogSoftmaxWithLoss): a head over the
    `cutoffs[0]` most frequent tokens plus one entry per tail cluster; cluster i holds the ids
    [cutoffs[i], cutoffs[i+1]) behind a projection to H / div_value^(i+1) units. Training pays for
    the head and for the clusters its targets fall in; the vocabulary's ids must run from the most
    frequent token down (WordVocab builds them so)."""

    def __init__(self, hidden: int, vocab_size: int, cutoffs: list[int], div_value: float):
        super().__init__(hidden, vocab_size, list(cutoffs), div_value=div_value, head_bias=True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """h (..., H) -> log-probabilities of every token (..., V): the full distribution."""
        flat = h.reshape(-1, h.shape[-1])
        return self.log_prob(flat).reshape(*h.shape[:-1], self.n_classes)

    def loss(self, h: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """h (N, H), targets (N,) -> cross-entropy in nats (mean or sum).

        Unlike nn.AdaptiveLogSoftmaxWithLoss.forward, every cluster runs even when no target
        falls in it (on no rows): every parameter then takes part in each backward pass, which
        DistributedDataParallel requires."""
        head_index = targets.clone()
        target_logprob = torch.zeros(targets.shape[0], device=h.device, dtype=torch.float32)
        for i, (low, high) in enumerate(zip(self.cutoffs[:-1], self.cutoffs[1:])):
            rows = ((targets >= low) & (targets < high)).nonzero().squeeze(1)
            cluster = F.log_softmax(self.tail[i](h.index_select(0, rows)).float(), dim=1)
            within = cluster.gather(1, (targets.index_select(0, rows) - low)[:, None]).squeeze(1)
            target_logprob = target_logprob.index_copy(0, rows, within)
            head_index = head_index.index_fill(0, rows, self.shortlist_size + i)
        head = F.log_softmax(self.head(h).float(), dim=1)
        target_logprob = target_logprob + head.gather(1, head_index[:, None]).squeeze(1)
        total = -target_logprob.sum()
        return total if reduction == "sum" else total / max(targets.shape[0], 1)


def make_head(kind: str, hidden: int, vocab_size: int, cutoffs: list[int], div_value: float) -> nn.Module:
    if kind == "adaptive":
        return AdaptiveSoftmax(hidden, vocab_size, cutoffs, div_value)
    return FullSoftmax(hidden, vocab_size)
