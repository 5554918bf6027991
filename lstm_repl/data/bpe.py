"""Byte-level BPE: text <-> subword token ids, learned from the corpus with Hugging Face's
`tokenizers` (its fast encoder), spelled back here from each token's bytes. No torch.

Every text round-trips: the 256 byte tokens are always in the vocabulary, so any UTF-8 text
encodes, and decoding joins the tokens' bytes. A token may hold part of a character (a byte of
"€"): its `token_text` keeps such bytes as surrogate escapes (U+DC80 + byte, shown as ‹e2› by
terminal_text), and its *piece* in a text (what `split` gives) is the characters it completes
there, so pieces always join into the text.

Splitting follows GPT-2's pre-tokenizer (a word keeps the space before it). No pre-token spans a
letter or digit followed by a space or newline, so the text may be cut at such a place and each
side encoded alone (`safe_cut`): that is how a corpus is encoded in chunks and how the shell
encodes only a bounded window around an edit.

The tokenizer's JSON (tokenizers' own format) is never handed to tokenizers' loader: its
vocabulary and merges are checked here and the tokenizer is built from them (`bpe_from_json`).
"""

from __future__ import annotations

import codecs
import json
import re
from functools import lru_cache
from typing import Iterable, Iterator

import numpy as np

from lstm_repl.config import BPE_MAX_VOCAB, BPE_MIN_VOCAB
from lstm_repl.data.vocab import UNK_ID, Vocab
from lstm_repl.errors import CheckpointError

BPE_UNK_TEXT = "<unk>"  # id 0, as every vocabulary has; byte-level BPE never produces it
MIN_BPE_VOCAB, MAX_BPE_VOCAB = BPE_MIN_VOCAB, BPE_MAX_VOCAB
MAX_TOKEN_BYTES = 1 << 10  # a longer token is not one a corpus made
TRAIN_PIECE = 1 << 16  # characters handed to the trainer at a time (cut at safe places)


@lru_cache(maxsize=1)
def byte_alphabet() -> tuple[str, ...]:
    """GPT-2's printable stand-in for each byte (byte b -> character), as tokenizers' ByteLevel uses."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shown, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            shown[byte] = chr(byte)
        else:
            shown[byte] = chr(256 + extra)
            extra += 1
    return tuple(shown[b] for b in range(256))


@lru_cache(maxsize=1)
def _byte_of() -> dict[str, int]:
    return {char: byte for byte, char in enumerate(byte_alphabet())}


def token_bytes(byte_level: str) -> bytes:
    """A token as tokenizers writes it ('Ġthe') -> its bytes (b' the'); KeyError for another character."""
    byte_of = _byte_of()
    return bytes(byte_of[char] for char in byte_level)


def escaped(data: bytes) -> str:
    """Bytes as text, a byte that is not part of a whole UTF-8 character as its surrogate escape."""
    return data.decode("utf-8", "surrogateescape")


_SURROGATES = re.compile("[\ud800-\udfff]+")
SAFE_CUT = re.compile(r"(?<=[^\W_])[ \n]")  # a space or newline right after a letter or digit


def safe_cut(text: str, low: int, high: int) -> int:
    """The last place in (low, high] where text may be cut and each side encoded alone (a space
    or newline right after a letter or digit: no pre-token spans it); `low` when there is none."""
    cut = low
    for match in SAFE_CUT.finditer(text, low + 1, min(high, len(text) - 1) + 1):
        cut = match.start()
    return cut


class BpeVocab(Vocab):
    """Token i + 1 is tokenizers' token i; 0 is <unk>, never produced."""

    level = "bpe"
    unk_text = BPE_UNK_TEXT

    def __init__(self, byte_tokens: list[str], merges: list[tuple[str, str]]):
        self.byte_tokens, self.merges = byte_tokens, merges
        self.token_bytes = [b"", *(token_bytes(t) for t in byte_tokens)]
        super().__init__([escaped(data) for data in self.token_bytes[1:]])
        self._encoder = _build_encoder(byte_tokens, merges)

    # ------------------------------------------------------------ encoding

    def encode_array(self, text: str) -> np.ndarray:
        return np.asarray(self._encode(text), dtype=np.int64)

    def encode(self, text: str) -> list[int]:
        return self._encode(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Several texts at once (tokenizers encodes them in parallel)."""
        if any(_SURROGATES.search(text) for text in texts):
            return [self._encode(text) for text in texts]
        return [[i + 1 for i in encoding.ids] for encoding in self._encoder.encode_batch(texts)]

    def _encode(self, text: str) -> list[int]:
        """Text that is not UTF-8 (a lone surrogate: a byte the model wrote that began no whole
        character) goes in as its bytes, one token each, so it spells itself back too."""
        ids: list[int] = []
        position = 0
        for match in _SURROGATES.finditer(text):
            ids += self._encode_valid(text[position : match.start()])
            ids += [self.byte_id(byte) for byte in _surrogate_bytes(match.group())]
            position = match.end()
        return ids + self._encode_valid(text[position:])

    def _encode_valid(self, text: str) -> list[int]:
        return [i + 1 for i in self._encoder.encode(text).ids] if text else []

    def byte_id(self, byte: int) -> int:
        return self.ids[escaped(bytes([byte]))]

    def tokenize(self, text: str) -> tuple[list[int], list[str]]:
        ids = self._encode(text)
        return ids, self.spell(ids)[0]

    def split(self, text: str) -> list[str]:
        return self.tokenize(text)[1]

    # ------------------------------------------------------------ decoding

    def spell(self, ids: Iterable[int], pending: bytes = b"") -> tuple[list[str], bytes]:
        """Each token's piece: the characters it completes after `pending` (the bytes of a character
        begun before it); and the bytes of a character still unfinished after the last one."""
        decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        decoder.setstate((pending, 0))
        token_bytes_ = self.token_bytes
        pieces = [decoder.decode(token_bytes_[i]) for i in ids]
        return pieces, decoder.getstate()[0]

    def decode(self, ids: Iterable[int]) -> str:
        data = b"".join(self.token_bytes[i] for i in ids)
        return escaped(data)

    def pieces(self, ids: Iterable[int]) -> list[str]:
        return self.spell(ids)[0]

    def to_json(self) -> dict:
        """The vocabulary as a checkpoint's config.json names it: the tokenizer itself is its own
        file (tokenizer_json)."""
        return {"level": self.level, "tokens": len(self)}

    def tokenizer_json(self) -> str:
        return self._encoder.to_str()


def _surrogate_bytes(run: str) -> bytes:
    return b"".join(ch.encode("utf-8", "surrogateescape" if "\udc80" <= ch <= "\udcff" else "surrogatepass")
                    for ch in run)


def _build_encoder(byte_tokens: list[str], merges: list[tuple[str, str]]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    encoder = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(byte_tokens)}, merges=merges))
    encoder.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    encoder.decoder = decoders.ByteLevel()
    return encoder


# ---------------------------------------------------------------- learning


def learn_bpe(chunks: Iterable[str], vocab_size: int) -> BpeVocab:
    """Learn merges from the text (streamed: chunks of any size) until the vocabulary holds
    vocab_size tokens, <unk> included (fewer when the text has no more pairs to merge)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    learner = Tokenizer(models.BPE())
    learner.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    learner.train_from_iterator(safe_pieces(chunks), trainer=trainer)
    return bpe_from_model(json.loads(learner.to_str())["model"])


def safe_pieces(chunks: Iterable[str], size: int = TRAIN_PIECE) -> Iterator[str]:
    """The text again, cut only at safe places (safe_cut), in pieces of about `size` characters:
    encoding or counting each alone gives what the whole text would."""
    carry = ""
    for chunk in chunks:
        text = carry + chunk
        start = 0
        while len(text) - start > size:
            cut = safe_cut(text, start, start + size)
            if cut == start:
                later = SAFE_CUT.search(text, start + size)
                if later is None:
                    break  # no safe place yet: wait for more text
                cut = later.start()
            yield text[start:cut]
            start = cut
        carry = text[start:]
    if carry:
        yield carry


def encode_pieces(chunks: Iterable[str], vocab: BpeVocab, dtype: np.dtype, batch: int = 64) -> Iterator[np.ndarray]:
    """vocab.encode of the joined chunks, an array per batch of safe pieces."""
    pending: list[str] = []
    for piece in safe_pieces(chunks):
        pending.append(piece)
        if len(pending) == batch:
            yield _encoded(vocab, pending, dtype)
            pending = []
    if pending:
        yield _encoded(vocab, pending, dtype)


def _encoded(vocab: BpeVocab, texts: list[str], dtype: np.dtype) -> np.ndarray:
    return np.fromiter((i for ids in vocab.encode_batch(texts) for i in ids), dtype=dtype)


# ---------------------------------------------------------------- loading, checked


def bpe_from_model(model: object) -> BpeVocab:
    """A BpeVocab from tokenizers' "model" section, once it is one this tool writes: BPE, each
    token a distinct string of byte characters at most MAX_TOKEN_BYTES long, ids 0..n-1, all 256
    bytes among them, each merge two tokens whose join is a token."""
    if not isinstance(model, dict) or model.get("type") != "BPE":
        raise _malformed("not a BPE model")
    vocab, merges = model.get("vocab"), model.get("merges")
    if not isinstance(vocab, dict) or not isinstance(merges, list):
        raise _malformed("the model lacks its vocab or merges")
    if not MIN_BPE_VOCAB - 1 <= len(vocab) <= MAX_BPE_VOCAB - 1:
        raise _malformed(f"{len(vocab):,} tokens; a byte-level BPE holds {MIN_BPE_VOCAB - 1} to {MAX_BPE_VOCAB - 1:,}")
    by_id = _tokens_by_id(vocab)
    missing = set(byte_alphabet()) - set(vocab)
    if missing:
        raise _malformed(f"{len(missing)} of the 256 byte tokens are missing, so some text would not encode")
    return BpeVocab(by_id, _checked_merges(merges, vocab))


def _tokens_by_id(vocab: dict) -> list[str]:
    byte_of = _byte_of()
    by_id: list[str | None] = [None] * len(vocab)
    for token, index in vocab.items():
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(vocab) or by_id[index]:
            raise _malformed(f"token {token[:20]!r} has id {str(index)[:20]}; "
                             f"ids must be 0 to {len(vocab) - 1}, once each")
        if not token or len(token) > MAX_TOKEN_BYTES or any(char not in byte_of for char in token):
            raise _malformed(f"token {index} is not a string of 1 to {MAX_TOKEN_BYTES} byte characters")
        by_id[index] = token
    return by_id  # type: ignore[return-value]


def _checked_merges(merges: list, vocab: dict) -> list[tuple[str, str]]:
    if len(merges) > len(vocab):
        raise _malformed(f"{len(merges):,} merges for {len(vocab):,} tokens")
    checked = []
    for number, merge in enumerate(merges, 1):
        pair = merge.split(" ") if isinstance(merge, str) else merge  # (older tokenizers wrote "a b")
        if (not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(p, str) and p in vocab for p in pair)
                or pair[0] + pair[1] not in vocab):
            raise _malformed(f"merge {number} is not two tokens whose join is a token")
        checked.append((pair[0], pair[1]))
    return checked


def bpe_from_json(document: object) -> BpeVocab:
    """The tokenizer of a tokenizer.json (tokenizers' format), checked: only its model's vocabulary
    and merges are read; the rest of the file (normalizers, pre-tokenizers, added tokens) is this
    tool's own and is not taken from the file."""
    if not isinstance(document, dict):
        raise _malformed("not a JSON object")
    return bpe_from_model(document.get("model"))


def _malformed(why: str) -> CheckpointError:
    return CheckpointError(f"the BPE tokenizer is malformed ({why}); retrain or re-save it")


__all__ = ["BpeVocab", "UNK_ID", "bpe_from_json", "learn_bpe", "safe_cut", "safe_pieces", "encode_pieces"]
