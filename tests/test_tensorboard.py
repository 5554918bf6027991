"""`train --tensorboard DIR`: the curves read back with TensorBoard's own event reader."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lstm_repl.cli.main import cli

from helpers import one_line_error

TRAIN = ["--hidden", "16", "--embed", "8", "--layers", "2", "--batch-size", "8", "--seq-len", "32",
         "--max-steps", "60", "--eval-interval", "20", "--log-interval", "10", "--precision", "fp32", "--lr", "0.01"]


def _train(corpus, out, *extra: str):
    return CliRunner().invoke(cli, ["train", str(corpus), "--out", str(out), *TRAIN, *extra])


def _scalars(folder) -> dict[str, dict[int, float]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_loss_validation_learning_rate_and_gate_saturation_read_back(tiny_corpus, tmp_path, cell):
    result = _train(tiny_corpus, tmp_path / "run", "--cell", cell, "--tensorboard", tmp_path / "tb")
    assert result.exit_code == 0, result.output
    scalars = _scalars(tmp_path / "tb")
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text("utf-8").splitlines()]
    logged = {r["step"]: r for r in records if "step" in r}
    validated = {step: r for step, r in logged.items() if r.get("val_loss") is not None}
    assert sorted(validated) == [20, 40, 60]
    assert sorted(scalars["loss/train"]) == sorted(logged) == [10, 20, 30, 40, 50, 60]
    for step, record in logged.items():
        assert scalars["loss/train"][step] == pytest.approx(record["train_loss"], rel=1e-6)
        assert scalars["learning_rate"][step] == pytest.approx(record["lr"], rel=1e-6)
    for step, record in validated.items():
        assert scalars["validation/bits_per_character"][step] == pytest.approx(record["val_bpc"], rel=1e-6)
        assert scalars["loss/validation"][step] == pytest.approx(record["val_loss"], rel=1e-6)
    assert scalars["loss/train"][60] < scalars["loss/train"][10]
    gates = {"lstm": "fio", "gru": "rz"}[cell]
    expected = {f"gate_saturation/layer_{k}/{g}" for k in (1, 2) for g in gates}
    assert expected == {tag for tag in scalars if tag.startswith("gate_saturation/")}
    for tag in expected:
        assert sorted(scalars[tag]) == [20, 40, 60] and all(0.0 <= v <= 1.0 for v in scalars[tag].values())


def test_a_second_run_adds_its_own_events_and_removes_none(tiny_corpus, tmp_path):
    (tmp_path / "tb").mkdir()
    (tmp_path / "tb" / "notes.txt").write_text("mine", "utf-8")
    assert _train(tiny_corpus, tmp_path / "a", "--max-steps", "20", "--tensorboard", tmp_path / "tb").exit_code == 0
    first = sorted(p.name for p in (tmp_path / "tb").iterdir())
    assert _train(tiny_corpus, tmp_path / "b", "--max-steps", "20", "--tensorboard", tmp_path / "tb").exit_code == 0
    after = sorted(p.name for p in (tmp_path / "tb").iterdir())
    assert set(first) < set(after) and len(after) == 3 and (tmp_path / "tb" / "notes.txt").read_text("utf-8") == "mine"


def test_without_tensorboard_installed_it_is_one_line_naming_the_extra_and_nothing_runs(tiny_corpus, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    one_line_error(_train(tiny_corpus, tmp_path / "run", "--tensorboard", tmp_path / "tb"), "lstm-repl[tensorboard]")
    assert not (tmp_path / "run").exists() and not (tmp_path / "tb").exists()


def test_a_file_where_the_folder_should_be_is_one_line(tiny_corpus, tmp_path):
    (tmp_path / "tb").write_text("a file", "utf-8")
    one_line_error(_train(tiny_corpus, tmp_path / "run", "--tensorboard", tmp_path / "tb"), "tb")
    assert (tmp_path / "tb").read_text("utf-8") == "a file"
