"""The token file: smallest unsigned type, memory-mapped, checked against its sidecar; the
trainer's batches from it equal those from ids in memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstm_repl.data import corpus as data
from lstm_repl.config import ModelConfig, TrainConfig
from lstm_repl.training.distributed import Ranks, own_rows
from lstm_repl.model import LanguageModel
from lstm_repl.data.token_file import open_tokens, token_counts, token_dtype, write_tokens
from lstm_repl.training.trainer import Trainer
from lstm_repl.data.vocab import build_vocab


@pytest.mark.parametrize("size, dtype", [(2, np.uint8), (256, np.uint8), (257, np.uint16),
                                         (65_536, np.uint16), (65_537, np.uint32)])
def test_the_smallest_unsigned_type_that_holds_every_id(size, dtype):
    assert token_dtype(size) == np.dtype(dtype)


def test_written_ids_read_back_memory_mapped(tmp_path):
    batches = [np.array([1, 2, 3]), np.array([], np.int64), np.array([65_535, 0])]
    ids = write_tokens(tmp_path / "t.bin", iter(batches), np.dtype(np.uint16))
    assert isinstance(ids, np.memmap) and ids.dtype == np.uint16
    assert ids.tolist() == [1, 2, 3, 65_535, 0]
    assert open_tokens(tmp_path / "t.bin", np.dtype(np.uint16), 65_536).tolist() == [1, 2, 3, 65_535, 0]
    assert open_tokens(tmp_path / "t.bin", np.dtype(np.uint8), 256) is None  # another type: not this file
    assert open_tokens(tmp_path / "t.bin", np.dtype(np.uint16), 65_535) is None  # an id outside the vocabulary
    assert not list(tmp_path.glob("*.tmp*"))


def test_an_unwritable_folder_still_gives_the_ids(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way", "utf-8")
    ids = write_tokens(blocker / "t.bin", iter([np.arange(5)]), np.dtype(np.uint8))
    assert ids.tolist() == [0, 1, 2, 3, 4]


def test_counts_over_a_token_file_equal_a_bincount(tmp_path):
    ids = write_tokens(tmp_path / "t.bin", iter([np.arange(1000) % 7]), np.dtype(np.uint8))
    np.testing.assert_array_equal(token_counts(ids, 9), np.bincount(np.arange(1000) % 7, minlength=9))


def test_the_cached_token_file_equals_the_in_memory_encoding(tiny_corpus):
    text = data.read_corpus([tiny_corpus]).text
    scanned = data.scan([tiny_corpus])
    for level in ("char", "word"):
        vocab = build_vocab(text, level)
        ids = data.encode_cached(scanned, vocab)
        assert isinstance(ids, np.memmap) and ids.dtype == token_dtype(len(vocab))
        np.testing.assert_array_equal(ids, vocab.encode_array(text))


def _trainer(ids, vocab, tmp_path, ranks=Ranks(), **settings) -> Trainer:
    settings = {"batch_size": 4, **settings}
    config = TrainConfig(seq_len=16, max_steps=10, device="cpu", precision="fp32", **settings)
    model = LanguageModel(ModelConfig(vocab_size=len(vocab), hidden=8, embed=4, layers=1))
    return Trainer(model, vocab, ids, config, tmp_path / f"run{ranks.rank}", corpus_info={}, ranks=ranks)


def test_batches_from_the_token_file_are_bit_for_bit_those_of_the_old_in_memory_layout(tiny_corpus, tmp_path):
    text = data.read_corpus([tiny_corpus]).text
    vocab = build_vocab(text, "char")
    in_memory = vocab.encode_array(text).astype(np.int64)
    mapped = data.encode_cached(data.scan([tiny_corpus]), vocab)
    n_val = int(len(in_memory) * 0.05)
    train = in_memory[: len(in_memory) - n_val]
    length = len(train) // 8
    old_streams = np.ascontiguousarray(train[: length * 8].reshape(8, length))  # as the trainer laid them out
    trainer = _trainer(mapped, vocab, tmp_path, batch_size=8)
    assert trainer.batches.chunks_per_epoch == (length - 1) // 16
    for chunk in (0, 1, trainer.batches.chunks_per_epoch - 1):
        expected = old_streams[:, chunk * 16 : chunk * 16 + 17]
        window = trainer.window(chunk)
        assert window.dtype == torch.int64 and np.array_equal(window.numpy(), expected)
    for rank in (0, 1):  # two torchrun processes of 4 streams each read their own rows of the file
        rows = own_rows(Ranks(rank, 2), trainer.batches.streams, 4)
        np.testing.assert_array_equal(rows, old_streams[4 * rank : 4 * rank + 4])
    np.testing.assert_array_equal(trainer.val_ids, in_memory[len(in_memory) - n_val :])


def test_validation_reads_at_most_the_cap_of_the_last_held_out_tokens(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(data, "VALIDATION_CAP", 300)
    text = data.read_corpus([tiny_corpus]).text
    vocab = build_vocab(text, "char")
    ids = data.encode_cached(data.scan([tiny_corpus]), vocab)
    trainer = _trainer(ids, vocab, tmp_path, val_fraction=0.2)
    assert int(len(ids) * 0.2) > 300
    np.testing.assert_array_equal(trainer.val_ids, ids[-300:])
    assert np.isfinite(trainer.evaluate(None))


def test_a_run_trains_and_resumes_from_the_token_file_without_tokenizing_again(tiny_corpus, tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from lstm_repl.cli.main import cli
    from helpers import train_tiny

    monkeypatch.setenv("LSTM_REPL_CACHE", str(tmp_path / "cache"))
    run = train_tiny(tiny_corpus, tmp_path / "run", "--max-steps", "20", "--eval-interval", "10", steps=20)
    assert len(list((tmp_path / "cache" / "tokens").glob("ids-*.uint8"))) == 1
    passes = []
    monkeypatch.setattr(data, "encode_chunks", lambda *a: passes.append(1) or pytest.fail("tokenized again"))
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--max-steps", "30"])
    assert result.exit_code == 0, result.output
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps[-1] == 30 and steps == sorted(set(steps))


def test_a_temporary_file_left_by_a_killed_writer_is_removed(tmp_path):
    import os
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / f".t.bin.tmp-{int(dead.stdout)}-0badc0de"
    leftover.write_bytes(b"half written")
    live = tmp_path / f".t.bin.tmp-{os.getpid()}-0badc0de"  # another torchrun process, still writing
    live.write_bytes(b"being written")
    ids = write_tokens(tmp_path / "t.bin", iter([np.arange(3)]), np.dtype(np.uint8))
    assert ids.tolist() == [0, 1, 2] and not leftover.exists() and live.exists()
