"""Tiny real corpora and models, trained for real in a few seconds."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from helpers import TINY_TEXT, train_tiny
from lstm_repl.cells import cell_kinds

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


@pytest.fixture(scope="session", params=cell_kinds())
def kind_run(request, tiny_corpus, tmp_path_factory):
    """(kind, run folder) of a 2 x 16 model of each cell kind, trained for 40 steps."""
    from lstm_repl.config import TrainConfig
    from lstm_repl.training import runs

    config = TrainConfig(batch_size=4, seq_len=16, max_steps=40, eval_interval=40, log_interval=10,
                         precision="fp32", lr=0.01, warmup=0.1)
    model_args = {"cell": request.param, "layers": 2, "hidden": 16, "embed": 8, "dropout": 0.0, "tie_weights": False}
    trainer = runs.new_run([str(tiny_corpus)], config, model_args, tmp_path_factory.mktemp(request.param), False)
    trainer.run()
    return request.param, trainer.out_dir


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
