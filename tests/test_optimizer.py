"""The optimizer: AdamW at char and BPE level, plain SGD at lr 20 at word level (README, "Word level")."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from lstm_repl.cli.main import cli
from lstm_repl.config import TrainConfig
from lstm_repl.errors import ConfigError
from lstm_repl.model import checkpoint
from tests.helpers import train_tiny

WORD_SGD = ("--level", "word", "--optimizer", "sgd", "--lr", "20", "--grad-clip", "0.25", "--schedule", "constant",
            "--warmup", "0")


def test_word_level_trains_with_sgd_at_lr_20_unless_told(tiny_corpus, tmp_path):
    common = ["train", str(tiny_corpus), "--level", "word", "--max-steps", "1", "--precision", "fp32",
              "--hidden", "16", "--embed", "8"]
    assert CliRunner().invoke(cli, [*common, "--out", str(tmp_path / "word")]).exit_code == 0
    told = CliRunner().invoke(cli, [*common, "--out", str(tmp_path / "adam"), "--optimizer", "adam", "--lr", "0.003"])
    assert told.exit_code == 0, told.output
    word, adam = (checkpoint.load(tmp_path / name).train_config for name in ("word", "adam"))
    assert (word.optimizer, word.lr, word.grad_clip) == ("sgd", 20.0, 0.25)
    assert (adam.optimizer, adam.lr) == ("adam", 0.003)
    char = train_tiny(tiny_corpus, tmp_path / "char", steps=1)
    assert checkpoint.load(char).train_config.optimizer == "adam"


def test_sgd_learns_a_word_model(tiny_corpus, tmp_path):
    run = train_tiny(tiny_corpus, tmp_path / "run", *WORD_SGD, steps=120)
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in records if r.get("train_loss") is not None]
    assert losses and losses[-1] < 0.5 * losses[0]


def test_an_sgd_run_resumed_ends_where_one_unbroken_run_ends(tiny_corpus, tmp_path):
    whole = train_tiny(tiny_corpus, tmp_path / "whole", *WORD_SGD, steps=40)
    split = train_tiny(tiny_corpus, tmp_path / "split", *WORD_SGD, steps=20)
    result = CliRunner().invoke(cli, ["train", "--resume", str(split), "--max-steps", "40"])
    assert result.exit_code == 0, result.output
    a, b = (checkpoint.load(run / "last").model.state_dict() for run in (whole, split))
    assert all(torch.allclose(a[name], b[name], atol=1e-6) for name in a)


def test_a_run_saved_before_the_optimizer_was_a_setting_resumes_with_adam(tiny_corpus, tmp_path):
    run = train_tiny(tiny_corpus, tmp_path / "run", steps=10)
    for folder in ("best", "last"):
        config_file = run / folder / "config.json"
        config = json.loads(config_file.read_text())
        del config["training"]["optimizer"]
        config_file.write_text(json.dumps(config))
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--max-steps", "14"])
    assert result.exit_code == 0, result.output
    assert checkpoint.load(run, for_resume=True).train_config.optimizer == "adam"


def test_an_unknown_optimizer_is_one_line(tiny_corpus):
    with pytest.raises(ConfigError, match="--optimizer must be one of adam, sgd"):
        TrainConfig(optimizer="rmsprop")
    result = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--optimizer", "lion"])
    assert result.exit_code == 2 and "lion" in result.output
