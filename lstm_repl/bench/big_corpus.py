"""`lstm-repl bench big-corpus`: a corpus bigger than memory is generated, then `lstm-repl train`
runs a few steps on it in a child process whose peak resident memory is reported, with the
speed of the streaming passes that read, count and tokenize it."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

WORDS = 60_000  # distinct words: more than the word level's 20,000-token vocabulary, as real text has
WORDS_PER_BLOCK = 1 << 20
UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(text: str) -> int:
    """'2GB' -> 2,000,000,000 (KB, MB, GB are powers of 10; KiB, MiB, GiB of 2)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).upper() not in UNITS:
        raise ValueError(f"{text!r} is not a size such as 500MB or 2GB")
    return int(float(match.group(1)) * UNITS[match.group(2).upper()])


def word_list(rng: np.random.Generator) -> np.ndarray:
    """Made-up words of 1-10 letters, some with accented letters (multi-byte in UTF-8)."""
    letters = np.array(list("etaoinshrdlucmfwypvbgkjqxzéüñ"))
    weights = np.r_[np.linspace(12, 1, 26), [0.4, 0.3, 0.3]]
    lengths = rng.integers(1, 11, size=WORDS)
    picks = rng.choice(len(letters), size=int(lengths.sum()), p=weights / weights.sum())
    flat = letters[picks]
    ends = np.cumsum(lengths)
    return np.array(["".join(flat[end - n : end]) for n, end in zip(lengths, ends)], dtype=object)


def write_corpus(path: Path, size: int, seed: int = 0) -> int:
    """Zipf-distributed words, lines of about 12 words with some punctuation, streamed to path
    until it holds `size` bytes (cut at a line end); -> bytes written."""
    rng = np.random.default_rng(seed)
    words = word_list(rng)
    weights = 1.0 / np.arange(1, WORDS + 1) ** 1.1
    weights /= weights.sum()
    written = 0
    with path.open("wb") as handle:
        while written < size:
            picks = words[rng.choice(WORDS, size=WORDS_PER_BLOCK, p=weights)]
            picks[11::12] = np.char.add(picks[11::12].astype(str), ".\n").astype(object)
            picks[5::24] = np.char.add(picks[5::24].astype(str), ",").astype(object)
            block = " ".join(picks).replace("\n ", "\n").encode("utf-8")
            if written + len(block) > size:  # the last block: cut at a line end
                block = block[: block.rfind(b"\n", 0, size - written) + 1]
                if not block:
                    break
            handle.write(block)
            written += len(block)
    return written


def run_training(corpus: Path, level: str, steps: int, workdir: Path,
                 report: Callable[[str], None] = lambda line: None) -> dict:
    """`lstm-repl train` for `steps` steps in a child process: its peak RSS, the seconds until
    training started (the corpus passes and building the model), and in all."""
    env = {**os.environ, "LSTM_REPL_CACHE": str(workdir / "cache")}
    command = [sys.executable, "-m", "lstm_repl", "train", str(corpus), "--out", str(workdir / f"run-{level}"),
               "--level", level, "--max-steps", str(steps), "--eval-interval", str(steps), "--log-interval", "1",
               "--hidden", "128", "--embed", "32", "--layers", "1", "--batch-size", "16", "--seq-len", "64",
               "--precision", "fp32", "--device", "cpu", "--overwrite"]
    started = time.perf_counter()
    ready = None
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        for line in child.stderr:
            if ready is None and line.startswith("training "):
                ready = time.perf_counter() - started
            report(line.rstrip())
        output = child.stdout.read()
    if child.returncode != 0:
        raise RuntimeError(f"lstm-repl train exited with {child.returncode}: {output}")
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "prepare_s": ready, "total_s": time.perf_counter() - started, "summary": output.strip()}


def big_corpus(size: int, level: str, steps: int = 5, keep: Path | None = None,
               report: Callable[[str], None] = lambda line: None) -> dict:
    """Generate, train, measure; the corpus and token cache are deleted after unless `keep`."""
    with tempfile.TemporaryDirectory(prefix="lstm-repl-big-", dir=keep) as folder:
        workdir = Path(folder)
        corpus = workdir / "big.txt"
        started = time.perf_counter()
        written = write_corpus(corpus, size)
        generate_s = time.perf_counter() - started
        result = run_training(corpus, level, steps, workdir, report)
        token_files = [p for p in (workdir / "cache" / "tokens").glob("ids-*") if not p.name.endswith(".json")]
        result.update(bytes=written, level=level, generate_s=generate_s,
                      token_file_bytes=sum(p.stat().st_size for p in token_files),
                      prepare_mb_per_s=written / 1e6 / result["prepare_s"] if result["prepare_s"] else None)
        return result
