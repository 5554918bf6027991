"""Per-token traces through the gate path: probabilities, surprisal, top-k and every gate.

A trace is what `lstm-repl trace --json` prints and what the shell's `:save` writes; the JSON
schema is in docs/trace-format.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lstm_repl.model import Gates, LanguageModel, State
from lstm_repl.vocab import UNK_ID, Vocab

TRACE_FORMAT = "lstm-repl-trace"
TRACE_VERSION = 1


@dataclass
class TokenTrace:
    id: int
    probability: float | None  # under the model given the tokens before it; None for the first
    top: list[tuple[int, float]]  # next-token predictions after reading this token
    layers: list[dict[str, np.ndarray]]  # per layer: quantity symbol -> (hidden,) float32

    @property
    def surprisal_bits(self) -> float | None:
        if self.probability is None:
            return None
        return -math.log2(max(self.probability, 1e-45))


def gates_to_numpy(gates: Gates, row: int = 0) -> list[dict[str, np.ndarray]]:
    return [{name: value[row].detach().float().cpu().numpy() for name, value in layer.items()} for layer in gates]


def top_predictions(probs: torch.Tensor, k: int) -> list[tuple[int, float]]:
    """The k most likely next tokens (unknown token excluded). probs: (V,)"""
    values, ids = torch.topk(probs, min(k + 1, probs.shape[0]))
    pairs = [(int(i), float(p)) for i, p in zip(ids, values) if int(i) != UNK_ID]
    return pairs[:k]


@torch.inference_mode()
def trace_ids(
    model: LanguageModel,
    ids: list[int],
    top_k: int = 5,
    state: State | None = None,
    probs: torch.Tensor | None = None,
) -> tuple[list[TokenTrace], State | None, torch.Tensor | None]:
    """Read ids one at a time through the gate path. `probs` is the prediction before ids[0].

    Returns the traces, the final state and the prediction for the token after the last.
    """
    model.eval()
    traces = []
    for token in ids:
        probability = None if probs is None else float(probs[token])
        logits, state, gates = model.step(torch.tensor([token], device=model.device), state)
        probs = logits[0].float().softmax(-1)
        traces.append(TokenTrace(token, probability, top_predictions(probs, top_k), gates_to_numpy(gates)))
    return traces, state, probs


def quantities_json(model: LanguageModel) -> list[dict]:
    return [
        {"symbol": q.symbol, "name": q.name, "low": q.low, "high": q.high, "derived": q.derived}
        for q in model.rnn.quantities
    ]


def trace_json(model: LanguageModel, vocab: Vocab, traces: list[TokenTrace], checkpoint_name: str, pieces: list[str]) -> dict:
    """The documented trace document (docs/trace-format.md). pieces: each token's text as typed."""
    surprisals = [t.surprisal_bits for t in traces if t.surprisal_bits is not None]
    config = model.config
    return {
        "format": TRACE_FORMAT,
        "version": TRACE_VERSION,
        "checkpoint": checkpoint_name,
        "cell": config.cell,
        "level": vocab.level,
        "layers": config.layers,
        "hidden": config.hidden,
        "quantities": quantities_json(model),
        "text": "".join(pieces),
        "total_surprisal_bits": sum(surprisals),
        "mean_surprisal_bits": sum(surprisals) / len(surprisals) if surprisals else None,
        "tokens": [_token_json(i, t, piece, vocab) for i, (t, piece) in enumerate(zip(traces, pieces))],
    }


def _token_json(index: int, trace: TokenTrace, piece: str, vocab: Vocab) -> dict:
    return {
        "index": index,
        "text": piece,
        "id": trace.id,
        "unknown": trace.id == UNK_ID,
        "probability": trace.probability,
        "surprisal_bits": trace.surprisal_bits,
        "top": [{"text": vocab.token_text(i), "id": i, "probability": p} for i, p in trace.top],
        "layers": [{name: [round(float(v), 6) for v in values] for name, values in layer.items()} for layer in trace.layers],
    }
