"""One writer per run folder, with real processes: a second `train --out` or a `--resume` while a
run trains stops in one line naming the holder, the run goes on untouched, readers are never
blocked, and a run killed with SIGKILL leaves no lock behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lstm_repl.training import run_lock
from lstm_repl.cli.main import cli

TIMEOUT = 120.0


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "LSTM_REPL_CACHE": str(tmp_path / "cache"),
            "XDG_STATE_HOME": str(tmp_path / "state"), "OMP_NUM_THREADS": "1"}


def _lstm(*args: str) -> list[str]:
    return [sys.executable, "-m", "lstm_repl", *args]


def _train_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return _lstm("train", str(corpus), "--out", str(out), "--hidden", "16", "--embed", "8", "--batch-size", "4",
                 "--seq-len", "16", "--precision", "fp32", "--eval-interval", "5", "--log-interval", "5", *extra)


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _training(corpus: Path, out: Path, tmp_path: Path) -> subprocess.Popen:
    """A real, long training process, once it has written its first checkpoint."""
    process = subprocess.Popen(_train_args(corpus, out, "--max-steps", "1000000"), env=_env(tmp_path),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (out / "last" / "config.json").is_file() and (out / "log.jsonl").is_file()
              or process.poll() is not None, "a first checkpoint")
    assert process.poll() is None, process.stderr.read()
    return process


def _stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, stderr
    return stderr


def _one_line(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _logged_steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "log.jsonl").read_text("utf-8").splitlines()]


@pytest.mark.slow  # starts a real process
@pytest.mark.parametrize("second", ["train --out --overwrite", "train --resume"])
def test_a_second_writer_stops_in_one_line_naming_the_holder_and_the_run_goes_on(tiny_corpus, tmp_path, second):
    out = tmp_path / "run"
    first = _training(tiny_corpus, out, tmp_path)
    try:
        args = (_train_args(tiny_corpus, out, "--max-steps", "20", "--overwrite") if second.endswith("--overwrite")
                else _lstm("train", "--resume", str(out), "--max-steps", "1000000"))
        log_before = (out / "log.jsonl").read_bytes()
        result = subprocess.run(args, env=_env(tmp_path), capture_output=True, text=True, timeout=TIMEOUT)
        _one_line(result, str(out), "in use", f"process {first.pid}")
        reader = subprocess.run(_lstm("info", str(out)), env=_env(tmp_path), capture_output=True, text=True,
                                timeout=TIMEOUT)
        assert reader.returncode == 0, reader.stderr  # readers take no lock
        assert (out / "log.jsonl").read_bytes().startswith(log_before)  # nothing of the run was cleaned
        _wait_for(lambda: len(_logged_steps(out)) > len(log_before.splitlines()) + 1, "the first run to go on")
    finally:
        _stop(first)
    steps = _logged_steps(out)
    assert steps == sorted(set(steps)), steps  # one writer: the log's steps only rise


@pytest.mark.slow  # starts a real process
def test_a_run_killed_with_sigkill_can_be_resumed_at_once(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    first = _training(tiny_corpus, out, tmp_path)
    first.kill()
    first.wait(timeout=TIMEOUT)
    first.stderr.close()
    assert (out / run_lock.LOCK_FILE).read_text().strip() == str(first.pid)  # the file stays; its lock does not
    result = subprocess.run(_lstm("train", "--resume", str(out), "--max-steps", "1000000", "--time", "1s"),
                            env=_env(tmp_path), capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr


def test_the_lock_is_released_when_the_command_ends_so_the_same_process_can_train_again(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    for extra in (["--max-steps", "6"], ["--max-steps", "6", "--overwrite"]):
        result = CliRunner().invoke(cli, _train_args(tiny_corpus, out, *extra)[3:])
        assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["train", "--resume", str(out), "--max-steps", "8"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("kind", ["symlink", "fifo", "folder"])
def test_a_lock_file_that_is_not_one_is_refused_and_left_alone(tiny_corpus, tmp_path, kind):
    out, precious = tmp_path / "run", tmp_path / "precious.txt"
    out.mkdir()
    precious.write_text("keep")
    lock = out / run_lock.LOCK_FILE
    {"symlink": lambda: lock.symlink_to(precious), "fifo": lambda: os.mkfifo(lock), "folder": lock.mkdir}[kind]()
    result = CliRunner().invoke(cli, _train_args(tiny_corpus, out, "--max-steps", "6")[3:])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert str(lock) in result.output and "remove it" in result.output, result.output
    assert precious.read_text() == "keep" and not (out / "log.jsonl").exists()


def test_without_fcntl_no_lock_is_taken(tmp_path, monkeypatch):
    monkeypatch.setattr(run_lock, "fcntl", None)  # Windows
    with run_lock.holding(tmp_path / "run"), run_lock.holding(tmp_path / "run"):
        pass
    assert not (tmp_path / "run" / run_lock.LOCK_FILE).exists()
