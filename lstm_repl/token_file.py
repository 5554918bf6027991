"""The token file: a corpus's token ids on disk in the smallest unsigned type that holds the
vocabulary, read back as a numpy.memmap. A JSON sidecar (<file>.json) records how many tokens
it holds; a file whose size disagrees (truncated, damaged) is not opened, so it gets rebuilt."""

from __future__ import annotations

import mmap
import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from lstm_repl.cache import read_json, write_json_quietly
from lstm_repl.errors import CorpusError

SCAN_TOKENS = 1 << 24  # tokens read per step when a whole file is scanned (counted)


def token_dtype(vocab_size: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"a vocabulary of {vocab_size:,} tokens does not fit 32-bit ids")


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def open_tokens(path: Path, dtype: np.dtype) -> np.ndarray | None:
    """The file's ids, memory-mapped read-only; None when it is missing or not what its sidecar says."""
    recorded = read_json(sidecar(path))
    tokens = recorded.get("tokens")
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if not isinstance(tokens, int) or recorded.get("dtype") != dtype.name or size != tokens * dtype.itemsize:
        return None
    return _mapped(path, dtype, tokens)


def write_tokens(path: Path, batches: Iterable[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """Write the ids batch by batch (plain writes: no dirty mapped pages swelling the process),
    rename into place atomically, and open the result. A cache folder that cannot be written
    only costs a temporary file, unlinked once mapped."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(path)
        tmp.touch()
    except OSError:
        return _write_anonymous(batches, dtype)
    count = _write(tmp, batches, dtype)
    os.replace(tmp, path)
    write_json_quietly(sidecar(path), {"tokens": count, "dtype": dtype.name})
    return _mapped(path, dtype, count)


def _remove_abandoned(path: Path) -> None:
    """Temporary files of this token file left by processes that were killed while writing
    (each could be gigabytes); those of live ones (another torchrun process) are theirs."""
    for leftover in path.parent.glob(f"{path.name}.tmp*"):
        pid = leftover.name.rpartition(".tmp")[2]
        if pid.isdigit() and not _running(int(pid)):
            leftover.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def _write(path: Path, batches: Iterable[np.ndarray], dtype: np.dtype) -> int:
    count = 0
    try:
        with path.open("wb") as handle:
            for batch in batches:
                handle.write(np.ascontiguousarray(batch, dtype=dtype).tobytes())
                count += len(batch)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise CorpusError(f"{path}: cannot write the token file ({exc.strerror or exc}); free some space "
                          "or point LSTM_REPL_CACHE at a folder with room") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return count


def _write_anonymous(batches: Iterable[np.ndarray], dtype: np.dtype) -> np.ndarray:
    handle, name = tempfile.mkstemp(prefix="lstm-repl-tokens-")
    os.close(handle)
    path = Path(name)
    try:
        return _mapped(path, dtype, _write(path, batches, dtype))
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
