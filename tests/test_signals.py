"""Real signals to real processes: SIGKILL at any moment of a training run (some in the middle of a
save), and Ctrl-C (SIGINT) to `train`, `generate` and the piped shell."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lstm_repl.model import checkpoint

TIMEOUT = 120.0


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "LSTM_REPL_CACHE": str(tmp_path / "cache"),
            "XDG_STATE_HOME": str(tmp_path / "state"), "OMP_NUM_THREADS": "1"}


def _train_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "lstm_repl", "train", str(corpus), "--out", str(out), "--hidden", "64",
            "--embed", "16", "--batch-size", "4", "--seq-len", "16", "--precision", "fp32", "--lr", "0.003", *extra]


def _wait_for(condition, what: str, timeout: float = TIMEOUT, every: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def _log_steps(out: Path) -> int:
    try:
        return len((out / "log.jsonl").read_bytes().splitlines())
    except FileNotFoundError:
        return 0


def _saving(out: Path) -> bool:
    try:
        return any(".tmp" in name for name in os.listdir(out))
    except FileNotFoundError:
        return False


def _finite(loaded: checkpoint.Checkpoint) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in loaded.model.parameters())


# ---------------------------------------------------------------- SIGKILL


KILLS = 20


def test_sigkill_at_any_moment_leaves_best_and_last_loadable_and_the_run_resumable(tiny_corpus, tmp_path):
    out, rng, env = tmp_path / "run", random.Random(13), _env(tmp_path)
    fresh = _train_args(tiny_corpus, out, "--eval-interval", "1", "--log-interval", "1", "--max-steps", "100000")
    killed_in_a_save = 0
    for kill in range(KILLS):
        args = fresh if kill == 0 else [sys.executable, "-m", "lstm_repl", "train", "--resume", str(out)]
        lines = _log_steps(out)
        process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_for(lambda: _log_steps(out) > lines + 1 or process.poll() is not None, "training to run")
            assert process.poll() is None, process.stderr.read().decode()
            if kill % 2:  # in the middle of a save: as soon as a temporary folder shows
                deadline = time.monotonic() + 10
                while not _saving(out) and time.monotonic() < deadline:
                    pass
            else:
                time.sleep(rng.uniform(0, 0.2))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
            process.stderr.close()
        killed_in_a_save += _saving(out)
        best, last = checkpoint.load(out), checkpoint.load(out, for_resume=True)
        assert _finite(best) and _finite(last) and last.resume is not None
    step = checkpoint.load(out, for_resume=True).resume["position"]["step"]
    done = subprocess.run([sys.executable, "-m", "lstm_repl", "train", "--resume", str(out), "--max-steps",
                           str(step + 3)], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert killed_in_a_save >= 1, "no kill landed in a save: the test did not test that"
    assert not _saving(out), os.listdir(out)  # what killed saves left was removed on the next start
    final = checkpoint.load(out, for_resume=True)
    assert final.resume["position"]["step"] == step + 3 and _finite(final)
    records = [json.loads(line) for line in (out / "log.jsonl").read_text("utf-8").splitlines()]
    assert [r["step"] for r in records] == sorted({r["step"] for r in records})


# ---------------------------------------------------------------- SIGINT


def _training_with_a_checkpoint(tiny_corpus: Path, out: Path, tmp_path: Path) -> subprocess.Popen:
    """A real training process, once it has saved a first checkpoint."""
    process = subprocess.Popen(_train_args(tiny_corpus, out, "--eval-interval", "5", "--max-steps", "100000"),
                               env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (out / "last").is_dir() or process.poll() is not None, "a first checkpoint")
    return process


def test_ctrl_c_stops_training_with_a_resumable_last_and_the_resume_command(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    process = _training_with_a_checkpoint(tiny_corpus, out, tmp_path)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"resume with: lstm-repl train --resume {out}" in stderr.strip().splitlines()[-1]  # (after progress lines)
    last = checkpoint.load(out, for_resume=True)
    resumed = subprocess.run([sys.executable, "-m", "lstm_repl", "train", "--resume", str(out), "--max-steps",
                              str(last.resume["position"]["step"] + 2)], env=_env(tmp_path), capture_output=True,
                             text=True, timeout=TIMEOUT)
    assert resumed.returncode == 0, resumed.stderr


def test_a_second_ctrl_c_stops_training_at_once(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    process = _training_with_a_checkpoint(tiny_corpus, out, tmp_path)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert checkpoint.load(out, for_resume=True).resume is not None  # what was saved before stays whole


@pytest.mark.parametrize("piped", [False, True], ids=["generate", "piped shell"])
def test_ctrl_c_keeps_the_text_written_so_far(tiny_run, tmp_path, piped):
    if piped:
        args = [sys.executable, "-m", "lstm_repl", "repl", str(tiny_run), "--length", "10000000", "--seed", "1"]
    else:
        args = [sys.executable, "-m", "lstm_repl", "generate", str(tiny_run), "--prompt", "First", "--length",
                "10000000", "--seed", "1"]
    process = subprocess.Popen(args, env=_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    if piped:
        process.stdin.write(b"First Citizen:\n")
    process.stdin.close()
    process.stdin = None  # (communicate would flush it)
    first = process.stdout.read(200)  # it is writing
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, stderr
    assert len(first) == 200 and (first + rest).endswith(b"\n") and b"Traceback" not in stderr  # the line ends
    assert stderr.decode().strip().count("\n") == 0
