"""Finding what units do: score every unit of every layer against a feature of a text, measure how
often each gate saturates, and read single units' values along a text (for heatmaps).
The reading is unit_trace.py's; the scores are unit_scores.py's; the features are features.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lstm_repl.analysis.features import Feature, per_token
from lstm_repl.model import LanguageModel
from lstm_repl.analysis.unit_scores import (
    AurocAccumulator,
    CorrelationAccumulator,
    SaturationAccumulator,
    UnitScore,
    ranked,
)
from lstm_repl.analysis.unit_trace import trace_units
from lstm_repl.data.vocab import Vocab


UNBOUNDED = ("c",)  # a cell state can grow past any range; the others are gates, tanh or their product


@dataclass
class Tokens:
    ids: np.ndarray  # (n,) token ids
    ends: np.ndarray  # (n,) where each token ends in the text (characters)


def tokenize(vocab: Vocab, text: str) -> Tokens:
    token_ids, pieces = vocab.tokenize(text)
    ids = np.asarray(token_ids, dtype=np.int64)
    return Tokens(ids, np.cumsum([len(p) for p in pieces], dtype=np.int64))


@dataclass
class FeatureScores:
    feature: Feature
    tokens: int
    positives: int | None  # binary features: tokens inside
    scores: dict[tuple[int, str], np.ndarray]  # (layer, quantity) -> (hidden,) AUROC or r

    def ranked(self) -> list[UnitScore]:
        return ranked(self.scores, self.feature.binary)


def score_units(model: LanguageModel, vocab: Vocab, text: str, feature: Feature) -> FeatureScores:
    tokens = tokenize(vocab, text)
    target = per_token(feature(text), tokens.ends)
    hidden = model.config.hidden
    bounds = {q.symbol: None if q.symbol in UNBOUNDED else (q.low, q.high) for q in model.rnn.quantities}
    accumulators: dict[tuple[int, str], AurocAccumulator | CorrelationAccumulator] = {}
    for chunk in trace_units(model, tokens.ids):
        labels = torch.from_numpy(target[chunk.positions])
        for key, values in chunk.values.items():
            if key not in accumulators:
                accumulators[key] = (AurocAccumulator(hidden, bounds[key[1]]) if feature.binary
                                     else CorrelationAccumulator(hidden))
            accumulators[key].add(values, labels)
    positives = int(target.sum()) if feature.binary else None
    return FeatureScores(feature, len(tokens.ids), positives, {k: a.scores() for k, a in accumulators.items()})


def gate_symbols(model: LanguageModel) -> list[str]:
    """The cell's gates: the quantities that are sigmoids on [0, 1] (f, i, o; r, z), not derived."""
    return [q.symbol for q in model.rnn.quantities if (q.low, q.high) == (0.0, 1.0) and q.symbol not in ("c", "h")]


def saturation(model: LanguageModel, vocab: Vocab, text: str) -> dict[tuple[int, str], tuple[np.ndarray, np.ndarray]]:
    """(layer, gate) -> per unit (share of tokens below 0.1, share above 0.9)."""
    return saturation_of_ids(model, tokenize(vocab, text).ids)


def saturation_of_ids(model: LanguageModel, ids: np.ndarray) -> dict[tuple[int, str], tuple[np.ndarray, np.ndarray]]:
    """saturation() of token ids. Leaves the model in eval mode (the caller restores training)."""
    gates = set(gate_symbols(model))
    accumulators: dict[tuple[int, str], SaturationAccumulator] = {}
    for chunk in trace_units(model, ids):
        for (layer, symbol), values in chunk.values.items():
            if symbol in gates:
                accumulators.setdefault((layer, symbol), SaturationAccumulator(model.config.hidden)).add(values)
    return {key: a.fractions() for key, a in sorted(accumulators.items())}


def unit_values(model: LanguageModel, vocab: Vocab, text: str, units: list[tuple[int, int]],
                quantity: str) -> tuple[Tokens, np.ndarray]:
    """The values of the given (layer, unit)s at each token of `text`: (tokens, (units, n))."""
    tokens = tokenize(vocab, text)
    out = np.zeros((len(units), len(tokens.ids)), dtype=np.float32)
    for chunk in trace_units(model, tokens.ids):
        for row, (layer, unit) in enumerate(units):
            out[row, chunk.positions] = chunk.values[(layer, quantity)][:, unit].cpu().numpy()
    return tokens, out
