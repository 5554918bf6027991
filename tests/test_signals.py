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
from helpers import default_sigint

pytestmark = pytest.mark.slow  # every test here starts a real process

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

# `lstm-repl train` as a child that, told to, stops inside a checkpoint's swap and says so in a
# file: the test's SIGKILL then lands in the save by construction. MOMENT 1: the new folder is
# written, nothing renamed; 2: the previous one is set aside, the new one not yet in place; 3: the
# new one is in place, the one set aside not yet removed (atomic.swap_into_place syncs the folder
# at each of these). Only a swap that replaces a checkpoint counts, so all three moments exist.
PAUSING_TRAIN = """
import os, sys, time
from pathlib import Path
import lstm_repl.atomic as atomic
from lstm_repl.cli.main import main

marker, moment = Path(os.environ["PAUSE_MARKER"]), int(os.environ["PAUSE_MOMENT"])
real_sync, seen = atomic.sync_folder, []

def sync_folder(folder):
    real_sync(folder)
    if ".tmp-" in folder.name:  # a swap begins: does it replace a checkpoint?
        seen[:] = [(folder.parent / folder.name[1:].partition(".tmp-")[0]).exists()]
    elif seen:
        seen.append(True)
    if seen and seen[0] and len(seen) == moment:
        marker.write_text(str(moment))
        time.sleep(3600)

atomic.sync_folder = sync_folder
sys.argv[0] = "lstm-repl"
main()
"""


def _pausing_in_a_save(args: list[str], marker: Path, moment: int) -> tuple[list[str], dict]:
    return [sys.executable, "-c", PAUSING_TRAIN, *args[3:]], {"PAUSE_MARKER": str(marker), "PAUSE_MOMENT": str(moment)}


def test_sigkill_at_any_moment_leaves_best_and_last_loadable_and_the_run_resumable(tiny_corpus, tmp_path):
    out, rng, env = tmp_path / "run", random.Random(13), _env(tmp_path)
    fresh = _train_args(tiny_corpus, out, "--eval-interval", "1", "--log-interval", "1", "--max-steps", "100000")
    killed_in_a_save = []
    for kill in range(KILLS):
        args = fresh if kill == 0 else [sys.executable, "-m", "lstm_repl", "train", "--resume", str(out)]
        marker = tmp_path / f"paused-{kill}"
        in_a_save = kill % 2 == 1  # the others at a random moment
        if in_a_save:
            args, extra = _pausing_in_a_save(args, marker, moment=1 + kill // 2 % 3)
        lines = _log_steps(out)
        process = subprocess.Popen(args, env={**env, **(extra if in_a_save else {})}, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        try:
            if in_a_save:
                _wait_for(lambda: marker.exists() or process.poll() is not None, "the child to stop in a save")
            else:
                _wait_for(lambda: _log_steps(out) > lines + 1 or process.poll() is not None, "training to run")
                time.sleep(rng.uniform(0, 0.2))
            assert process.poll() is None, process.stderr.read().decode()
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
            process.stderr.close()
        if in_a_save:
            killed_in_a_save.append(int(marker.read_text()))
        best, last = checkpoint.load(out), checkpoint.load(out, for_resume=True)
        assert _finite(best) and _finite(last) and last.resume is not None
    step = checkpoint.load(out, for_resume=True).resume["position"]["step"]
    done = subprocess.run([sys.executable, "-m", "lstm_repl", "train", "--resume", str(out), "--max-steps",
                           str(step + 3)], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert sorted(set(killed_in_a_save)) == [1, 2, 3] and len(killed_in_a_save) == KILLS // 2
    assert not _saving(out) and not any(name.endswith(".old") for name in os.listdir(out)), os.listdir(out)
    final = checkpoint.load(out, for_resume=True)
    assert final.resume["position"]["step"] == step + 3 and _finite(final)
    records = [json.loads(line) for line in (out / "log.jsonl").read_text("utf-8").splitlines()]
    assert [r["step"] for r in records] == sorted({r["step"] for r in records})


# ---------------------------------------------------------------- SIGINT


def _training_with_a_checkpoint(tiny_corpus: Path, out: Path, tmp_path: Path) -> subprocess.Popen:
    """A real training process, once it has saved a first checkpoint."""
    process = subprocess.Popen(_train_args(tiny_corpus, out, "--eval-interval", "5", "--max-steps", "100000"),
                               env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=default_sigint)
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
                               stderr=subprocess.PIPE, preexec_fn=default_sigint)
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
