"""Tiny real corpora and models, trained for real in a few seconds."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

# Caches and user state go to a temporary folder, never the user's home.
_SANDBOX = Path(tempfile.mkdtemp(prefix="lstm-repl-tests-"))
os.environ["LSTM_REPL_CACHE"] = str(_SANDBOX / "cache")
os.environ["XDG_STATE_HOME"] = str(_SANDBOX / "state")
os.environ["XDG_DATA_HOME"] = str(_SANDBOX / "data")
os.environ.setdefault("PROMPT_TOOLKIT_NO_CPR", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))

TINY_TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
    "All:\nResolved. resolved.\n\n"
)


def pytest_sessionfinish(session, exitstatus):
    """The sandbox outlives every test but not the session (nor a session that only collected)."""
    shutil.rmtree(_SANDBOX, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(TINY_TEXT * 30, encoding="utf-8")
    return path


def train_tiny(corpus: Path, out: Path, *extra: str, steps: int = 150) -> Path:
    """Train a tiny char model through the real CLI; returns the run folder."""
    from click.testing import CliRunner

    from lstm_repl.cli.main import cli

    args = ["train", str(corpus), "--out", str(out), "--hidden", "24", "--embed", "12", "--layers", "2",
            "--batch-size", "8", "--seq-len", "32", "--max-steps", str(steps), "--eval-interval", "50",
            "--log-interval", "10", "--precision", "fp32", "--lr", "0.01", *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def tiny_run(tiny_corpus, tmp_path_factory) -> Path:
    """A trained tiny char-level run folder (best/, last/, log.jsonl)."""
    return train_tiny(tiny_corpus, tmp_path_factory.mktemp("runs") / "tiny-char")


@pytest.fixture(scope="session")
def tiny_word_run(tiny_corpus, tmp_path_factory) -> Path:
    return train_tiny(tiny_corpus, tmp_path_factory.mktemp("runs") / "tiny-word", "--level", "word", steps=100)
