"""--follow with a real training run: `lstm-repl train` runs in another process, writing best/
every few steps, while the shell (headless, on a terminal emulator) follows the run, keeps the
text typed and shows the newer step in its status line."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest
from prompt_toolkit.data_structures import Size
from prompt_toolkit.output.vt100 import Vt100_Output

from lstm_repl.model import checkpoint
from lstm_repl.shell.app import ShellApp
from lstm_repl.shell.follow import Follower, metrics_line, step_of
from lstm_repl.shell.headless import open_headless, shell_on
from pyte_terminal import Terminal

TIMEOUT = 90.0


def start_training(corpus, out):
    args = [sys.executable, "-m", "lstm_repl", "train", str(corpus), "--out", str(out), "--hidden", "16",
            "--embed", "8", "--layers", "1", "--batch-size", "8", "--seq-len", "32", "--time", "120s",
            "--eval-interval", "10", "--log-interval", "10", "--precision", "fp32", "--lr", "0.01"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.slow  # starts a real process
def test_follow_reloads_newer_best_checkpoints_and_keeps_the_text(tiny_corpus, tmp_path):
    run = tmp_path / "live-char"
    trainer = start_training(tiny_corpus, run)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (run / "best" / "config.json").is_file():
            assert trainer.poll() is None and time.monotonic() < deadline, "training wrote no best/"
            time.sleep(0.1)
        first = checkpoint.load(run)
        seen = asyncio.run(follow_while_typing(first))
    finally:
        trainer.send_signal(signal.SIGTERM)
        trainer.wait(30)
    first_step, steps, text, status = seen
    assert steps and max(steps) > first_step  # a newer best/ was picked up
    assert text == "First Citizen"  # the typed text stayed, read again by the new model
    assert f"step {max(steps):,} · val" in status and "bpc" in status


async def follow_while_typing(first):
    terminal = Terminal()
    output = Vt100_Output(terminal, lambda: Size(rows=30, columns=100), term="xterm")
    followers: list[Follower] = []

    def build() -> ShellApp:
        app = ShellApp(shell_on(first), color=True)
        followers.append(Follower(app, poll_s=0.2).attach())
        return app

    async with open_headless(build, output) as d:
        app, follower = d.shell_app, followers[0]
        await d.type("First Citizen")
        await d.until(lambda: app.shell.session.text == "First Citizen" and d.settled(), "the typed text", TIMEOUT)
        await d.until(lambda: follower.reloads >= 1 and d.settled(), "a reload", TIMEOUT)
        session = app.shell.session
        steps = [step_of(session.loaded.info)]
        def status() -> str:
            return next((row for row in terminal.screen.display if " · T " in row), "")

        await d.until(lambda: metrics_line(session.loaded.info) in status(), "the new step in the status line",
                      TIMEOUT)
        status = status()
        text = session.text
        assert session.snapshot.position == len(text)  # the new model read it all
        return step_of(first.info), steps, text, status
