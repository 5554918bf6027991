"""A trace as numpy arrays: every quantity (i, f, o, g, c, h; a GRU's r, z, n, h) of every unit of
every layer at each token, with the tokens, their probabilities and the predictions after them.
In a notebook it shows as a heatmap (tokens across, the liveliest units down)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from lstm_repl.analysis.heatmap import grid_html
from lstm_repl.data.vocab import Vocab
from lstm_repl.errors import ConfigError
from lstm_repl.model import LanguageModel
from lstm_repl.model.interventions import Interventions
from lstm_repl.quantities import Quantity
from lstm_repl.session.tracing import TokenTrace, trace_json
from lstm_repl.terminal_text import visible_token

HEATMAP_UNITS = 24  # rows a heatmap shows by default: the units whose values vary most
HEATMAP_TOKENS = 400  # columns a heatmap shows at most: the first ones


@dataclass
class Trace:
    model: str  # the checkpoint's name
    cell: str  # its cell kind: lstm, peephole, coupled, gru, rnn
    quantities: tuple[Quantity, ...]  # what each layer holds, in display order
    tokens: list[str]  # each token's text as it appears in the traced text
    ids: np.ndarray  # (T,) token ids
    probabilities: np.ndarray  # (T,) each token's probability given those before it; nan for the first
    top: list[list[tuple[str, float]]]  # per token: the most likely next tokens and their probabilities
    layers: list[dict[str, np.ndarray]]  # per layer: quantity symbol -> (T, hidden) float32
    _document: Callable[[], dict] | None = field(default=None, repr=False)  # makes to_json's document

    @classmethod
    def of(cls, name: str, network: LanguageModel, vocab: Vocab, pieces: list[str], traces: list[TokenTrace],
           interventions: Interventions | None = None) -> Trace:
        """From trace_ids' traces of the tokens `pieces` (their text) through `network`."""
        layers = [{symbol: np.stack([t.layers[k][symbol] for t in traces]) for symbol in traces[0].layers[k]}
                  for k in range(len(traces[0].layers))]
        trace = cls(name, network.config.cell, tuple(network.rnn.quantities), list(pieces),
                    np.array([t.id for t in traces], dtype=np.int64),
                    np.array([np.nan if t.probability is None else t.probability for t in traces]),
                    [[(vocab.token_text(i), p) for i, p in t.top] for t in traces], layers)
        trace._document = lambda: trace_json(network, vocab, traces, name, pieces, interventions)
        return trace

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, symbol: str) -> np.ndarray:
        """One quantity of every layer: (layers, T, hidden)."""
        if symbol not in self.layers[0]:
            raise ConfigError(f"a {self.cell} trace has {', '.join(self.layers[0])}, not {symbol!r}")
        return np.stack([layer[symbol] for layer in self.layers])

    @property
    def surprisal_bits(self) -> np.ndarray:
        """(T,) -log2 of each token's probability (nan for the first)."""
        with np.errstate(divide="ignore"):
            return -np.log2(np.maximum(self.probabilities, 1e-45))

    def to_json(self) -> dict:
        """The document `lstm-repl trace --json` prints (docs/trace-format.md)."""
        return self._document()

    def heatmap(self, quantity: str = "h", layer: int = -1, units: list[int] | None = None,
                max_units: int = HEATMAP_UNITS, max_tokens: int = HEATMAP_TOKENS) -> HeatmapView:
        """One quantity of one layer (counted from 0; -1 the top) as a grid: tokens across, units
        down (by default the max_units whose values vary most over the text)."""
        values = self[quantity][layer]  # (T, H)
        if units is None:
            units = np.argsort(-values.std(0), kind="stable")[:max_units].tolist()
        q = next(q for q in self.quantities if q.symbol == quantity)
        shown = np.tanh(values) if quantity == "c" else values  # a cell state through the tanh its h sees
        layer_number = layer % len(self.layers) + 1
        title = (f"{self.model}: {q.name} {quantity}{' (through tanh)' if quantity == 'c' else ''}, layer "
                 f"{layer_number} of {len(self.layers)}, {len(units)} units x {min(len(self), max_tokens)} tokens"
                 + (f" (of {len(self):,})" if len(self) > max_tokens else ""))
        return HeatmapView(grid_html(title, [visible_token(t) for t in self.tokens[:max_tokens]],
                                     [f"#{u}" for u in units], shown[:max_tokens, units].T, q.low < 0))

    def _repr_html_(self) -> str:
        return self.heatmap()._repr_html_()


@dataclass(frozen=True)
class HeatmapView:
    """An HTML fragment Jupyter shows (every piece of text in it escaped)."""

    html: str

    def _repr_html_(self) -> str:
        return self.html
