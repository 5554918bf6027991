"""`bench dynamic`: what dynamic evaluation (training/dynamic_eval.py) gains on the bundled models,
over a small grid of its settings, on three texts: the held-out end of the model's own corpus, a
text of its kind it never saw, and a text unlike what it trained on. The defaults of
DynamicConfig are the grid's best on average; the README shows the table this prints."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lstm_repl.bundled import PACKAGE_DIR
from lstm_repl.data import catalogue as corpora
from lstm_repl.data.corpus import read_corpus
from lstm_repl.errors import CorpusError
from lstm_repl.model import checkpoint
from lstm_repl.training.dynamic_eval import DynamicConfig, dynamic_evaluate, gradient_stats

CHARS = 100_000
LEARNING_RATES = (3e-5, 1e-4, 3e-4)
DECAYS = (0.01, 0.1)
SEGMENTS = (25, 50, 100)  # each at the best lr and decay of the default segment
UNSEEN_PACKAGE = "click"  # python-char trained on the standard library; click is installed with lstm-repl


@dataclass(frozen=True)
class Case:
    name: str
    model: str  # a bundled model
    about: str  # where the text comes from
    text: Callable[[int], str]  # characters -> the text


def _corpus_tail(name: str) -> Callable[[int], str]:
    def text(chars: int) -> str:
        entry = corpora.find(corpora.load_catalogue(), name)
        path = corpora.target_path(entry)
        if not path.is_file():
            raise CorpusError(f"bench dynamic reads {path}: fetch it with `lstm-repl corpus get {name}`")
        return read_corpus([path]).text[-chars:]
    return text


def _package_sources(package: str) -> Callable[[int], str]:
    def text(chars: int) -> str:
        module = __import__(package)
        files = sorted(Path(module.__file__).parent.rglob("*.py"))
        return read_corpus(files).text[:chars]
    return text


def _readme(chars: int) -> str:
    path = PACKAGE_DIR.parent / "README.md"
    if not path.is_file():
        raise CorpusError(f"bench dynamic reads {path}, which this installation lacks; run it from a checkout")
    return read_corpus([path]).text[:chars]


CASES = {
    "shakespeare": Case("shakespeare", "shakespeare-char", "the last {chars:,} characters of its corpus "
                        "(held out)", _corpus_tail("shakespeare")),
    "python": Case("python", "python-char", f"{{chars:,}} characters of the {UNSEEN_PACKAGE} package's sources "
                   "(never seen: it trained on the standard library)", _package_sources(UNSEEN_PACKAGE)),
    "readme": Case("readme", "shakespeare-char", "lstm-repl's README.md ({chars:,} characters at most)", _readme),
}


@dataclass
class Row:
    case: str
    config: DynamicConfig | None  # None: no learning
    bpc: float
    moved: float = 0.0


def grid() -> list[DynamicConfig]:
    """The lr x decay grid at the default segment length."""
    segment = DynamicConfig().segment
    return [DynamicConfig(lr=lr, decay=decay, segment=segment) for lr, decay in itertools.product(LEARNING_RATES,
                                                                                                   DECAYS)]


def run_case(case: Case, chars: int, configs: list[DynamicConfig], report: Callable[[Row], None]) -> list[Row]:
    """The case's text read without learning and then with each config (and with each segment
    length at the best config found); -> every row, each reported as it is measured."""
    loaded = checkpoint.load(case.model)
    text = case.text(chars)
    rows = [Row(case.name, None, dynamic_evaluate(loaded.model, loaded.vocab, text, DynamicConfig(),
                                                  learn=False)["bits_per_character"])]
    report(rows[0])
    stats = {}

    def measure(config: DynamicConfig) -> None:
        if config.segment not in stats:
            stats[config.segment] = gradient_stats(loaded.model, config)
        result = dynamic_evaluate(loaded.model, loaded.vocab, text, config, stats[config.segment])
        rows.append(Row(case.name, config, result["bits_per_character"], result["weights_moved"]))
        report(rows[-1])

    for config in configs:
        measure(config)
    best = min((r for r in rows if r.config is not None), key=lambda r: r.bpc).config
    for segment in SEGMENTS:
        if segment != best.segment:
            measure(DynamicConfig(lr=best.lr, decay=best.decay, segment=segment))
    return rows


def best_overall(rows: list[Row]) -> DynamicConfig | None:
    """The config with the largest mean gain over the cases that measured it."""
    static = {r.case: r.bpc for r in rows if r.config is None}
    gains: dict[DynamicConfig, list[float]] = {}
    for r in rows:
        if r.config is not None:
            gains.setdefault(r.config, []).append(static[r.case] - r.bpc)
    complete = {c: g for c, g in gains.items() if len(g) == len(static)}
    return max(complete, key=lambda c: sum(complete[c]) / len(complete[c])) if complete else None
