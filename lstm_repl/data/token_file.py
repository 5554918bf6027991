"""The token file: a corpus's token ids on disk in the smallest unsigned type that holds the
vocabulary, read back as a numpy.memmap. A JSON sidecar (<file>.json) records how many tokens
it holds and the sha256 of its bytes. Before a file is mapped, it is read once: a file that is
not a regular file of the recorded size, whose sha256 differs (damaged in place, the size kept)
or that holds an id outside the vocabulary is not opened, so it gets rebuilt. That pass costs
about what hashing the corpus text costs (README, "Corpora larger than memory"); tokenizing
again costs far more."""

from __future__ import annotations

import hashlib
import mmap
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterable

import numpy as np

from lstm_repl.atomic import atomic_file
from lstm_repl.cache import read_json, write_json_quietly
from lstm_repl.errors import CorpusError, LstmReplError
from lstm_repl.safe_read import open_regular

SCAN_TOKENS = 1 << 24  # tokens read per step when a whole file is scanned (counted)
VERIFY_BYTES = 16 << 20  # read per step when a token file is checked before it is mapped


def token_dtype(vocab_size: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"a vocabulary of {vocab_size:,} tokens does not fit 32-bit ids")


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def open_tokens(path: Path, dtype: np.dtype, vocab_size: int) -> np.ndarray | None:
    """The file's ids, memory-mapped read-only; None when it is missing or not what its sidecar
    says (see the module's docstring)."""
    recorded = read_json(sidecar(path))
    tokens, digest = recorded.get("tokens"), recorded.get("sha256")
    if not isinstance(tokens, int) or tokens < 0 or recorded.get("dtype") != dtype.name or not isinstance(digest, str):
        return None
    if not _verified(path, tokens * dtype.itemsize, digest, dtype, vocab_size):
        return None
    return _mapped(path, dtype, tokens)


def _verified(path: Path, size: int, digest: str, dtype: np.dtype, vocab_size: int) -> bool:
    """Whether `path` is a regular file of `size` bytes with this sha256, every id below vocab_size."""
    try:
        handle = open_regular(path, size, LstmReplError, "token file")
    except LstmReplError:  # missing, a FIFO, larger than recorded
        return False
    sha256, read = hashlib.sha256(), 0
    with handle:
        while block := handle.read(VERIFY_BYTES):
            sha256.update(block)
            read += len(block)
            ids = np.frombuffer(block[: len(block) - len(block) % dtype.itemsize], dtype)
            if len(ids) and int(ids.max()) >= vocab_size:
                return False
    return read == size and sha256.hexdigest() == digest


def write_tokens(path: Path, batches: Iterable[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """Write the ids batch by batch (plain writes: no dirty mapped pages swelling the process),
    rename into place atomically, and open the result. A cache folder that cannot be written
    only costs a temporary file, unlinked once mapped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writing = atomic_file(path, "wb", durable=False)  # (a cache: rebuilt if a crash loses it)
    except OSError:
        return _write_anonymous(batches, dtype)
    try:
        with writing as handle:
            count, digest = _write(handle, batches, dtype)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    write_json_quietly(sidecar(path), {"tokens": count, "dtype": dtype.name, "sha256": digest})
    return _mapped(path, dtype, count)


def _write(handle: BinaryIO, batches: Iterable[np.ndarray], dtype: np.dtype) -> tuple[int, str]:
    """-> the ids written, and the sha256 of the file's bytes."""
    count, sha256 = 0, hashlib.sha256()
    for batch in batches:
        data = np.ascontiguousarray(batch, dtype=dtype).tobytes()
        handle.write(data)
        sha256.update(data)
        count += len(batch)
    return count, sha256.hexdigest()


def _unwritable(path: Path, exc: OSError) -> CorpusError:
    return CorpusError(f"{path}: cannot write the token file ({exc.strerror or exc}); free some space "
                       "or point LSTM_REPL_CACHE at a folder with room")


def _write_anonymous(batches: Iterable[np.ndarray], dtype: np.dtype) -> np.ndarray:
    handle, name = tempfile.mkstemp(prefix="lstm-repl-tokens-")
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as file:
            count = _write(file, batches, dtype)[0]
        return _mapped(path, dtype, count)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    finally:
        path.unlink(missing_ok=True)  # the mapping keeps the data until it is dropped


def _mapped(path: Path, dtype: np.dtype, count: int) -> np.ndarray:
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,)) if count else np.zeros(0, dtype)


def release(ids: np.ndarray) -> None:
    """Unmap the pages of a memory-mapped token file read so far: they stay in the page cache,
    but no longer count in this process's resident memory (a full scan would count all of it)."""
    mapping = getattr(ids, "_mmap", None)
    if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def token_counts(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Occurrences of each id, counted a slice at a time (a whole int64 copy of a big corpus would not fit)."""
    counts = np.zeros(vocab_size, np.int64)
    for start in range(0, len(ids), SCAN_TOKENS):
        counts += np.bincount(np.asarray(ids[start : start + SCAN_TOKENS]), minlength=vocab_size)[:vocab_size]
        release(ids)
    return counts
