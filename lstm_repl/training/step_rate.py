"""How fast this machine trains the model in hand: a few of its real training steps, timed.

The planner turns the rate into passes over the corpus, and `auto` precision compares it across
precisions: measured on the model and batch being trained, not on a stand-in (a bf16 step of a
small model can gain 1.1x where the real 2 x 512 gains 1.8x).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np
import torch

from lstm_repl.config import TrainConfig
from lstm_repl.model import LanguageModel
from lstm_repl.model.precision import autocast, decide_training_precision
from lstm_repl.training.distributed import Ranks, from_leader

# per precision, after one untimed step that builds the kernels. The median of five: the best of
# two read word-level steps (a tenth of a second each) up to 1.8x faster than the run then went
# (bench matrix rows, plan against made), and a plan of 5 passes where 3 were made picks the
# wrong regime
TIMED_STEPS = 5


def tokens_per_second(model: LanguageModel, batch: int, seq_len: int, precisions: tuple[str, ...],
                      clock: Callable[[], float] = time.perf_counter,
                      text_ids: np.ndarray | None = None) -> dict[str, float]:
    """Training tokens a second for each precision: forward and backward of `batch` x `seq_len`
    tokens, interleaved across precisions, the median of TIMED_STEPS each. The tokens are the
    corpus's own where given (text_ids: an adaptive softmax costs more for rare tokens, so
    uniform random ids would understate the speed of a word model), else random. The model's
    gradients are cleared after; its weights and the caller's random stream are left as they were."""
    device = model.device
    timed: dict[str, list[float]] = {p: [] for p in precisions}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.enable_grad():
        torch.manual_seed(0)
        tokens = _sample(text_ids, batch, seq_len + 1, model.config.vocab_size).to(device)
        was_training = model.training
        model.train()
        for round_ in range(TIMED_STEPS + 1):
            for precision in precisions:
                _sync(device)
                started = clock()
                _step(model, tokens, precision)
                _sync(device)
                if round_:
                    timed[precision].append(clock() - started)
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return {p: batch * seq_len / max(statistics.median(seconds), 1e-9) for p, seconds in timed.items()}


def _sample(text_ids: np.ndarray | None, rows: int, length: int, vocab_size: int) -> torch.Tensor:
    """rows x length token ids: evenly spaced windows of the text, or random ids without one."""
    if text_ids is None or len(text_ids) < length:
        return torch.randint(0, vocab_size, (rows, length))
    starts = np.linspace(0, len(text_ids) - length, rows).astype(np.int64)
    return torch.from_numpy(np.stack([np.asarray(text_ids[s : s + length], dtype=np.int64) for s in starts]))


def _step(model: LanguageModel, tokens: torch.Tensor, precision: str) -> None:
    with autocast(model.device, precision):
        loss, _ = model(tokens[:, :-1], targets=tokens[:, 1:])
    loss.backward()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def choose_training_precision(config: TrainConfig, model: LanguageModel, ranks: Ranks = Ranks(),
                              clock: Callable[[], float] = time.perf_counter,
                              text_ids: np.ndarray | None = None) -> tuple[str, dict[str, float]]:
    """config.precision for this model at this batch (auto: timed in each precision that runs
    here), and the rates measured; every process takes the first one's figures, so all decide alike."""
    def rates_of(precisions: tuple[str, ...]) -> dict[str, float]:
        measured = tokens_per_second(model, config.batch_size, config.seq_len, precisions, clock, text_ids)
        return dict(zip(precisions, from_leader(ranks, [measured[p] for p in precisions])))

    return decide_training_precision(config.precision, model.device, model.config.cell, rates_of)
