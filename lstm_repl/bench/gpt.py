"""A second yardstick people would pick instead of an LSTM: a small character GPT, trained as
nanoGPT's README trains one on a CPU (4 layers, 4 heads, width 128, block 64, batch 12, AdamW at
1e-3 with 100 warm-up steps and a cosine decay to 1e-4, no dropout).

The network follows nanoGPT's model.py: learned position embeddings, pre-norm blocks of causal
self-attention and a 4x GELU MLP, a final LayerNorm, the output matrix tied to the token
embedding. The decay runs over the budget (the fraction of time or steps used), as lstm-repl's
schedule does, where nanoGPT's runs over a fixed lr_decay_iters. Scoring reads the held-out text in
windows of a block, each after the first scoring only its second half, so every character is
predicted from at least half a block of context.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class GPTRecipe:
    layers: int = 4
    heads: int = 4
    width: int = 128
    block: int = 64
    batch_size: int = 12
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1  # nanoGPT's default, on matrices only
    betas: tuple[float, float] = (0.9, 0.99)  # its shakespeare_char config (a small batch)
    grad_clip: float = 1.0
    seed: int = 1337


class Block(nn.Module):
    def __init__(self, recipe: GPTRecipe):
        super().__init__()
        self.heads = recipe.heads
        self.norm1, self.norm2 = nn.LayerNorm(recipe.width), nn.LayerNorm(recipe.width)
        self.qkv = nn.Linear(recipe.width, 3 * recipe.width)
        self.proj = nn.Linear(recipe.width, recipe.width)
        self.mlp = nn.Sequential(nn.Linear(recipe.width, 4 * recipe.width), nn.GELU(),
                                 nn.Linear(4 * recipe.width, recipe.width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(width, dim=2)
        q, k, v = (t.view(batch, length, self.heads, width // self.heads).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, length, width))
        return x + self.mlp(self.norm2(x))


class CharGPT(nn.Module):
    def __init__(self, vocab_size: int, recipe: GPTRecipe):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, recipe.width)
        self.positions = nn.Embedding(recipe.block, recipe.width)
        self.blocks = nn.Sequential(*(Block(recipe) for _ in range(recipe.layers)))
        self.norm = nn.LayerNorm(recipe.width)
        self.head = nn.Linear(recipe.width, vocab_size, bias=False)
        self.head.weight = self.tokens.weight
        self.apply(_init)
        for name, param in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(param, 0.0, 0.02 / math.sqrt(2 * recipe.layers))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.head(self.norm(self.blocks(self.tokens(ids) + self.positions(positions))))


def _init(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def learning_rate(recipe: GPTRecipe, step: int, used: float) -> float:
    """Linear warm-up over the first warmup_steps, then a half cosine to min_lr by the budget's end."""
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / recipe.warmup_steps
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, used)))
    return recipe.min_lr + (recipe.lr - recipe.min_lr) * cosine


def train_gpt(ids: np.ndarray, vocab_size: int, recipe: GPTRecipe, max_steps: int | None = None,
              time_limit_s: float | None = None,
              on_step: Callable[[int, float, CharGPT], None] | None = None) -> CharGPT:
    """nanoGPT's loop: each step a batch of random blocks of ids; until max_steps or time_limit_s
    of training time (what on_step does is not counted)."""
    torch.manual_seed(recipe.seed)
    generator = np.random.default_rng(recipe.seed)
    model = CharGPT(vocab_size, recipe)
    optimizer = _optimizer(model, recipe)
    data = torch.from_numpy(ids.astype(np.int64))
    step, trained_s = 0, 0.0
    while (max_steps is None or step < max_steps) and (time_limit_s is None or trained_s < time_limit_s):
        started = time.perf_counter()
        used = max(step / max_steps if max_steps else 0.0, trained_s / time_limit_s if time_limit_s else 0.0)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(recipe, step, used)
        starts = torch.from_numpy(generator.integers(0, len(data) - recipe.block - 1, recipe.batch_size))
        window = torch.stack([data[s : s + recipe.block + 1] for s in starts.tolist()])
        logits = model(window[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab_size), window[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        step += 1
        trained_s += time.perf_counter() - started
        if on_step is not None:
            on_step(step, trained_s, model)
    return model.eval()


def _optimizer(model: CharGPT, recipe: GPTRecipe) -> torch.optim.AdamW:
    decayed = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decayed, "weight_decay": recipe.weight_decay}, {"params": others, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=recipe.lr, betas=recipe.betas)


@torch.no_grad()
def held_out_bits(model: CharGPT, ids: np.ndarray, block: int, batch: int = 64) -> tuple[float, int]:
    """Bits over ids[1:] (each token predicted from those before it, with at least half a block of
    context once there is that much), and how many tokens were scored."""
    data = torch.from_numpy(ids.astype(np.int64))
    half, last = block // 2, len(data) - 1
    starts = list(range(0, max(last - block, 0) + half, half))  # each window [s, s + block), clipped at the end
    total, count = 0.0, 0
    for i in range(0, len(starts), batch):
        for length in sorted({min(block, last - s) for s in starts[i : i + batch]}):
            group = [s for s in starts[i : i + batch] if min(block, last - s) == length]
            inputs = torch.stack([data[s : s + length] for s in group])
            targets = torch.stack([data[s + 1 : s + length + 1] for s in group])
            losses = F.cross_entropy(model(inputs).transpose(1, 2), targets, reduction="none")
            for row, s in zip(losses, group):
                kept = row if s == 0 else row[half:]
                total += kept.sum().item()
                count += kept.numel()
    return total / math.log(2), count
