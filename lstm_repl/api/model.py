"""A loaded model, as Python code and notebooks use it (and the CLI's generate, eval, trace and
units commands):

    model = lstm_repl.load("shakespeare-char")            # a bundled name, a checkpoint folder or a run
    "".join(model.generate("ROMEO:", length=200, seed=1))  # an iterator of text pieces
    model.trace("To be, or not")                          # every gate per token, as numpy; a heatmap in Jupyter
    model.score(text)                                     # bits per character, as `lstm-repl eval`
    model.units(text, "in-quotes")[:5]                    # the units that track a feature, best first
    model.explain("To be", "1:42")                        # the equations on one unit, with the numbers
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import torch

from lstm_repl.analysis.explain import Explanation, explain_unit
from lstm_repl.analysis.features import Feature, find_feature
from lstm_repl.analysis.unit_scores import UnitScore
from lstm_repl.analysis.unit_search import FeatureScores, score_units
from lstm_repl.api.trace import Trace
from lstm_repl.config import SampleConfig
from lstm_repl.data.vocab import Vocab
from lstm_repl.errors import ConfigError
from lstm_repl.model import LanguageModel, checkpoint
from lstm_repl.model.checkpoint import Checkpoint
from lstm_repl.model.interventions import Interventions
from lstm_repl.session.intervention_parser import parse_layer_unit
from lstm_repl.session.sampling import generate_text
from lstm_repl.session.tracing import trace_ids
from lstm_repl.training.evaluation import evaluate_text

SAMPLE_SETTINGS = tuple(f.name for f in dataclasses.fields(SampleConfig))


def load(name_or_path: str | Path, device: str | torch.device = "cpu") -> Model:
    """A bundled model's name (shakespeare-char, ...), a checkpoint folder, or a run folder (its
    best checkpoint). Raises CheckpointError for a missing, broken or hostile one."""
    return Model(checkpoint.load(name_or_path, device))


class Model:
    """A checkpoint's model and vocabulary, with what lstm-repl does with them."""

    def __init__(self, loaded: Checkpoint):
        self.checkpoint = loaded

    def __repr__(self) -> str:
        config = self.network.config
        return (f"<lstm_repl.Model {self.name!r}: {self.vocab.level}-level {self.network.rnn.name}, "
                f"{config.layers} x {config.hidden}, {len(self.vocab):,} tokens>")

    @property
    def name(self) -> str:
        return self.checkpoint.name

    @property
    def path(self) -> Path | None:
        return self.checkpoint.path

    @property
    def network(self) -> LanguageModel:
        """The torch module (embedding, recurrent stack, output layer)."""
        return self.checkpoint.model

    @property
    def vocab(self) -> Vocab:
        return self.checkpoint.vocab

    # ---------------------------------------------------------------- generating

    def generate(self, prompt: str = "", config: SampleConfig | None = None,
                 interventions: Interventions | None = None, **settings) -> Iterator[str]:
        """The text of each token generated after `prompt`, as it is chosen. `config` (a
        SampleConfig) and `settings` (any of its fields: temperature=0.5, length=100, seed=1, ...,
        overriding config's) are checked here, before the first token (ConfigError)."""
        return generate_text(self.network, self.vocab, prompt, sample_config(config, settings), interventions)

    # ---------------------------------------------------------------- reading

    def trace(self, text: str, top_k: int = 5, interventions: Interventions | None = None) -> Trace:
        """Every quantity of every unit of every layer at each token of `text` (the gate path),
        with each token's probability and the top_k predictions after it."""
        pieces = self._pieces(text)
        traces, _, _ = trace_ids(self.network, self.vocab.encode(text), top_k, edits=interventions)
        return Trace.of(self.name, self.network, self.vocab, pieces, traces, interventions)

    def score(self, text: str) -> float:
        """Bits per character of `text` under the model, as `lstm-repl eval` computes it."""
        return self.evaluation(text)["bits_per_character"]

    def evaluation(self, text: str) -> dict:
        """Every figure `lstm-repl eval --json` prints for `text` (CorpusError under 2 tokens)."""
        return evaluate_text(self.network, self.vocab, text)

    def units(self, text: str, feature: str | Feature) -> list[UnitScore]:
        """Every (layer, quantity, unit) ranked against a feature of `text`, best first, as
        `lstm-repl units` ranks them. feature: a built-in's name (in-quotes, ...), "/regex/", or
        an analysis.features.Feature."""
        return self.unit_scores(text, feature).ranked()

    def unit_scores(self, text: str, feature: str | Feature) -> FeatureScores:
        """The scores behind units(): every unit's AUROC or correlation, per (layer, quantity)."""
        chosen = find_feature(feature) if isinstance(feature, str) else feature
        result = score_units(self.network, self.vocab, text, chosen)
        if chosen.binary and result.positives in (0, result.tokens):
            where = "inside" if result.positives == 0 else "outside"
            raise ConfigError(f"no token of the text is {where} {chosen.name}: nothing to score; "
                              "give a text that has both")
        return result

    def explain(self, text: str, unit: str | tuple[int, int]) -> Explanation:
        """The equations of one unit at the last token of `text`, with their numbers. unit:
        "LAYER:UNIT" (layer 1 nearest the input) or (layer, unit) counted from 0."""
        ids = self.vocab.encode(text)
        if not ids:
            raise ConfigError("the text is empty; give at least one token to explain")
        config = self.network.config
        layer, index = parse_layer_unit(unit, config.layers, config.hidden) if isinstance(unit, str) else unit
        if not (0 <= layer < config.layers and 0 <= index < config.hidden):
            raise ConfigError(f"the model has {config.layers} layers of {config.hidden} units")
        return explain_unit(self.network, self.vocab, ids, layer, index)

    def _pieces(self, text: str) -> list[str]:
        pieces = self.vocab.split(text)
        if not pieces:
            raise ConfigError("the text is empty; give at least one token")
        return pieces


def sample_config(config: SampleConfig | None, settings: dict) -> SampleConfig:
    """config with `settings` (SampleConfig field names) in place, checked (ConfigError)."""
    unknown = sorted(set(settings) - set(SAMPLE_SETTINGS))
    if unknown:
        raise ConfigError(f"unknown sampling setting {', '.join(unknown)}; use {', '.join(SAMPLE_SETTINGS)}")
    return dataclasses.replace(config or SampleConfig(), **settings)
