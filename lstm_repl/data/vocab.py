"""Character and word tokenizers: text <-> token ids, with a reserved unknown token. No torch."""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from lstm_repl.errors import CheckpointError

UNK_ID = 0
CHAR_UNK_TEXT = "\ufffd"  # what an unknown character decodes to
WORD_UNK_TEXT = "<unk>"

# Every character is matched by exactly one branch, so joining the pieces gives the text back.
WORD_PATTERN = re.compile(r"\w+|[^\w\s]|\n|[^\S\n]+")


PRIMER = "\n"  # read before any text: the shell, generate and training samples start after a newline


class Vocab:
    """A list of token texts; id 0 is the unknown token."""

    level = ""
    unk_text = ""

    def __init__(self, tokens: Sequence[str]):
        self.tokens = [self.unk_text, *tokens]
        self.ids = {tok: i for i, tok in enumerate(self.tokens) if i != UNK_ID}

    def __len__(self) -> int:
        return len(self.tokens)

    def primer_id(self) -> int:
        """The token read before any text, so the first token has a prediction (<unk> for a
        vocabulary without a newline)."""
        return self.ids.get(PRIMER, UNK_ID)

    def split(self, text: str) -> list[str]:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        ids = self.ids
        return [ids.get(piece, UNK_ID) for piece in self.split(text)]

    def encode_array(self, text: str) -> np.ndarray:
        return np.fromiter((self.ids.get(p, UNK_ID) for p in self.split(text)), dtype=np_dtype(len(self)))

    def tokenize(self, text: str) -> tuple[list[int], list[str]]:
        """Text -> its token ids and each token's piece of the text (their join is the text)."""
        pieces = self.split(text)
        ids = self.ids
        return [ids.get(piece, UNK_ID) for piece in pieces], pieces

    def decode(self, ids: Iterable[int]) -> str:
        tokens = self.tokens
        return "".join(tokens[i] for i in ids)

    def pieces(self, ids: Iterable[int]) -> list[str]:
        """The text of each token as the vocabulary spells it (an <unk> as its own spelling)."""
        return [self.tokens[i] for i in ids]

    def token_text(self, token_id: int) -> str:
        return self.tokens[token_id]

    def to_json(self) -> dict:
        return {"level": self.level, "tokens": self.tokens[1:]}


class CharVocab(Vocab):
    level = "char"
    unk_text = CHAR_UNK_TEXT

    def split(self, text: str) -> list[str]:
        return list(text)

    @classmethod
    def build(cls, text: str) -> "CharVocab":
        return cls(sorted(set(text)))


class WordVocab(Vocab):
    """Words, single punctuation marks, newlines and runs of other whitespace are the tokens."""

    level = "word"
    unk_text = WORD_UNK_TEXT

    def split(self, text: str) -> list[str]:
        return WORD_PATTERN.findall(text)

    @classmethod
    def build(cls, text: str, max_size: int = 20000, min_count: int = 1) -> "WordVocab":
        return cls.from_counts(Counter(WORD_PATTERN.findall(text)), max_size, min_count)

    @classmethod
    def from_counts(cls, counts: Counter, max_size: int = 20000, min_count: int = 1) -> "WordVocab":
        """counts: in order of first appearance (a Counter updated along the text is)."""
        kept = [tok for tok, n in counts.most_common(max(0, max_size - 1)) if n >= min_count]
        # Most frequent first keeps ids stable for ties by first appearance (Counter is ordered).
        return cls(kept)


def build_vocab(text: str, level: str, max_size: int = 20000, min_count: int = 1) -> Vocab:
    if level == "char":
        return CharVocab.build(text)
    return WordVocab.build(text, max_size=max_size, min_count=min_count)


MAX_TOKENS = 1 << 24  # more than any vocabulary worth training; a longer list is not one
_SURROGATE = re.compile("[\ud800-\udfff]")


def vocab_from_json(data: dict) -> Vocab:
    """The vocabulary a checkpoint keeps, once it is one a UTF-8 corpus could have given: distinct,
    non-empty strings without lone surrogates (one character each at char level), at most
    MAX_TOKENS of them. Control characters and ESC are tokens like any other (a coloured log file
    has them): they load, and whatever shows them goes through terminal_text."""
    try:
        level, tokens = data["level"], data["tokens"]
        cls = {"char": CharVocab, "word": WordVocab}[level]
    except (KeyError, TypeError) as exc:
        raise _malformed(f"{exc}") from None
    if not isinstance(tokens, list):
        raise _malformed("tokens must be a list of strings")
    if len(tokens) > MAX_TOKENS:
        raise _malformed(f"{len(tokens):,} tokens, more than {MAX_TOKENS:,}")
    seen: set[str] = set()
    for index, token in enumerate(tokens):
        problem = _token_problem(token, level, seen)
        if problem:
            raise _malformed(f"token {index + 1} {problem}")
        seen.add(token)
    return cls(tokens)


def _token_problem(token: object, level: str, seen: set[str]) -> str | None:
    """What makes `token` one no corpus gives (None: nothing)."""
    if not isinstance(token, str):
        return "is not a string"
    if not token:
        return "is empty"
    if level == "char" and len(token) != 1:
        return f"is {len(token)} characters long; a char-level token is one"
    if surrogate := _SURROGATE.search(token):
        return f"holds a lone surrogate (U+{ord(surrogate.group()):04X}), which UTF-8 text cannot"
    if token in seen:
        return "appears twice"
    return None


def _malformed(why: str) -> CheckpointError:
    return CheckpointError(f"the vocabulary in the checkpoint is malformed ({why}); retrain or re-save it")


def np_dtype(vocab_size: int) -> type:
    return np.uint16 if vocab_size <= 65535 else np.int32
