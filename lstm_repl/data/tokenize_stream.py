"""Tokenizing a corpus that arrives in chunks: the vocabulary counted in one pass, the ids
encoded in another, each equal to what the whole text in memory would give."""

from __future__ import annotations

from collections import Counter
from itertools import repeat
from typing import Iterable, Iterator

import numpy as np

from lstm_repl.data.bpe import BpeVocab, encode_pieces, learn_bpe
from lstm_repl.data.token_file import token_dtype
from lstm_repl.data.vocab import UNK_ID, WORD_PATTERN, CharVocab, Vocab, WordVocab

MAX_CODE_POINT = 0x10FFFF


def word_pieces(chunks: Iterable[str]) -> Iterator[list[str]]:
    """The word tokenizer's pieces, a list per chunk. The last piece of a chunk may go on in the
    next one (a word cut by the border), so it is held back and read again with that chunk;
    every earlier piece is final, the pattern being matched greedily left to right."""
    carry = ""
    for chunk in chunks:
        pieces = WORD_PATTERN.findall(carry + chunk)
        carry = pieces.pop() if pieces else ""
        if pieces:
            yield pieces
    if carry:
        yield [carry]


def count_vocab(chunks: Iterable[str], level: str, max_size: int = 20000, min_count: int = 1) -> Vocab:
    """The vocabulary build_vocab would make of the joined chunks, in one pass over them (bpe:
    learned, max_size tokens)."""
    if level == "bpe":
        return learn_bpe(chunks, max_size)
    if level == "char":
        seen = np.zeros(MAX_CODE_POINT + 1, bool)
        for chunk in chunks:
            seen[_code_points(chunk)] = True  # (3x the speed of a set of characters)
        return CharVocab([chr(point) for point in np.flatnonzero(seen)])
    counts: Counter = Counter()
    for pieces in word_pieces(chunks):
        counts.update(pieces)
    return WordVocab.from_counts(counts, max_size, min_count)


def encode_chunks(chunks: Iterable[str], vocab: Vocab) -> Iterator[np.ndarray]:
    """vocab.encode of the joined chunks, an array per chunk, in token_dtype(len(vocab))."""
    dtype = token_dtype(len(vocab))
    if isinstance(vocab, BpeVocab):
        yield from encode_pieces(chunks, vocab, dtype)
        return
    if vocab.level == "char":
        table = _code_point_table(vocab, dtype)
        for chunk in chunks:
            yield table[_code_points(chunk)]
        return
    for pieces in word_pieces(chunks):
        yield np.fromiter(map(vocab.ids.get, pieces, repeat(UNK_ID)), dtype=dtype, count=len(pieces))


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)


def _code_point_table(vocab: Vocab, dtype: np.dtype) -> np.ndarray:
    """Code point -> id, for a whole chunk's characters at once (4.5 MB at most)."""
    table = np.full(MAX_CODE_POINT + 1, UNK_ID, dtype)
    for token, token_id in vocab.ids.items():
        table[ord(token)] = token_id
    return table
