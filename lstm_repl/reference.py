"""The plainest alternative, as a yardstick: a short loop of PyTorch's own modules.

Embedding(V, 64) -> nn.LSTM(64, 512, 2 layers, dropout 0.2) -> Linear(512, V); Adam at a
constant 2e-3, gradient norm clipped at 5; batch 64 contiguous streams of 100 characters, the
state carried detached from chunk to chunk (truncated BPTT); float32. `bench quality` trains it
beside the project's defaults, for the same time or the same steps, and scores both alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lstm_repl.data import StreamBatches


@dataclass(frozen=True)
class Recipe:
    embed: int = 64
    hidden: int = 512
    layers: int = 2
    dropout: float = 0.2
    lr: float = 2e-3
    grad_clip: float = 5.0
    batch_size: int = 64
    seq_len: int = 100
    seed: int = 1337


class ReferenceModel(nn.Module):
    """The recipe's network. Its parameter names match LanguageModel's, so a trained reference
    loads into a LanguageModel and is scored by the same code."""

    def __init__(self, vocab_size: int, recipe: Recipe):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, recipe.embed)
        self.rnn = nn.LSTM(recipe.embed, recipe.hidden, recipe.layers, dropout=recipe.dropout, batch_first=True)
        self.decoder = nn.Linear(recipe.hidden, vocab_size)

    def forward(self, x, state=None):
        out, state = self.rnn(self.embedding(x), state)
        return self.decoder(out), state


def train_reference(ids: np.ndarray, vocab_size: int, recipe: Recipe, max_steps: int | None = None,
                    time_limit_s: float | None = None,
                    on_step: Callable[[int, float, ReferenceModel], None] | None = None) -> ReferenceModel:
    """Train on ids until max_steps or time_limit_s of training time; on_step(step, seconds, model)
    after each step (time spent inside it is not counted, so a caller may validate there)."""
    torch.manual_seed(recipe.seed)
    model = ReferenceModel(vocab_size, recipe)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    streams = torch.from_numpy(StreamBatches(ids, recipe.batch_size, recipe.seq_len).streams.astype(np.int64))
    chunks = (streams.shape[1] - 1) // recipe.seq_len
    state, step, trained_s = None, 0, 0.0
    while (max_steps is None or step < max_steps) and (time_limit_s is None or trained_s < time_limit_s):
        started = time.perf_counter()
        chunk = step % chunks
        if chunk == 0:
            state = None
        window = streams[:, chunk * recipe.seq_len : (chunk + 1) * recipe.seq_len + 1]
        logits, state = model(window[:, :-1], state)
        loss = F.cross_entropy(logits.reshape(-1, vocab_size), window[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        state = tuple(s.detach() for s in state)
        step += 1
        trained_s += time.perf_counter() - started
        if on_step is not None:
            on_step(step, trained_s, model)
    return model.eval()
