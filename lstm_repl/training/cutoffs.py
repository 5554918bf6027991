"""Which output layer a new model gets, and the adaptive softmax's cut-offs. No torch.

The cut-offs come from how often each token occurs in the training text: the head holds the
most frequent tokens that together make HEAD_COVERAGE of the text, the first tail cluster the
next ones up to TAIL_COVERAGE, the last cluster the rest. Ids must run from the most frequent
token down, as WordVocab builds them. Measured (README, "Word level"): below ADAPTIVE_FROM
tokens the adaptive step gains little (1.27x at 2,000 words, 2.09x at 5,000).
"""

from __future__ import annotations

import numpy as np

from lstm_repl.data.token_file import token_counts

HEAD_COVERAGE = 0.90  # of the training tokens, in the head (Shakespeare, words: ~1,000 tokens)
TAIL_COVERAGE = 0.98  # in the head and the first tail cluster together
ADAPTIVE_FROM = 5_000  # word-level vocabularies this large or larger get --softmax adaptive by default
DIV_VALUE = 4.0  # each tail cluster's projection is this much narrower than the one before


def default_softmax(level: str, vocab_size: int) -> str:
    """What --softmax auto means for a new model."""
    return "adaptive" if level == "word" and vocab_size >= ADAPTIVE_FROM else "full"


def choose_cutoffs(counts: np.ndarray) -> list[int]:
    """counts (V,): occurrences of each id in the training text -> increasing cut-offs, each in
    [1, V - 1]: where the head's coverage reaches HEAD_COVERAGE, then TAIL_COVERAGE."""
    vocab_size = len(counts)
    if vocab_size < 3:
        return [1]
    total = max(float(counts.sum()), 1.0)
    covered = np.cumsum(counts, dtype=np.float64) / total
    cuts = []
    for coverage in (HEAD_COVERAGE, TAIL_COVERAGE):
        cut = int(np.searchsorted(covered, coverage)) + 1  # the tokens up to and including that id
        cut = min(max(cut, cuts[-1] + 1 if cuts else 1), vocab_size - 1)
        if not cuts or cut > cuts[-1]:
            cuts.append(cut)
    return cuts


def output_layer(softmax: str, level: str, train_ids: np.ndarray, vocab_size: int) -> dict:
    """The ModelConfig fields of a new model's output layer. softmax: "auto", "full" or
    "adaptive"; train_ids: the tokens it will train on (maybe memory-mapped), whose frequencies
    set the cut-offs."""
    kind = default_softmax(level, vocab_size) if softmax == "auto" else softmax
    if kind != "adaptive":
        return {"softmax": kind}
    counts = token_counts(train_ids, vocab_size)
    return {"softmax": kind, "cutoffs": choose_cutoffs(counts), "div_value": DIV_VALUE}
