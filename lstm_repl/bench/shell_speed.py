"""The shell measured as a person uses it, headless: keys arrive through a pipe input, the real
app handles and draws them (to a screen that discards what it is sent), and the clock runs from
a key's arrival to the frame that shows its effect.

- keystroke latency with 100, 10,000 and 100,000 characters already typed;
- a paste arriving as keystrokes, against `lstm-repl eval` on the same text;
- memory after a long stream and typing (resident set, KiB per token, what the store keeps);
- a soak: minutes of typing, streaming, stopping, editing, :reset and :load, RSS sampled;
- start-up: from the command to a shell ready for typing, against `python -c "import torch"`.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from prompt_toolkit.application import create_app_session
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from lstm_repl.model.checkpoint import Checkpoint
from lstm_repl.shell.app import PASTE_GAP_S

BACKSPACE, ENTER, CTRL_C, LEFT = "\x7f", "\r", "\x03", "\x1b[D"
SAMPLE = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
          "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n")
SEND_CHUNK = 4096  # characters per write into the pipe, as a terminal delivers a paste


def rss_mb() -> float:
    """This process's resident set now, in MB (Linux /proc; elsewhere the peak, from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1e6 if sys.platform == "darwin" else peak / 1e3


class _Screen(DummyOutput):
    def __init__(self, columns: int, rows: int):
        super().__init__()
        self.size = Size(rows=rows, columns=columns)

    def get_size(self) -> Size:
        return self.size


@dataclass
class Headless:
    """A running shell app and the pipe its keys come through."""

    app: object  # ShellApp
    pipe: object
    renders: int = 0
    frames: list[tuple[float, bool, int]] = field(default_factory=list)  # (time, settled, text length)
    errors: list[str] = field(default_factory=list)

    drawn: asyncio.Event = field(default_factory=asyncio.Event)

    def drew(self) -> None:
        self.renders += 1
        self.frames = self.frames[-50:] + [(time.perf_counter(), self.app.settled, self.session.text_length())]
        self.drawn.set()

    async def until_drawn(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait for a frame after which `condition` holds, without polling (a polling task would
        keep the loop busy, and prompt_toolkit postpones drawing while the loop is busy)."""
        while True:
            self.drawn.clear()
            if condition():
                return
            await asyncio.wait_for(self.drawn.wait(), timeout)

    @property
    def session(self):
        return self.app.shell.session

    def synced(self) -> bool:
        """The model has read everything on the screen and nothing is streaming."""
        shell = self.app.shell
        return (self.app.streaming is None and not self.app.app.key_processor.input_queue
                and self.app.settled
                and self.session.text_length() == len(shell.history) + len(self.app.reader.line()))

    async def settle(self) -> None:
        """Let the app read what was sent (a pipe's keys are not visible until read), then wait
        until it is synced: keys sent after this are a new batch, not part of a paste."""
        await asyncio.sleep(3 * PASTE_GAP_S)
        await self.until(self.synced, timeout=300)

    async def send(self, keys: str) -> None:
        for start in range(0, len(keys), SEND_CHUNK):
            self.pipe.send_text(keys[start : start + SEND_CHUNK])
            await asyncio.sleep(0)

    async def until(self, condition: Callable[[], bool], timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("the shell did not settle")
            await asyncio.sleep(0.0005)


def run_headless(loaded: Checkpoint, script: Callable[[Headless], Awaitable], prefix: str = "",
                 columns: int = 120, rows: int = 36, seed: int = 1):
    """Open the shell on `loaded` with `prefix` already read, run `script` against it, close it."""
    from lstm_repl.model import checkpoint
    from lstm_repl.shell.app import ShellApp
    from lstm_repl.shell.colon_commands import Shell
    from lstm_repl.session.session import Session, Settings

    async def main():
        with create_pipe_input() as pipe, create_app_session(input=pipe, output=_Screen(columns, rows)):
            session = Session(loaded, Settings(seed=seed))
            shell = Shell(session, load_checkpoint=checkpoint.load)
            if prefix:
                session.edit(0, prefix)
                shell.history = prefix
            app = ShellApp(shell, color=True)
            app.app.min_redraw_interval = None  # every frame drawn: the cost, not the 30-a-second cap
            headless = Headless(app, pipe)
            app.app.after_render += lambda _: headless.drew()
            asyncio.get_running_loop().set_exception_handler(
                lambda _loop, context: headless.errors.append(str(context.get("exception") or context["message"])))
            task = asyncio.ensure_future(app.run_async())
            await headless.until(lambda: app.app.is_running and headless.renders > 0)
            try:
                return await script(headless)
            finally:
                if app.app.is_running:
                    app.app.exit()
                await task

    os.environ.setdefault("XDG_STATE_HOME", str(Path(os.environ.get("TMPDIR", "/tmp")) / "lstm-repl-bench"))
    return asyncio.run(main())


# ------------------------------------------------------------ keystrokes


def keystroke_ms(loaded: Checkpoint, typed_before: int, keys: int = 300) -> tuple[list[float], list[float]]:
    """ms from each key's arrival to the first frame that shows it read (its token's gates and
    predictions drawn), and to the frame with its ghost text, with `typed_before` characters read."""
    prefix = (SAMPLE * (typed_before // len(SAMPLE) + 1))[:typed_before]

    async def script(h: Headless) -> tuple[list[float], list[float]]:
        to_frame, to_ghost = [], []
        for index in range(keys):
            key = BACKSPACE if index % 17 == 16 else SAMPLE[index % len(SAMPLE)].replace("\n", " ")
            expected = h.session.text_length() + (-1 if key == BACKSPACE else 1)
            start = time.perf_counter()
            h.pipe.send_text(key)
            await h.until_drawn(lambda: any(t >= start and settled and length == expected
                                            for t, settled, length in h.frames))
            frames = [(t, settled) for t, settled, length in h.frames if t >= start and length == expected]
            to_frame.append((frames[0][0] - start) * 1e3)
            to_ghost.append((next(t for t, settled in frames if settled) - start) * 1e3)
        return to_frame, to_ghost

    return run_headless(loaded, script, prefix)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


# ------------------------------------------------------------ a paste that arrives as keys


def paste_chars_per_s(loaded: Checkpoint, text: str) -> dict:
    """Send `text` as keystrokes (newlines as Enter, as tmux paste-buffer does) and time until
    the model has read all of it."""
    text = text.rstrip("\n")  # a final Enter would start a stream

    async def script(h: Headless) -> dict:
        renders = h.renders
        start = time.perf_counter()
        await h.send(text.replace("\n", ENTER))
        await h.until(lambda: h.synced() and h.session.text_length() == len(text), timeout=600)
        elapsed = time.perf_counter() - start
        return {"chars": len(text), "seconds": elapsed, "chars_per_s": len(text) / elapsed,
                "frames": h.renders - renders, "errors": h.errors}

    return run_headless(loaded, script)


def eval_chars_per_s(loaded: Checkpoint, text: str) -> float:
    """`lstm-repl eval`'s speed on the same text (its fused, batched scoring)."""
    from lstm_repl.training.evaluation import evaluate_text

    start = time.perf_counter()
    evaluate_text(loaded.model, loaded.vocab, text)
    return len(text) / (time.perf_counter() - start)


# ------------------------------------------------------------ memory in long use


def long_use_memory(loaded: Checkpoint, stream_tokens: int, typed_chars: int) -> dict:
    """RSS after typing `typed_chars` one key at a time and streaming `stream_tokens`, the panel
    drawn at 30 frames a second of work; KiB per token from the growth after a warm-up."""
    from lstm_repl.shell.panel_control import truecolor_lines
    from lstm_repl.shell.views import PanelSettings, render_panel
    from lstm_repl.session.session import Session, Settings

    session = Session(loaded, Settings(seed=1))
    settings, last_frame, terminal_lines = PanelSettings(), 0.0, truecolor_lines()

    def maybe_draw() -> None:
        nonlocal last_frame
        if time.perf_counter() - last_frame >= 1 / 30:
            terminal_lines.lines(render_panel(session.snapshot, settings, 120, 36), 120)
            last_frame = time.perf_counter()

    start_rss = rss_mb()
    warmup = min(2000, stream_tokens // 10)
    for _ in session.stream(warmup):
        maybe_draw()
    warm_rss = rss_mb()
    for _ in session.stream(stream_tokens - warmup):
        maybe_draw()
    for index in range(typed_chars):
        session.edit(session.text_length(), SAMPLE[index % len(SAMPLE)])
        maybe_draw()
    end_rss = rss_mb()
    tokens = len(session.ids)
    return {"tokens": tokens, "rss_start_mb": start_rss, "rss_after_warmup_mb": warm_rss, "rss_end_mb": end_rss,
            "kib_per_token": (end_rss - warm_rss) * 1e6 / 1024 / max(1, tokens - warmup),
            "states_kept": len(session.store), "states_bound": session.store.bound(tokens),
            "gates_kept": session.store.gates_kept()}


# ------------------------------------------------------------ soak


def soak(loaded: Checkpoint, minutes: float, seed: int = 1, report: Callable[[str], None] = print) -> dict:
    """Type, stream, stop, edit, :reset and :load at random (seeded) for `minutes`; RSS sampled."""
    rng = random.Random(seed)

    async def script(h: Headless) -> dict:
        samples: list[tuple[float, float]] = []
        actions: dict[str, int] = {}
        start = time.monotonic()
        next_sample = start
        while time.monotonic() - start < minutes * 60:
            name, keys = _soak_action(rng, h)
            actions[name] = actions.get(name, 0) + 1
            for part in keys:  # each part its own batch: a command, then the Enter that streams
                await h.send(part)
                await asyncio.sleep(3 * PASTE_GAP_S)
            if name.startswith("stream"):
                await h.until(lambda: h.app.streaming is not None or h.app.message.startswith("streamed"), 60)
                if name == "stream, stopped":
                    await asyncio.sleep(rng.uniform(0.05, 0.5))
                    await h.send(CTRL_C)
            await h.settle()
            if h.app.message.startswith("⚠"):
                h.errors.append(f"{name}: {h.app.message}")
            if time.monotonic() >= next_sample:
                samples.append((time.monotonic() - start, rss_mb()))
                report(f"  {samples[-1][0]:6.0f} s  RSS {samples[-1][1]:7.1f} MB  tokens read {len(h.session.ids):,}")
                next_sample += 30
        samples.append((time.monotonic() - start, rss_mb()))
        return {"minutes": minutes, "actions": actions, "rss_samples": samples, "errors": h.errors}

    return run_headless(loaded, script)


def _soak_action(rng: random.Random, h: Headless) -> tuple[str, list[str]]:
    """An action's name and its keys, in parts sent as separate batches."""
    roll = rng.random()
    if roll < 0.35:
        start = rng.randrange(len(SAMPLE))
        return "type", [SAMPLE[start : start + rng.randint(1, 40)].replace("\n", " ")]
    if roll < 0.5:
        return "backspace", [BACKSPACE * rng.randint(1, 6)]
    if roll < 0.6:
        return "edit inside the line", [LEFT * rng.randint(1, 8) + rng.choice("aeiou ,.")]
    if roll < 0.75:
        return "stream", [f":len {rng.randint(20, 400)}{ENTER}", ENTER]
    if roll < 0.88:
        return "stream, stopped", [f":len 5000{ENTER}", ENTER]
    if roll < 0.94:
        return "clear the line", [CTRL_C]
    if roll < 0.97:
        return ":reset", [CTRL_C, f":reset{ENTER}"]
    return ":load", [CTRL_C, f":load {h.session.loaded.name}{ENTER}"]


# ------------------------------------------------------------ start-up


def startup_seconds(ckpt: str, rounds: int = 3) -> dict:
    """Median seconds, interleaved: `python -c "import torch"`, and `lstm-repl repl CKPT` in a
    terminal until its shell is drawn and ready for typing."""
    torch_times, shell_times = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        torch_times.append(time.perf_counter() - start)
        shell_times.append(_shell_ready_seconds(ckpt))
    return {"import_torch_s": statistics.median(torch_times), "shell_ready_s": statistics.median(shell_times),
            "ratio": statistics.median(shell_times) / statistics.median(torch_times)}


READY_MARK = b"Enter streams"  # in the status bar once the app has drawn its first frame


def _shell_ready_seconds(ckpt: str, timeout: float = 120.0) -> float:
    import fcntl
    import pty
    import select
    import struct
    import termios

    env = {**os.environ, "XDG_STATE_HOME": str(Path(os.environ.get("TMPDIR", "/tmp")) / "lstm-repl-bench"),
           "COLUMNS": "120", "LINES": "36"}
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: the shell, as a person starts it, in a 120 x 36 terminal
        fcntl.ioctl(sys.stdout.fileno(), termios.TIOCSWINSZ, struct.pack("HHHH", 36, 120, 0, 0))
        os.execve(sys.executable, [sys.executable, "-m", "lstm_repl", "repl", ckpt], env)
    seen = b""
    try:
        while READY_MARK not in seen:
            if time.perf_counter() - start > timeout:
                raise TimeoutError("the shell did not start")
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                seen = (seen + os.read(fd, 65536))[-4096:]
        elapsed = time.perf_counter() - start
        os.write(fd, b"\x04")  # Ctrl-D: quit
        return elapsed
    finally:
        _reap(pid, fd)


def _reap(pid: int, fd: int) -> None:
    import signal

    import select

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if select.select([fd], [], [], 0.05)[0]:
                os.read(fd, 65536)
        except OSError:
            pass
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(fd)
