"""Features of a text, one value per character, that a unit may track: what `lstm-repl units`
scores units against (after Karpathy, Johnson and Fei-Fei 2015, who found cells for quotes,
brackets, line length and indentation).

A feature's value at a character is what is true once that character has been read, as a unit's
value is after reading it: an opening quote is inside the quotes, the closing one is not.
Binary features are scored by AUROC, numeric ones by correlation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lstm_repl.errors import ConfigError

QUOTES = ("\"\"\"", "'''", "\"", "'")
OPENING, CLOSING = "([{", ")]}"


@dataclass(frozen=True)
class Feature:
    name: str
    binary: bool
    describe: str
    compute: Callable[[str], np.ndarray]

    def __call__(self, text: str) -> np.ndarray:
        return self.compute(text)


def in_quotes(text: str) -> np.ndarray:
    """Inside "...", '...' or a triple-quoted string. A single quote between two letters is an
    apostrophe ("don't"); a one-line string ends at the end of its line (an unclosed quote)."""
    inside = np.zeros(len(text), dtype=bool)
    open_quote, i = None, 0
    while i < len(text):
        if open_quote is None:
            quote = next((q for q in QUOTES if text.startswith(q, i)), None)
            if quote and not _apostrophe(text, i, quote):
                open_quote = quote
                inside[i : i + len(quote)] = True
                i += len(quote)
                continue
        elif text.startswith(open_quote, i) and not _escaped(text, i):
            i, open_quote = i + len(open_quote), None
            continue
        elif text[i] == "\n" and len(open_quote) == 1:
            open_quote = None
        inside[i] = open_quote is not None
        i += 1
    return inside


def _apostrophe(text: str, i: int, quote: str) -> bool:
    return quote == "'" and 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()


def _escaped(text: str, i: int) -> bool:
    """Whether an odd number of backslashes stands right before position i."""
    start = i
    while start > 0 and text[start - 1] == "\\":
        start -= 1
    return (i - start) % 2 == 1


def bracket_depth(text: str) -> np.ndarray:
    """Nesting depth of (), [] and {} outside strings, after each character."""
    quoted = in_quotes(text)
    depth, level = np.zeros(len(text), dtype=np.int32), 0
    for i, ch in enumerate(text):
        if not quoted[i]:
            if ch in OPENING:
                level += 1
            elif ch in CLOSING:
                level = max(0, level - 1)
        depth[i] = level
    return depth


def line_position(text: str) -> np.ndarray:
    """Characters since the last newline (a newline itself is 0)."""
    out, column = np.zeros(len(text), dtype=np.float32), 0
    for i, ch in enumerate(text):
        column = 0 if ch == "\n" else column + 1
        out[i] = column
    return out


def indent(text: str) -> np.ndarray:
    """The indentation (leading spaces, a tab as 4) of the line so far."""
    out, width, leading = np.zeros(len(text), dtype=np.float32), 0, True
    for i, ch in enumerate(text):
        if ch == "\n":
            width, leading = 0, True
        elif leading and ch in " \t":
            width += 4 if ch == "\t" else 1
        else:
            leading = False
        out[i] = width
    return out


def word_start(text: str) -> np.ndarray:
    chars = np.array([c.isalnum() or c == "_" for c in text], dtype=bool)
    previous = np.concatenate([[False], chars[:-1]]) if len(text) else chars
    return chars & ~previous


def regex_feature(pattern: str) -> Feature:
    try:
        compiled = re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:  # a{4294967296}; 100,000 nested groups
        shown = repr(pattern) if len(pattern) <= 60 else f"{pattern[:40]!r}... ({len(pattern):,} characters)"
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise ConfigError(f"--regex {shown} is not a valid regular expression ({reason})") from None

    def inside(text: str) -> np.ndarray:
        out = np.zeros(len(text), dtype=bool)
        for match in compiled.finditer(text):
            out[match.start() : match.end()] = True
        return out

    return Feature(f"/{pattern}/", True, f"inside a match of /{pattern}/", inside)


FEATURES: dict[str, Feature] = {f.name: f for f in (
    Feature("in-quotes", True, 'inside "..." or \'...\' (or a triple-quoted string)', in_quotes),
    Feature("in-brackets", True, "inside (), [] or {} (depth > 0, outside strings)",
            lambda text: bracket_depth(text) > 0),
    Feature("bracket-depth", False, "nesting depth of (), [] and {}",
            lambda text: bracket_depth(text).astype(np.float32)),
    Feature("line-position", False, "characters since the last newline", line_position),
    Feature("indent", False, "indentation of the current line", indent),
    Feature("word-start", True, "the first character of a word", word_start),
    Feature("uppercase", True, "an uppercase letter", lambda text: np.array([c.isupper() for c in text], bool)),
    Feature("digit", True, "a digit", lambda text: np.array([c.isdigit() for c in text], bool)),
    Feature("newline", True, "a newline", lambda text: np.array([c == "\n" for c in text], bool)),
)}


def find_feature(name: str) -> Feature:
    if name.startswith("/") and name.endswith("/") and len(name) > 2:
        return regex_feature(name[1:-1])
    if name not in FEATURES:
        shown = repr(name) if len(name) <= 40 else f"{name[:30]!r}... ({len(name):,} characters)"
        raise ConfigError(f"unknown feature {shown}; use one of {', '.join(FEATURES)} or /regex/")
    return FEATURES[name]


def per_token(values: np.ndarray, token_ends: np.ndarray) -> np.ndarray:
    """A per-character feature at each token's last character (word level: one value per word; a
    bpe token that completes no character: the one before it)."""
    return values[np.maximum(token_ends, 1) - 1]
