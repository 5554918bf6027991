"""Data-parallel training for real: two gloo processes under torchrun against one process with their
combined batch, on the same data in the same order, from the first step and across a resume."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lstm_repl.model import checkpoint
from helpers import default_sigint

TORCHRUN = Path(sys.executable).with_name("torchrun")
COMMON = ["--hidden", "16", "--embed", "8", "--layers", "2", "--dropout", "0", "--seq-len", "16", "--eval-interval",
          "4", "--log-interval", "2", "--precision", "fp32", "--lr", "0.01", "--seed", "1"]
# Two processes sum their gradients in another order than one process does: fp32 rounding (~1e-7
# relative per step), which Adam's per-weight normalisation can carry along; after 8 steps the
# weights differed by 9e-7 when measured. 1e-5 leaves ten times that, and is far below what a
# different batch or data order does (a step moves the weights by about lr = 1e-2).
TOLERANCE = 1e-5

pytestmark = [pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this python"),
              pytest.mark.slow]  # real torchrun processes


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "LSTM_REPL_CACHE": str(tmp_path / "cache")}


def _torchrun(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "-m", "lstm_repl", "train", *args]
    return subprocess.run(command, env=_env(tmp_path), capture_output=True, text=True, timeout=300)


def _alone(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lstm_repl", "train", *args], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=300)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last" / "model.safetensors"))


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text("utf-8").splitlines()]


def _assert_close(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    worst = max(float((wa[name] - wb[name]).abs().max()) for name in wa)
    assert worst < TOLERANCE, worst


def test_two_processes_train_as_one_process_with_their_combined_batch(tiny_corpus, tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    done = _torchrun(tmp_path, str(tiny_corpus), "--out", str(two), "--batch-size", "2", "--max-steps", "8", *COMMON)
    assert done.returncode == 0, done.stderr[-2000:]
    alone = _alone(tmp_path, str(tiny_corpus), "--out", str(one), "--batch-size", "4", "--max-steps", "8", *COMMON)
    assert alone.returncode == 0, alone.stderr[-2000:]
    _assert_close(two, one)
    logged_two, logged_one = _log(two), _log(one)
    assert [r["step"] for r in logged_two] == [r["step"] for r in logged_one] == [2, 4, 6, 8]  # one writer
    for a, b in zip(logged_two, logged_one):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["tokens_seen"] == b["tokens_seen"]
        assert (a["val_loss"] is None) == (b["val_loss"] is None)
        if a["val_loss"] is not None:
            assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
    assert checkpoint.load(two).model.config.hidden == 16  # the same format: it loads anywhere
    assert checkpoint.load(two, for_resume=True).resume["tensors"]["carry.0"].shape == (2, 4, 16)  # every stream


def test_a_resume_under_torchrun_continues_exactly(tiny_corpus, tmp_path):
    """(A constant learning rate: a resume with a longer budget does not stretch a schedule.)"""
    split, straight = tmp_path / "split", tmp_path / "straight"
    constant = [*COMMON, "--schedule", "constant", "--warmup", "0"]
    first = _torchrun(tmp_path, str(tiny_corpus), "--out", str(split), "--batch-size", "2", "--max-steps", "4",
                      *constant)
    assert first.returncode == 0, first.stderr[-2000:]
    resumed = _torchrun(tmp_path, "--resume", str(split), "--max-steps", "8")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    alone = _alone(tmp_path, str(tiny_corpus), "--out", str(straight), "--batch-size", "4", "--max-steps", "8",
                   *constant)
    assert alone.returncode == 0, alone.stderr[-2000:]
    _assert_close(split, straight)
    assert [r["step"] for r in _log(split)] == [2, 4, 6, 8]
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


def test_ctrl_c_under_torchrun_saves_a_resumable_last_with_every_stream(tiny_corpus, tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    command = [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "-m", "lstm_repl", "train", str(tiny_corpus),
               "--out", str(out), "--batch-size", "2", "--max-steps", "100000", *COMMON]
    process = subprocess.Popen(command, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 120
    while not (out / "last").is_dir() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    _, stderr = process.communicate(timeout=120)
    assert "error: stopped at step" in stderr and f"resume with: lstm-repl train --resume {out}" in stderr
    last = checkpoint.load(out, for_resume=True)
    assert last.resume["tensors"]["carry.0"].shape == (2, 4, 16)
