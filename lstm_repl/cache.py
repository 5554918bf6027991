"""Where lstm-repl keeps what it can always rebuild: token ids, vocabularies, probe results."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lstm_repl import safe_read
from lstm_repl.atomic import atomic_file
from lstm_repl.errors import LstmReplError


def cache_root() -> Path:
    """$LSTM_REPL_CACHE, else $XDG_CACHE_HOME/lstm-repl, else ~/.cache/lstm-repl."""
    if os.environ.get("LSTM_REPL_CACHE"):
        return Path(os.environ["LSTM_REPL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lstm-repl"


MAX_JSON_BYTES = 1 << 20  # a cache's JSON file (a token file's sidecar, probe results) is far smaller


def read_json(path: Path) -> dict:
    """The JSON object in path, or {} when it is missing or damaged, or not a regular file of at
    most MAX_JSON_BYTES (a cache is rebuilt, never trusted; a FIFO in its place is never read)."""
    try:
        data = safe_read.read_json(path, MAX_JSON_BYTES, LstmReplError, "cache file")
    except LstmReplError:
        return {}
    return data if isinstance(data, dict) else {}


def write_json_quietly(path: Path, data: dict) -> None:
    """Write atomically; a read-only or full disk only costs the next run a rebuild."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, durable=False) as handle:
            json.dump(data, handle)
    except OSError:
        pass
