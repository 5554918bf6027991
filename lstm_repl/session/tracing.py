"""Per-token traces through the gate path: probabilities, surprisal, top-k and every gate.

A trace is what `lstm-repl trace --json` prints and what the shell's `:save` writes; the JSON
schema is in docs/trace-format.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Iterable, TextIO

import numpy as np
import torch

from lstm_repl.model.interventions import Interventions
from lstm_repl.model import Gates, LanguageModel, State
from lstm_repl.data.vocab import UNK_ID, Vocab

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
        return surprisal_bits(self.probability)


def surprisal_bits(probability: float | None) -> float | None:
    """-log2(probability): how surprised the model was, in bits; None for a token it did not
    predict (the first). A probability that underflowed to 0 counts as float32's smallest."""
    return None if probability is None else -math.log2(max(float(probability), 1e-45))


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
    edits: Interventions | None = None,
) -> tuple[list[TokenTrace], State | None, torch.Tensor | None]:
    """Read ids one at a time through the gate path. `probs` is the prediction before ids[0].

    Returns the traces, the final state and the prediction for the token after the last.
    """
    model.eval()
    traces = []
    for token in ids:
        probability = None if probs is None else float(probs[token])
        logits, state, gates = model.step(torch.tensor([token], device=model.device), state, edits=edits)
        probs = logits[0].float().softmax(-1)
        traces.append(TokenTrace(token, probability, top_predictions(probs, top_k), gates_to_numpy(gates)))
    return traces, state, probs


def quantities_json(model: LanguageModel) -> list[dict]:
    return [
        {"symbol": q.symbol, "name": q.name, "low": q.low, "high": q.high, "derived": q.derived}
        for q in model.rnn.quantities
    ]


def trace_json(
    model: LanguageModel, vocab: Vocab, traces: list[TokenTrace], checkpoint_name: str, pieces: list[str],
    edits: Interventions | None = None,
) -> dict:
    """The documented trace document (docs/trace-format.md). pieces: each token's text as typed."""
    header = document_header(model, vocab, checkpoint_name, "".join(pieces), [t.probability for t in traces])
    if edits:
        header["interventions"] = edits.to_json()
    tokens = [token_json(i, t.id, piece, t.probability, t.top, t.layers, vocab)
              for i, (t, piece) in enumerate(zip(traces, pieces))]
    return {**header, "tokens": tokens}


def document_header(model: LanguageModel, vocab: Vocab, checkpoint_name: str, text: str,
                    probabilities, gates_from: int = 0) -> dict:
    """Everything but the tokens. probabilities: each token's (None for one without)."""
    bits = [surprisal_bits(p) for p in probabilities if p is not None]
    total, count = sum(bits, 0.0), len(bits)
    config = model.config
    header = {
        "format": TRACE_FORMAT,
        "version": TRACE_VERSION,
        "checkpoint": checkpoint_name,
        "cell": config.cell,
        "level": vocab.level,
        "layers": config.layers,
        "hidden": config.hidden,
        "quantities": quantities_json(model),
        "text": text,
        "total_surprisal_bits": total,
        "mean_surprisal_bits": total / count if count else None,
    }
    if gates_from:
        header["gates_from"] = gates_from  # tokens before this index have "layers": null
    return header


def token_json(index: int, token_id: int, text: str, probability: float | None, top: list[tuple[int, float]],
               layers: list[dict[str, np.ndarray]] | None, vocab: Vocab) -> dict:
    return {
        "index": index,
        "text": text,
        "id": token_id,
        "unknown": token_id == UNK_ID,
        "probability": probability,
        "surprisal_bits": surprisal_bits(probability),
        "top": [{"text": vocab.token_text(i), "id": i, "probability": p} for i, p in top],
        "layers": None if layers is None else
        [{name: [round(float(v), 6) for v in values] for name, values in layer.items()} for layer in layers],
    }


def write_document(f: TextIO, header: dict, tokens: Iterable[dict]) -> int:
    """Write a trace document token by token, so a long one never sits in memory whole.
    -> the number of tokens written."""
    f.write(json.dumps(header, ensure_ascii=False)[:-1] + ', "tokens": [')
    count = 0
    for token in tokens:
        f.write((",\n" if count else "\n") + json.dumps(token, ensure_ascii=False))
        count += 1
    f.write("\n]}\n")
    return count
