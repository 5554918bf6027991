"""The plainest alternatives, as yardsticks: short loops of PyTorch's own modules.

Char level (Recipe()): Embedding(V, 64) -> nn.LSTM(64, 512, 2 layers, dropout 0.2) -> Linear(512,
V); Adam at a constant 2e-3, gradient norm clipped at 5; batch 64 contiguous streams of 100
characters. Word level (EXAMPLES_WORD): pytorch/examples' word_language_model as its README runs
it: Embedding(V, 200) -> dropout 0.2 -> nn.LSTM(200, 200, 2 layers, dropout 0.2) -> dropout 0.2 ->
Linear(200, V), weights uniform in +-0.1; plain SGD at lr 20, gradient norm clipped at 0.25,
batch 20, bptt 35, lr / 4 after an epoch whose validation did not improve. Both carry the state
detached from chunk to chunk (truncated BPTT), in float32. `bench quality` trains one beside the
project's defaults, for the same time or the same steps, and scores both alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lstm_repl.data.corpus import StreamBatches


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
    optimizer: str = "adam"  # or "sgd"
    anneal: float = 1.0  # divide lr by this after an epoch whose validation loss did not improve (1: never)
    io_dropout: bool = False  # dropout also on the embedding and the top layer's output
    init_range: float | None = None  # embedding and decoder weights uniform in +-this, decoder bias 0


EXAMPLES_WORD = Recipe(embed=200, hidden=200, layers=2, dropout=0.2, lr=20.0, grad_clip=0.25, batch_size=20,
                       seq_len=35, optimizer="sgd", anneal=4.0, io_dropout=True, init_range=0.1)


def recipe_for(level: str) -> Recipe:
    return EXAMPLES_WORD if level == "word" else Recipe()


class ReferenceModel(nn.Module):
    """The recipe's network. Its parameter names match LanguageModel's, so a trained reference
    loads into a LanguageModel and is scored by the same code."""

    def __init__(self, vocab_size: int, recipe: Recipe):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, recipe.embed)
        self.rnn = nn.LSTM(recipe.embed, recipe.hidden, recipe.layers, dropout=recipe.dropout, batch_first=True)
        self.decoder = nn.Linear(recipe.hidden, vocab_size)
        self.drop = nn.Dropout(recipe.dropout if recipe.io_dropout else 0.0)
        if recipe.init_range is not None:
            nn.init.uniform_(self.embedding.weight, -recipe.init_range, recipe.init_range)
            nn.init.uniform_(self.decoder.weight, -recipe.init_range, recipe.init_range)
            nn.init.zeros_(self.decoder.bias)

    def forward(self, x, state=None):
        out, state = self.rnn(self.drop(self.embedding(x)), state)
        return self.decoder(self.drop(out)), state


def train_reference(ids: np.ndarray, vocab_size: int, recipe: Recipe, max_steps: int | None = None,
                    time_limit_s: float | None = None,
                    on_step: Callable[[int, float, ReferenceModel], None] | None = None,
                    validate: Callable[[ReferenceModel], float] | None = None) -> ReferenceModel:
    """Train on ids until max_steps or time_limit_s of training time; on_step(step, seconds, model)
    after each step (time spent inside it is not counted, so a caller may validate there);
    validate(model) -> validation loss at each epoch's end, when the recipe anneals (not counted)."""
    torch.manual_seed(recipe.seed)
    model = ReferenceModel(vocab_size, recipe)
    optimizer = _optimizer(model, recipe)
    best_val = float("inf")
    streams = torch.from_numpy(StreamBatches(ids, recipe.batch_size, recipe.seq_len).streams.astype(np.int64))
    chunks = (streams.shape[1] - 1) // recipe.seq_len
    state, step, trained_s = None, 0, 0.0
    while (max_steps is None or step < max_steps) and (time_limit_s is None or trained_s < time_limit_s):
        started = time.perf_counter()
        chunk = step % chunks
        if chunk == 0:
            state = None
            if step and validate is not None and recipe.anneal != 1.0:
                best_val = _anneal_if_stalled(model, optimizer, recipe, validate, best_val)
                started = time.perf_counter()
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


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=recipe.lr)
    return torch.optim.Adam(model.parameters(), lr=recipe.lr)


def _anneal_if_stalled(model: nn.Module, optimizer: torch.optim.Optimizer, recipe: Recipe,
                       validate: Callable[[ReferenceModel], float], best_val: float) -> float:
    """pytorch/examples' schedule: lr / anneal when this epoch's validation loss is no better."""
    model.eval()
    with torch.no_grad():
        val = validate(model)
    model.train()
    if val >= best_val:
        for group in optimizer.param_groups:
            group["lr"] /= recipe.anneal
    return min(val, best_val)
