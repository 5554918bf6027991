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
from pathlib import Path
from typing import Awaitable, Callable

from lstm_repl.config import SampleConfig
from lstm_repl.model.checkpoint import Checkpoint
from lstm_repl.shell.headless import Headless, Screen, ShellTiming, run_headless as run_shell, shell_on

BACKSPACE, ENTER, CTRL_C, LEFT = "\x7f", "\r", "\x03", "\x1b[D"
SAMPLE = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
          "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n")
EVERY_FRAME = ShellTiming(frame_s=None)  # every frame drawn: the cost, not the 30-a-second cap


def rss_mb() -> float:
    """This process's resident set now, in MB (Linux /proc; elsewhere the peak, from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1e6 if sys.platform == "darwin" else peak / 1e3


def run_headless(loaded: Checkpoint, script: Callable[[Headless], Awaitable], prefix: str = "",
                 columns: int = 120, rows: int = 36, seed: int = 1):
    """Open the shell on `loaded` with `prefix` already read, run `script` against it once its
    first frame is out, close it. Errors in the loop are kept in the driver's `errors`."""
    from lstm_repl.session.session import Settings

    async def after_first_frame(h: Headless):
        asyncio.get_running_loop().set_exception_handler(
            lambda _loop, context: h.errors.append(str(context.get("exception") or context["message"])))
        await h.until(lambda: h.renders > 0, "the first frame", 120)
        return await script(h)

    os.environ.setdefault("XDG_STATE_HOME", str(Path(os.environ.get("TMPDIR", "/tmp")) / "lstm-repl-bench"))
    shell = shell_on(loaded, Settings(SampleConfig(seed=seed)), prefix)
    return run_shell(shell, after_first_frame, Screen(columns, rows, keep=False), color=True, timing=EVERY_FRAME)


def synced(h: Headless) -> bool:
    """Every key sent is read and handled, nothing streams, the frame is drawn."""
    return h.all_read() and h.shell_app.settled


# ------------------------------------------------------------ keystrokes


def keystroke_ms(loaded: Checkpoint, typed_before: int, keys: int = 300,
                 learn: bool = False) -> tuple[list[float], list[float]]:
    """ms from each key's arrival to the first frame that shows it read (its token's gates and
    predictions drawn), and to the frame with its ghost text, with `typed_before` characters read.
    learn: with :learn on, the next key comes once this one is handled (its ghost text out), not
    waiting for the learning, which runs behind the keys as for a fast typist; no ghost figures."""
    prefix = (SAMPLE * (typed_before // len(SAMPLE) + 1))[:typed_before]

    async def script(h: Headless) -> tuple[list[float], list[float]]:
        to_frame, to_ghost = [], []
        if learn:
            await h.command(":learn on")
            await h.settle(timeout=120)
        for index in range(keys):
            key = BACKSPACE if index % 17 == 16 else SAMPLE[index % len(SAMPLE)].replace("\n", " ")
            expected = h.session.text_length() + (-1 if key == BACKSPACE else 1)
            start = time.perf_counter()
            h.send(key)
            if learn:
                await h.until(lambda: any(t >= start and length == expected for t, _, length in h.frames),
                              "the key's frame", timeout=30, poll_s=None)
                shown = next(t for t, _, length in h.frames if t >= start and length == expected)
                to_frame.append((shown - start) * 1e3)
                await h.until(lambda: not h.shell_app.key_pending, "the key handled", timeout=30)
                continue
            await h.until(lambda: any(t >= start and settled and length == expected for t, settled, length in h.frames),
                          "the key's frames", timeout=30, poll_s=None)  # no polling: the loop stays free to draw
            frames = [(t, settled) for t, settled, length in h.frames if t >= start and length == expected]
            to_frame.append((frames[0][0] - start) * 1e3)
            to_ghost.append((next(t for t, settled in frames if settled) - start) * 1e3)
        if learn:
            await h.settle(timeout=600)
        return to_frame, to_ghost

    return run_headless(loaded, script, prefix)


def paste_bits_per_char(loaded: Checkpoint, text: str, learn: bool) -> dict:
    """Bits per character of `text` pasted into the shell (one bracketed paste), each token as the
    shell scored it, with learning on or off, once the shell has settled (learning done)."""
    import math

    async def script(h: Headless) -> dict:
        if learn:
            await h.command(":learn on")
        start_token, start = len(h.session.ids), time.perf_counter()
        h.send(f"\x1b[200~{text}\x1b[201~")
        await h.until(lambda: synced(h) and h.session.text_length() >= len(text), "the paste read and learned",
                      timeout=1200)
        probs = h.session.read.probs[start_token:]
        bits = sum(-math.log2(max(p, 1e-30)) for p in probs)
        return {"chars": len(text), "tokens": len(probs), "bits_per_character": bits / len(text),
                "seconds": time.perf_counter() - start, "moved": h.shell_app.learning.moved, "errors": h.errors}

    return run_headless(loaded, script)


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
        await h.send_in_chunks(text.replace("\n", ENTER))
        await h.until(lambda: synced(h) and h.session.text_length() == len(text), "the paste read", timeout=600)
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
    from lstm_repl.session.session import Session, Settings
    from lstm_repl.shell.headless import PanelSettings, render_panel, truecolor_lines

    session = Session(loaded, Settings(SampleConfig(seed=1)))
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
                await h.deliver(part)
                await h.until(lambda: not h.shell_app.key_pending, "the keys handled", 300)
            if name.startswith("stream"):
                await h.until(lambda: h.app.streaming is not None or h.app.message.startswith("streamed"),
                              "a stream", 60)
                if name == "stream, stopped":
                    await asyncio.sleep(rng.uniform(0.05, 0.5))
                    h.send(CTRL_C)
            await h.settle(timeout=300)
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
