"""Training for real on a tiny corpus: loss falls, the log is written, resuming is exact."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from lstm_repl.model import checkpoint

from lstm_repl.training import runs
from lstm_repl.cli.main import cli
from lstm_repl.config import TrainConfig
from lstm_repl.errors import TrainingInterrupted
from lstm_repl.training.schedule import Bounds, Position, learning_rate
from helpers import train_tiny

MODEL = {"cell": "lstm", "layers": 2, "hidden": 16, "embed": 8, "dropout": 0.1, "tie_weights": False}


def _config(**overrides) -> TrainConfig:
    base = dict(batch_size=4, seq_len=16, max_steps=40, eval_interval=10, log_interval=5, precision="fp32", lr=0.01)
    return TrainConfig(**{**base, **overrides})


def test_training_reduces_validation_loss(tiny_run):
    records = [json.loads(line) for line in (tiny_run / "log.jsonl").read_text().splitlines()]
    vals = [r["val_loss"] for r in records if r["val_loss"] is not None]
    assert len(vals) >= 3 and vals[-1] < vals[0] - 0.5
    assert {"step", "elapsed_s", "tokens_seen", "train_loss", "val_loss", "tokens_per_s", "lr"} <= set(records[0])


def test_run_folder_keeps_best_and_last(tiny_run):
    best = checkpoint.load(tiny_run)
    assert best.path.name == "best"
    info = best.info
    assert info["metrics"]["best_val_bpc"] == pytest.approx(info["metrics"]["best_val_loss"] / 0.6931471805599453)
    assert info["device"] == "cpu" and info["precision"] == "fp32" and info["train_time_s"] > 0
    assert (tiny_run / "last" / "resume.safetensors").exists()
    assert not (tiny_run / "best" / "resume.safetensors").exists()


def test_learning_rate_warms_up_over_a_fraction_of_the_run_then_decays():
    config = _config(warmup=0.1, lr=1.0, min_lr_ratio=0.1, max_steps=100)
    rates = [learning_rate(config, step / 100) for step in range(101)]
    assert rates[0] == 0 < rates[5] == pytest.approx(0.5, abs=0.01) and rates[10] == pytest.approx(1.0, abs=0.03)
    assert rates[100] == pytest.approx(0.1)
    assert learning_rate(_config(schedule="constant", warmup=0.0, lr=0.5), 0.5) == 0.5


def test_wsd_holds_the_learning_rate_then_decays_over_the_last_fifth():
    config = _config(schedule="wsd", warmup=0.1, lr=1.0, min_lr_ratio=0.1, max_steps=100)
    rates = [learning_rate(config, step / 100) for step in range(101)]
    assert rates[0] == 0 and rates[10] == rates[50] == rates[80] == 1.0
    assert rates[90] == pytest.approx(0.55) and rates[100] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))


def test_the_warm_up_is_the_same_share_of_a_short_and_of_a_timed_run():
    short, timed = _config(warmup=0.1, max_steps=20), _config(warmup=0.1, max_steps=None, time_limit_s=60.0)
    short_bounds, timed_bounds = Bounds.of(short, 50), Bounds.of(timed, 50)
    assert short_bounds.used(Position(step=2)) == timed_bounds.used(Position(step=999, elapsed_s=6.0)) == 0.1
    assert learning_rate(short, 0.1) == learning_rate(timed, 0.1) == pytest.approx(short.lr, rel=0.01)


def _final_weights(out):
    return load_file(str(out / "last" / "model.safetensors"))


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name


def test_interrupt_then_resume_matches_a_straight_run(tiny_corpus, tmp_path):
    straight = runs.new_run([str(tiny_corpus)], _config(), MODEL, tmp_path / "straight", overwrite=False)
    straight.run()

    interrupted = runs.new_run([str(tiny_corpus)], _config(), MODEL, tmp_path / "split", overwrite=False)

    def ctrl_c_at_step_17(event):
        if event.kind == "log" and event.step >= 15:
            interrupted.stop_requested = True  # what the SIGINT handler does

    with pytest.raises(TrainingInterrupted, match="--resume"):
        interrupted.run(ctrl_c_at_step_17)
    assert checkpoint.load(tmp_path / "split", for_resume=True).info["metrics"]["step"] == 15
    runs.resumed_run(str(tmp_path / "split"), [], {}).run()
    _assert_same_weights(_final_weights(tmp_path / "straight"), _final_weights(tmp_path / "split"))
    log_steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert log_steps == sorted(set(log_steps)) and log_steps[-1] == 40


def test_n_steps_then_n_more_matches_2n_straight_with_a_constant_schedule(tiny_corpus, tmp_path):
    config = dict(schedule="constant", warmup=0.0)
    runs.new_run([str(tiny_corpus)], _config(max_steps=40, **config), MODEL, tmp_path / "a", False).run()
    runs.new_run([str(tiny_corpus)], _config(max_steps=20, **config), MODEL, tmp_path / "b", False).run()
    runs.resumed_run(str(tmp_path / "b"), [], {"max_steps": 40}).run()
    _assert_same_weights(_final_weights(tmp_path / "a"), _final_weights(tmp_path / "b"))


def test_resume_may_lower_the_learning_rate(tiny_corpus, tmp_path):
    out = train_tiny(tiny_corpus, tmp_path / "run", steps=10)
    result = CliRunner().invoke(cli, ["train", "--resume", str(out), "--lr", "0.0025", "--max-steps", "14"])
    assert result.exit_code == 0, result.output
    resumed = checkpoint.load(out, for_resume=True)
    assert resumed.train_config.lr == 0.0025 and resumed.info["metrics"]["step"] == 14


def test_resume_through_the_cli_continues_the_step_count(tiny_corpus, tmp_path):
    out = train_tiny(tiny_corpus, tmp_path / "run", steps=20)
    result = CliRunner().invoke(cli, ["train", "--resume", str(out), "--max-steps", "30"])
    assert result.exit_code == 0, result.output
    assert checkpoint.load(out, for_resume=True).info["metrics"]["step"] == 30
    assert "resumed at step 20" in result.output


@pytest.mark.parametrize("flag, value", [("--hidden", "64"), ("--grad-clip", "1.5"), ("--level", "word"),
                                         ("--seed", "7")])
def test_resume_refuses_a_changed_setting_naming_it(tiny_corpus, tmp_path, flag, value):
    out = train_tiny(tiny_corpus, tmp_path / "run", steps=10)
    result = CliRunner().invoke(cli, ["train", "--resume", str(out), flag, value])
    assert result.exit_code == 1 and f"error: {flag} {value} differs from the run's" in result.output
    assert checkpoint.load(out, for_resume=True).info["metrics"]["step"] == 10


def test_resume_accepts_the_run_s_own_command_restated(tiny_corpus, tmp_path):
    out = train_tiny(tiny_corpus, tmp_path / "run", steps=10)
    same = ["train", str(tiny_corpus), "--out", str(out), "--hidden", "24", "--embed", "12", "--layers", "2",
            "--batch-size", "8", "--seq-len", "32", "--eval-interval", "50", "--log-interval", "10",
            "--precision", "fp32", "--lr", "0.01", "--level", "char", "--cell", "lstm"]
    result = CliRunner().invoke(cli, [*same, "--max-steps", "20", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    assert checkpoint.load(out, for_resume=True).info["metrics"]["step"] == 20
    elsewhere = CliRunner().invoke(cli, [*same[:3], str(tmp_path / "other"), "--resume", str(out)])
    assert elsewhere.exit_code == 1 and "--out" in elsewhere.output and "not the folder" in elsewhere.output


def _lr_at_resume_and_before(out, overrides):
    before = json.loads((out / "last" / "resume.json").read_text())["position"]["progress"]
    trainer = runs.resumed_run(str(out), [], overrides)
    return before, trainer.bounds.schedule(trainer.position), trainer


def test_a_resume_with_a_longer_budget_continues_the_schedule_without_a_jump(tiny_corpus, tmp_path):
    out = train_tiny(tiny_corpus, tmp_path / "run", "--schedule", "cosine", steps=20)
    before, after, trainer = _lr_at_resume_and_before(out, {"max_steps": 40})
    assert before == after == 1.0  # the schedule had ended: it stays at its end, not back up
    assert not trainer.done() and trainer.bounds.used(trainer.position) == 0.5
    # stopped halfway through a time budget, resumed with twice the budget: the schedule goes on from 0.5
    trainer.position.elapsed_s, trainer.position.progress = 30.0, 0.5
    trainer.position.anchor = None
    trainer.config = dataclasses.replace(trainer.config, max_steps=None, time_limit_s=60.0)
    trainer.folder.setup = dataclasses.replace(trainer.setup, config=trainer.config)  # what last/ records
    trainer.bounds = Bounds.of(trainer.config, trainer.batches.chunks_per_epoch)
    trainer.save_last()
    _, resumed_at, longer = _lr_at_resume_and_before(out, {"time_limit_s": 120.0})
    assert resumed_at == 0.5 and longer.bounds.used(longer.position) == 0.25
    longer.position.elapsed_s = 75.0  # halfway through what is left: halfway from 0.5 to the end
    assert longer.bounds.schedule(longer.position) == pytest.approx(0.75)


def test_a_resume_with_the_same_time_budget_keeps_the_schedule_exact(tiny_corpus, tmp_path):
    trainer = runs.new_run([str(tiny_corpus)], _config(max_steps=None, time_limit_s=3600.0), MODEL, tmp_path, False)
    trainer.train_step()
    trainer.position.step, trainer.position.elapsed_s = 1, 36.0
    trainer.save_last()
    before, after, resumed = _lr_at_resume_and_before(tmp_path, {})
    assert before == after == 0.01 and resumed.position.anchor is None


def test_word_level_reports_perplexity(tiny_word_run):
    info = checkpoint.load(tiny_word_run).info
    assert info["vocab"]["level"] == "word"
    assert info["metrics"]["best_val_ppl"] > 1.0


def test_validation_reports_bits_per_character_and_perplexity_per_word_at_both_levels(tiny_run, tiny_word_run):
    char = [r for r in _log_records(tiny_run) if r["val_loss"] is not None][-1]
    word = [r for r in _log_records(tiny_word_run) if r["val_loss"] is not None][-1]
    assert char["val_bpc"] == pytest.approx(char["val_loss"] / math.log(2))  # a token is a character
    assert char["val_ppl_word"] > 1 and "val_ppl" not in char
    assert word["val_ppl"] == pytest.approx(math.exp(word["val_loss"]))  # per token
    assert word["val_ppl_word"] > word["val_ppl"]  # fewer words than tokens: the spaces are tokens
    assert word["val_bpc"] < word["val_loss"] / math.log(2)  # a token covers several characters


def _log_records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_training_prints_a_loss_curve_and_summary(tiny_corpus, tmp_path):
    result = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--out", str(tmp_path / "r"), "--hidden", "8",
                                      "--embed", "8", "--batch-size", "4", "--seq-len", "16", "--max-steps", "30",
                                      "--eval-interval", "10", "--log-interval", "5"])
    assert result.exit_code == 0, result.output
    assert "best validation" in result.output and "bpc" in result.output
    assert "validation loss (nats)" in result.output  # the curve's legend
    assert "sample at step 10" in result.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_on_cuda_with_bf16_and_loads_on_cpu(tiny_corpus, tmp_path):
    out = train_tiny(tiny_corpus, tmp_path / "gpu", "--device", "cuda", "--precision", "bf16", steps=30)
    loaded = checkpoint.load(out)
    assert loaded.info["device"] == "cuda" and loaded.model.device.type == "cpu"
