"""Corpus reading, cached tokenization, the train/validation split and TBPTT batches."""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from lstm_repl.data.corpus_stream import (
    CHUNK_BYTES,
    MAX_FILE_BYTES,
    CorpusScan,
    open_corpus_file,
    read_tail,
    scan_corpus,
    text_chunks,
)
from lstm_repl.cache import write_json_quietly
from lstm_repl.errors import CorpusError, LstmReplError
from lstm_repl.safe_read import read_json, stat_regular
from lstm_repl.data.token_file import open_tokens, token_dtype, write_tokens
from lstm_repl.data.tokenize_stream import count_vocab, encode_chunks, word_pieces
from lstm_repl.data.bpe import BpeVocab, bpe_from_json
from lstm_repl.data.vocab import Vocab, vocab_from_json

# Held-out tokens a validation reads at most (the last ones of the held-out part): on a huge
# corpus --val-fraction's share would take hours to score, and its pieces would not fit in memory.
VALIDATION_CAP = 1_000_000
MAX_VOCAB_CACHE_BYTES = 1 << 30  # a cached vocabulary's JSON: millions of words at the most

Progress = Callable[[str, int, int], None]  # (what is done: "reading", "counting", "tokenizing", bytes done, of all)


def no_progress(what: str, done: int, total: int) -> None:
    pass

SKIPPED_DIRS = {"__pycache__", ".git", ".hg", ".svn", "node_modules"}


@dataclass
class Corpus:
    text: str
    files: list[Path]
    sha256: str  # of the concatenated text, UTF-8
    encoding: str = "utf-8"

    @property
    def name(self) -> str:
        return ", ".join(p.name for p in self.files[:3]) + (" ..." if len(self.files) > 3 else "")


def list_corpus_files(paths: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
            if not found:
                raise CorpusError(f"{path}: the folder holds no files; point at text files or a folder of them")
            files.extend(found)
        elif path.exists():
            stat_regular(path, MAX_FILE_BYTES, CorpusError, "text file")  # a FIFO, a device: named, not read
            files.append(path)
        else:
            raise CorpusError(f"{path}: no such file or folder")
    return files


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") or part in SKIPPED_DIRS for part in relative.parts)


def read_text_file(path: Path, encoding: str = "utf-8") -> str:
    try:
        with open_corpus_file(path) as handle:
            data = handle.read()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read it ({exc.strerror})") from None
    nul = data.find(b"\x00")
    if nul >= 0 and not encoding.lower().startswith("utf-16"):
        raise CorpusError(f"{path}: looks binary (NUL byte at offset {nul}); give a text file")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path}: not valid {encoding} (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert it to UTF-8 or pass --encoding (e.g. --encoding latin-1)"
        ) from None
    except LookupError:
        raise CorpusError(f"unknown encoding {encoding!r}; use a Python codec name such as utf-8 or latin-1") from None


def read_corpus(paths: list[str | Path], encoding: str = "utf-8") -> Corpus:
    files = list_corpus_files(paths)
    parts = []
    for path in files:
        text = read_text_file(path, encoding)
        parts.append(text if not text or text.endswith("\n") or len(files) == 1 else text + "\n")
    text = "".join(parts)
    if not text.strip():
        raise CorpusError(f"{', '.join(str(p) for p in paths)}: the corpus is empty; give it some text")
    return Corpus(text=text, files=files, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), encoding=encoding)


def read_head(paths: list[str | Path], limit: int, encoding: str = "utf-8") -> str:
    """read_corpus's text, or only its first `limit` characters (limit > 0): then the files are
    read only as far as those take, a chunk of at most 4 bytes a character at a time, and a
    300 MB file costs what its first page does."""
    if limit <= 0:
        return read_corpus(paths, encoding).text
    files = list_corpus_files(paths)
    parts, count = [], 0
    with closing(text_chunks(files, encoding, chunk_bytes=min(CHUNK_BYTES, max(1 << 16, 4 * limit)))) as chunks:
        for chunk in chunks:
            parts.append(chunk[: limit - count])
            count += len(parts[-1])
            if count >= limit:
                break
    text = "".join(parts)
    if not text.strip():
        raise CorpusError(f"{', '.join(str(p) for p in paths)}: the corpus is empty (its first {limit:,} characters "
                          "are blank); give it some text, or a larger --limit")
    return text


def scan(paths: list[str | Path], encoding: str = "utf-8", progress: Progress = no_progress) -> CorpusScan:
    """The corpus read once as a stream: checked, hashed, its characters counted; its text not kept."""
    files = list_corpus_files(paths)
    total = sum(path.stat().st_size for path in files)
    return scan_corpus(files, encoding, lambda done: progress("reading", done, total))


def _chunks(corpus: Corpus | CorpusScan, what: str, progress: Progress) -> Iterator[str]:
    total = sum(path.stat().st_size for path in corpus.files)
    return text_chunks(corpus.files, corpus.encoding, lambda done: progress(what, done, total))


def cache_dir() -> Path:
    base = os.environ.get("LSTM_REPL_CACHE") or (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lstm-repl"
    )
    return Path(base) / "tokens"


def _key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def load_vocab_cached(corpus: Corpus | CorpusScan, level: str, max_size: int, min_count: int,
                      progress: Progress = no_progress) -> Vocab:
    """Count the vocabulary in one pass over the corpus files, or reuse the one counted earlier
    for the same corpus and settings."""
    path = cache_dir() / f"vocab-{_key(corpus.sha256, level, str(max_size), str(min_count))}.json"
    try:
        return _cached_vocab(path, level)
    except (LstmReplError, OSError, ValueError):  # missing, damaged, a FIFO: counted again
        vocab = count_vocab(_chunks(corpus, "counting", progress), level, max_size, min_count)
        # a cache: a read-only or full disk must not stop training
        write_json_quietly(path, json.loads(vocab.tokenizer_json()) if isinstance(vocab, BpeVocab) else vocab.to_json())
        return vocab


def _cached_vocab(path: Path, level: str) -> Vocab:
    """A vocabulary cache file: the vocabulary's JSON, or for bpe the tokenizer's (checked as a
    checkpoint's is)."""
    document = read_json(path, MAX_VOCAB_CACHE_BYTES, CorpusError, "vocabulary cache")
    return bpe_from_json(document) if level == "bpe" else vocab_from_json(document)


def token_file_path(corpus: Corpus | CorpusScan, vocab: Vocab) -> Path:
    """Where the corpus's ids under this vocabulary are cached: keyed by the corpus sha256 and the
    vocabulary (which holds its level; bpe: the tokenizer's merges too)."""
    spelled = vocab.tokenizer_json() if isinstance(vocab, BpeVocab) else json.dumps(vocab.to_json(), ensure_ascii=False)
    vocab_hash = _key(spelled)
    return cache_dir() / f"ids-{_key(corpus.sha256, vocab_hash)}.{token_dtype(len(vocab)).name}"


def encode_cached(corpus: Corpus | CorpusScan, vocab: Vocab, progress: Progress = no_progress) -> np.ndarray:
    """The corpus's token ids, memory-mapped from the cached token file; when there is none (or
    it is damaged) the files are tokenized into it in one streaming pass first."""
    path, dtype = token_file_path(corpus, vocab), token_dtype(len(vocab))
    ids = open_tokens(path, dtype, len(vocab))
    if ids is None:
        ids = write_tokens(path, encode_chunks(_chunks(corpus, "tokenizing", progress), vocab), dtype)
    return ids


def split_ids(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    n_val = int(len(ids) * val_fraction)
    return ids[: len(ids) - n_val], ids[len(ids) - n_val :]


def capped_validation(val_ids: np.ndarray) -> np.ndarray:
    """The held-out tokens a validation reads: all of them, or the last VALIDATION_CAP."""
    return val_ids[max(0, len(val_ids) - VALIDATION_CAP) :]


def tail_pieces(corpus: Corpus | CorpusScan, vocab: Vocab, count: int) -> list[str]:
    """The text of the corpus's last `count` tokens as written (an <unk> as its own spelling)."""
    if count <= 0:
        return []
    if isinstance(vocab, BpeVocab):
        raise ValueError("a BPE vocabulary spells its tokens exactly: take the pieces of their ids (vocab.pieces)")
    if corpus.encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        return _tail_pieces_streamed(corpus, vocab, count)
    size = 8 * count
    while True:
        data, whole = read_tail(corpus.files, size)
        pieces = vocab.split(_decode_tail(data, whole))
        if whole or len(pieces) > count:
            return pieces[-count:]  # (a cut first piece is never among them)
        size *= 4


def _decode_tail(data: bytes, whole: bool) -> str:
    start = 0
    while not whole and start < len(data) and 0x80 <= data[start] < 0xC0:  # inside a character
        start += 1
    return data[start:].decode("utf-8")


def _tail_pieces_streamed(corpus: Corpus | CorpusScan, vocab: Vocab, count: int) -> list[str]:
    """tail_pieces for encodings a byte offset cannot be decoded from: one pass over the text."""
    chunks = text_chunks(corpus.files, corpus.encoding)
    batches = ([*chunk] for chunk in chunks) if vocab.level == "char" else word_pieces(chunks)
    tail: deque[str] = deque(maxlen=count)
    for pieces in batches:
        tail.extend(pieces)
    return list(tail)


def check_fits(n_train: int, n_val: int, batch_size: int, seq_len: int) -> None:
    need = batch_size * (seq_len + 1)
    if n_train < need:
        fit_batch = n_train // (seq_len + 1)
        hint = (
            f"--batch-size {fit_batch} would fit" if fit_batch >= 1
            else f"--seq-len {n_train // batch_size - 1} would fit" if n_train // batch_size >= 2
            else f"--batch-size 1 --seq-len {n_train - 1} would fit" if n_train >= 2
            else "use a larger corpus"
        )
        raise CorpusError(
            f"the corpus is too small: {n_train:,} training tokens, but one batch of {batch_size} streams x "
            f"{seq_len + 1} tokens needs {need:,}; {hint}"
        )
    if n_val < 2:
        raise CorpusError(
            f"the validation split holds {n_val} tokens; raise --val-fraction or use a larger corpus"
        )


class StreamBatches:
    """B contiguous streams cut into seq_len chunks, for truncated backpropagation through time.

    The token array is laid out as (B, L): stream b is one contiguous slice of the corpus, so
    the state a chunk ends with is the right state to start the next chunk of the same stream.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int):
        self.seq_len = seq_len
        length = len(ids) // batch_size
        self.streams = ids[: length * batch_size].reshape(batch_size, length)  # a view: a token file stays on disk
        self.chunks_per_epoch = max(0, (length - 1) // seq_len)

    @property
    def tokens_per_epoch(self) -> int:
        return self.chunks_per_epoch * self.seq_len * self.streams.shape[0]

    def chunk(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets of chunk `index`: both (B, seq_len)."""
        start = index * self.seq_len
        window = self.streams[:, start : start + self.seq_len + 1]
        return window[:, :-1], window[:, 1:]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for index in range(self.chunks_per_epoch):
            yield self.chunk(index)


def validation_batches(ids: np.ndarray, batch_size: int, seq_len: int, max_tokens: int | None = None) -> StreamBatches:
    """Validation streams: as many as the held-out tokens allow, at most batch_size."""
    if max_tokens is not None:
        ids = ids[: max_tokens + 1]
    streams = max(1, min(batch_size, (len(ids) - 1) // max(2, seq_len + 1)))
    per_stream = len(ids) // streams
    return StreamBatches(ids, streams, min(seq_len, max(1, per_stream - 1)))
