"""`lstm-repl export --onnx`: the one-token step as ONNX, its state an input and an output, run by
onnxruntime for 300 steps with the state carried, against PyTorch's logits; the export folder's
rules (never deleting what export did not write) hold with model.onnx in it."""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime
import torch
from click.testing import CliRunner

from lstm_repl.cli.main import cli
from lstm_repl.model import checkpoint

from helpers import TINY_TEXT, one_line_error, train_tiny

STEPS = 300


def _export(run, dest, *extra: str):
    return CliRunner().invoke(cli, ["export", str(run), str(dest), "--command", "lstm-repl train tiny.txt", *extra])


def test_onnxruntime_gives_pytorchs_logits_over_300_steps_with_the_state_carried(kind_run, tmp_path):
    kind, run = kind_run
    result = _export(run, tmp_path / "model", "--onnx")
    assert result.exit_code == 0, result.output
    session = onnxruntime.InferenceSession(str(tmp_path / "model" / "model.onnx"), providers=["CPUExecutionProvider"])
    loaded = checkpoint.load(tmp_path / "model")
    model, names = loaded.model.eval(), list(loaded.model.rnn.state_names)
    assert [i.name for i in session.get_inputs()] == ["token", *names]
    assert [o.name for o in session.get_outputs()] == ["logits", *[f"{n}_out" for n in names]]
    ids = loaded.vocab.encode(TINY_TEXT * 3)[:STEPS]
    with torch.inference_mode():
        fused, _ = model(torch.tensor([ids]))  # the training path over the whole sequence
    state = [s.numpy() for s in model.zero_state(1)]
    worst = 0.0
    for t, token in enumerate(ids):
        logits, *state = session.run(None, {"token": np.array([token], dtype=np.int64), **dict(zip(names, state))})
        worst = max(worst, float(np.abs(logits[0] - fused[0, t].numpy()).max()))
    assert worst < 1e-4, worst
    with torch.inference_mode():  # the last state too, and a batch of three at once
        _, final = model(torch.tensor([ids]))
    for ours, theirs in zip(state, final):
        np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-4)
    batch = session.run(None, {"token": np.array(ids[:3], dtype=np.int64),
                               **{n: np.zeros((2, 3, 16), np.float32) for n in names}})
    assert batch[0].shape == (3, len(loaded.vocab)) and batch[1].shape == (2, 3, 16)


def test_an_export_with_or_without_onnx_replaces_the_other_and_nothing_else(tiny_run, tmp_path):
    dest = tmp_path / "model"
    assert _export(tiny_run, dest).exit_code == 0
    assert _export(tiny_run, dest, "--onnx").exit_code == 0
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "config.json", "model.onnx", "model.safetensors"]
    assert "## ONNX (model.onnx)" in (dest / "README.md").read_text("utf-8")
    assert _export(tiny_run, dest).exit_code == 0  # the earlier export's model.onnx was export's own
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    (dest / "notes.txt").write_text("mine", "utf-8")
    one_line_error(_export(tiny_run, dest, "--onnx"), "notes.txt")
    assert (dest / "notes.txt").read_text("utf-8") == "mine" and not (dest / "model.onnx").exists()


def test_without_the_onnx_package_export_onnx_is_one_line_naming_the_extra(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed: import onnx fails
    line = one_line_error(_export(tiny_run, tmp_path / "model", "--onnx"), "lstm-repl[onnx]")
    assert "scripts/setup" in line and not (tmp_path / "model").exists()


def test_a_word_model_with_the_adaptive_softmax_exports_too(tiny_corpus, tmp_path):
    run = train_tiny(tiny_corpus, tmp_path / "run", "--level", "word", "--softmax", "adaptive", steps=60)
    assert _export(run, tmp_path / "model", "--onnx").exit_code == 0
    session = onnxruntime.InferenceSession(str(tmp_path / "model" / "model.onnx"), providers=["CPUExecutionProvider"])
    loaded = checkpoint.load(tmp_path / "model")
    assert loaded.model.config.softmax == "adaptive"
    ids = loaded.vocab.encode(TINY_TEXT)
    state = [s.numpy() for s in loaded.model.zero_state(1)]
    with torch.inference_mode():
        fused, _ = loaded.model.eval()(torch.tensor([ids]))  # log-probabilities, as the ONNX step gives them
    for t, token in enumerate(ids):
        logits, *state = session.run(None, {"token": np.array([token], dtype=np.int64), "h": state[0], "c": state[1]})
        np.testing.assert_allclose(logits[0], fused[0, t].numpy(), atol=1e-4)
