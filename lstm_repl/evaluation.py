"""Scoring a model on a corpus through the fused path: loss, bits per character, perplexity."""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch.nn import functional as F

from lstm_repl.data import validation_batches
from lstm_repl.errors import CorpusError
from lstm_repl.model import LanguageModel
from lstm_repl.vocab import UNK_ID, Vocab


@torch.inference_mode()
def summed_loss(model: LanguageModel, ids: np.ndarray, batch_size: int, seq_len: int,
                max_tokens: int | None = None) -> tuple[float, int]:
    """Cross-entropy in nats summed over (the first max_tokens of) ids, read as `batch_size`
    contiguous streams with the state carried, and the number of tokens it covers."""
    total, count, state = 0.0, 0, None
    for x, y in validation_batches(ids, batch_size, seq_len, max_tokens):
        x_t = torch.from_numpy(x.astype(np.int64)).to(model.device)
        y_t = torch.from_numpy(y.astype(np.int64)).to(model.device)
        logits, state = model(x_t, state)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y_t.reshape(-1), reduction="sum"))
        count += y.size
    return total, count


@torch.inference_mode()
def evaluate_text(model: LanguageModel, vocab: Vocab, text: str, batch_size: int = 32, seq_len: int = 256) -> dict:
    ids = vocab.encode_array(text)
    if len(ids) < 2:
        raise CorpusError("the corpus holds fewer than 2 tokens; give it more text")
    model.eval()
    start = time.perf_counter()
    total, count = summed_loss(model, ids, batch_size, seq_len)
    elapsed = time.perf_counter() - start
    loss = total / count
    unknown = int(np.count_nonzero(ids == UNK_ID))
    result = {
        "loss_nats": loss,
        "tokens_scored": count,
        "tokens": int(len(ids)),
        "unknown_tokens": unknown,
        "unknown_fraction": unknown / len(ids),
        "tokens_per_s": count / max(elapsed, 1e-9),
        "level": vocab.level,
    }
    if vocab.level == "char":
        result["bits_per_character"] = loss / math.log(2)
    else:
        result["perplexity"] = math.exp(min(loss, 50.0))
    return result
