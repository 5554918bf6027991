"""The text a session has read, as tokens: each token's id and probability, where it ends, the
text typed where the model read <unk>, and (word level) the word still being typed.

Knows nothing of the model: the session reads tokens and records them here, and asks here which
tokens an edit touches. Per token it keeps an int and a float (and at word and bpe level an end
offset; at bpe level also how many bytes of an unfinished character follow it).

At bpe level a token's piece is the characters it completes (a token may hold part of one), and
an edit re-encodes from the last place before it where the text may be cut (data/bpe.py,
safe_cut), at most LOOKBACK tokens back: so a keystroke encodes a word or two, never the text.
"""

from __future__ import annotations

import bisect
import re
from array import array

from lstm_repl.data.bpe import SAFE_CUT, BpeVocab
from lstm_repl.data.vocab import UNK_ID, Vocab

WORD = re.compile(r"\w+")
LOOKBACK = 256  # bpe: tokens an edit looks back for a safe cut (a word longer than this is re-encoded from here)


class TokenText:
    def __init__(self, vocab: Vocab):
        self.vocab = vocab
        self.ids = array("i")  # token ids read so far
        self.probs = array("f")  # the model's probability for each of them, before reading it
        self._ends = array("q")  # word and bpe level: where each token ends in the text (char level: i + 1)
        self._pending = array("b")  # bpe: bytes of an unfinished character after each token
        self._bpe = vocab if isinstance(vocab, BpeVocab) else None
        self._unknown: dict[int, str] = {}  # index -> the text typed there, for tokens read as <unk>
        self.partial = ""  # word level: the word being typed, not yet read by the model

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def text(self) -> str:
        """Everything read so far, as typed (O(length): for saving and tests, not per keystroke)."""
        return "".join(self.piece(i) for i in range(len(self.ids))) + self.partial

    def piece(self, index: int) -> str:
        """The text of token `index` as typed (an unknown character keeps its own text; at bpe
        level the characters the token completes)."""
        if self._bpe is not None:
            return self._bpe.spell([self.ids[index]], self.pending_before(index))[0][0]
        return self._unknown.get(index) or self.vocab.token_text(self.ids[index])

    def shown(self, index: int) -> str:
        """Token `index` as the panel names it: its piece, or at bpe level the token itself (its
        bytes when it holds part of a character)."""
        return self.vocab.token_text(self.ids[index]) if self._bpe is not None else self.piece(index)

    def spelled(self, token: int) -> str:
        """The piece `token` would have if read next (bpe: the characters it would complete)."""
        return self.spelled_after([token])[0]

    def spelled_after(self, ids: list[int]) -> list[str]:
        """The pieces of tokens that would follow the text read so far."""
        if self._bpe is not None:
            return self._bpe.spell(ids, self.pending_before(len(self.ids)))[0]
        return [self.vocab.token_text(token) for token in ids]

    def pending_before(self, index: int) -> bytes:
        """bpe: the bytes of an unfinished character the tokens before `index` end with."""
        need = self._pending[index - 1] if index else 0
        data, position = b"", index
        while len(data) < need:
            position -= 1
            data = self._bpe.token_bytes[self.ids[position]] + data
        return data[len(data) - need :] if need else b""

    def text_length(self) -> int:
        return self.end(len(self.ids)) + len(self.partial)

    def end(self, count: int) -> int:
        """Characters covered by the first `count` tokens."""
        if count == 0:
            return 0
        return self._ends[count - 1] if self.vocab.level != "char" else count

    def append(self, token: int, piece: str, probability: float) -> None:
        if token == UNK_ID:
            self._unknown[len(self.ids)] = piece
        if self._bpe is not None:
            self._pending.append(self._bpe.spell([token], self.pending_before(len(self.ids)))[1].__len__())
        self.ids.append(token)
        self.probs.append(probability)
        if self.vocab.level != "char":
            self._ends.append(self.end(len(self.ids) - 1) + len(piece))

    def truncate(self, length: int) -> None:
        for index in self._unknown_between(length, len(self.ids)):
            del self._unknown[index]
        del self.ids[length:], self.probs[length:], self._ends[length:], self._pending[length:]

    # ------------------------------------------------------------ what an edit touches

    def first_token_touched(self, start: int) -> int:
        """The first token an edit at character `start` may change: at word level the one before
        it too (typing "m" after "the" makes "them")."""
        if self.vocab.level == "char":
            return min(start, len(self.ids))
        first = min(bisect.bisect_right(self._ends, max(0, start - 1)), len(self.ids))
        return self._safe_start(first) if self._bpe is not None else first

    def _safe_start(self, first: int) -> int:
        """bpe: the last token at or before `first` (at most LOOKBACK back) that starts where the
        text may be cut, so re-encoding from it gives what encoding the whole text would."""
        low = max(0, first - LOOKBACK)
        for index in range(first, low, -1):
            piece = self.piece(index) if index < len(self.ids) else ""
            before = self.piece(index - 1)
            if piece[:1] in (" ", "\n") and piece and before and SAFE_CUT.match(before[-1] + piece[0], 1):
                return index
        while low < first and low and self._pending[low - 1]:
            low += 1  # never inside a character
        return low

    def text_between(self, first: int, start: int) -> str:
        """The text from where token `first` starts up to character `start` (a token or two)."""
        need, parts, index = start - self.end(first), [], first
        while need > sum(map(len, parts)) and index < len(self.ids):
            parts.append(self.piece(index))
            index += 1
        if index == len(self.ids):
            parts.append(self.partial)
        return "".join(parts)[:need]

    def tokenize(self, text: str) -> tuple[list[int], list[str], str]:
        """Text -> its tokens' ids and pieces, and the word still being typed (word level)."""
        ids, pieces = self.vocab.tokenize(text)
        if self.vocab.level == "word" and pieces and WORD.fullmatch(pieces[-1]):
            return ids[:-1], pieces[:-1], pieces[-1]  # a word still being typed: it ends at the next space or mark
        return ids, pieces, ""

    def same_tokens(self, first: int, new_ids: list[int], pieces: list[str]) -> int:
        """How many of the tokens from `first` on stay: same id, and for <unk> the same text."""
        same = common_prefix_length(self.ids[first : first + len(new_ids)].tolist(), new_ids)
        unknown = self._unknown_between(first, first + same)
        return next((i - first for i in unknown if self._unknown[i] != pieces[i - first]), same)

    def _unknown_between(self, low: int, high: int) -> list[int]:
        """Sorted indices of <unk> tokens in [low, high), in whichever way is shorter to look."""
        if high - low < len(self._unknown):
            return [i for i in range(low, high) if i in self._unknown]
        return sorted(i for i in self._unknown if low <= i < high)


def common_prefix_length(a, b) -> int:
    """Length of the common prefix of two sequences (str, list or array), by halving: the
    comparisons run in C, so a long text costs microseconds."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    low, high = 0, n  # a[:low] == b[:low], a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle
    return low
