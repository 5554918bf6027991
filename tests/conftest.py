"""Tiny real corpora and models, trained for real in a few seconds."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from helpers import TINY_TEXT, train_tiny

# Caches and user state go to a temporary folder, never the user's home.
_SANDBOX = Path(tempfile.mkdtemp(prefix="lstm-repl-tests-"))
os.environ["LSTM_REPL_CACHE"] = str(_SANDBOX / "cache")
os.environ["XDG_STATE_HOME"] = str(_SANDBOX / "state")
os.environ["XDG_DATA_HOME"] = str(_SANDBOX / "data")
os.environ.setdefault("PROMPT_TOOLKIT_NO_CPR", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))

def pytest_sessionfinish(session, exitstatus):
    """The sandbox outlives every test but not the session (nor a session that only collected)."""
    shutil.rmtree(_SANDBOX, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(TINY_TEXT * 30, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_run(tiny_corpus, tmp_path_factory) -> Path:
    """A trained tiny char-level run folder (best/, last/, log.jsonl)."""
    return train_tiny(tiny_corpus, tmp_path_factory.mktemp("runs") / "tiny-char")


@pytest.fixture(scope="session")
def tiny_word_run(tiny_corpus, tmp_path_factory) -> Path:
    return train_tiny(tiny_corpus, tmp_path_factory.mktemp("runs") / "tiny-word", "--level", "word", steps=100)


@pytest.fixture(scope="session")
def tiny_bpe_run(tiny_corpus, tmp_path_factory) -> Path:
    """A tiny byte-level BPE run: 300 tokens (the 256 bytes, <unk> and 43 merges)."""
    return train_tiny(tiny_corpus, tmp_path_factory.mktemp("runs") / "tiny-bpe", "--level", "bpe",
                      "--vocab-size", "300", steps=100)


@pytest.fixture
def loaded(tiny_run):
    """The tiny char model, loaded afresh for each test (a test may change its weights or settings)."""
    from lstm_repl.model import checkpoint

    return checkpoint.load(tiny_run)


@pytest.fixture
def word_loaded(tiny_word_run):
    from lstm_repl.model import checkpoint

    return checkpoint.load(tiny_word_run)


@pytest.fixture
def bpe_loaded(tiny_bpe_run):
    from lstm_repl.model import checkpoint

    return checkpoint.load(tiny_bpe_run)
