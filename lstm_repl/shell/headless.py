"""The shell without a terminal: the real ShellApp on a pipe input, drawing to an output of the
caller's choosing (a DummyOutput, a VT100 output into a buffer or a terminal emulator). Tests,
`bench repl`, replay and the demo run the shell through this; bench reaches the shell only here.

The driver sends keys, waits on the shell's events (never on how long things take) and reads
the panel. One wait serves every caller: `until(condition)`, woken by each frame, batch of keys
and streamed token, and `settle()`, which waits for the app's one settled signal.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable

from prompt_toolkit.application import create_app_session
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput, Output

from lstm_repl.config import SampleConfig
from lstm_repl.errors import ConfigError
from lstm_repl.session.session import Session, Settings
from lstm_repl.shell.app import ShellApp
from lstm_repl.shell.shell_state import Shell
from lstm_repl.shell.panel_control import truecolor_lines
from lstm_repl.shell.timing import PASTE_GAP_S, ShellTiming
from lstm_repl.shell.views import PanelSettings, render_panel

__all__ = ["Headless", "ShellTimeout", "Screen", "ShellTiming", "PASTE_GAP_S", "open_headless", "run_headless",
           "truecolor_lines", "PanelSettings", "render_panel", "slow_steps", "shell_on", "Settings", "drive", "until"]

TIMEOUT_S = 20.0
POLL_S = 0.005  # a condition no event announces is looked at this often
RECEIPT_LIMIT_S = 2.0  # a lone Esc is only read when the input gives up waiting for more
SEND_CHUNK = 4096  # characters per write into the pipe, as a terminal delivers a paste
STEP_DELAY_ENV = "LSTM_REPL_TEST_STEP_DELAY_S"  # test-only: every model step takes this much longer


class ShellTimeout(AssertionError):
    """A wait on the shell ran out: the message says what was awaited and where the shell was."""


class Screen(DummyOutput):
    """A terminal of a size that can change, that keeps what it was sent (text printed above),
    unless told not to (a benchmark's hours of frames)."""

    def __init__(self, columns: int = 100, rows: int = 40, keep: bool = True):
        super().__init__()
        self.size = Size(rows=rows, columns=columns)
        self.printed: list[str] = []
        self.keep = keep

    def get_size(self) -> Size:
        return self.size

    def write(self, data: str) -> None:
        if self.keep:
            self.printed.append(data)

    write_raw = write

    def text(self) -> str:
        return "".join(self.printed).replace("\r\n", "\n")


class Headless:
    """A running ShellApp and the pipe its keys come through."""

    def __init__(self, shell_app: ShellApp, pipe, screen: Output):
        self.shell_app, self.pipe, self.screen = shell_app, pipe, screen
        self.renders = 0
        self.frames: list[tuple[float, bool, int]] = []  # the last frames: (time, settled, text length)
        self.errors: list[str] = []
        self.sent = self.received = 0  # characters sent into the pipe, and read from it by the app
        self.task: asyncio.Task | None = None  # the app's run, once open_headless started it
        self._changed = asyncio.Event()  # set by each frame, batch of keys read and streamed token
        self._drawn = asyncio.Event()  # set by each frame
        shell_app.hooks.add_callback("frame_drawn", self._drew)
        shell_app.hooks.add_callback("keys_read", self._read)
        for event in ("stream_at_token", "stream_ended"):
            shell_app.hooks.add_callback(event, self._something_happened)

    app = property(lambda self: self.shell_app)
    session = property(lambda self: self.shell_app.shell.session)
    buffer = property(lambda self: self.shell_app.buffer)
    shell = property(lambda self: self.shell_app.shell)
    running = property(lambda self: self.shell_app.app.is_running)

    def _drew(self) -> None:
        self.renders += 1
        self.frames = self.frames[-50:] + [(time.perf_counter(), self.shell_app.settled, self.session.text_length())]
        self._changed.set()
        self._drawn.set()

    def _read(self, keys: str, _streamed: int | None) -> None:
        self.received += len(keys)
        self._changed.set()

    def _something_happened(self, *_args) -> None:
        self._changed.set()

    def panel_lines(self) -> list[str]:
        """The lines under the input line as the terminal gets them (escape codes included)."""
        return self.shell_app.frame.lines_below_input(self.shell_app.app.output.get_size().columns)

    # ------------------------------------------------------------ keys

    def send(self, keys: str) -> None:
        self.sent += len(keys)
        self.pipe.send_text(keys)

    async def send_in_chunks(self, keys: str) -> None:
        """As a terminal delivers a long paste: in pieces, the loop running between them."""
        for start in range(0, len(keys), SEND_CHUNK):
            self.send(keys[start : start + SEND_CHUNK])
            await asyncio.sleep(0)

    async def deliver(self, keys: str, limit_s: float = RECEIPT_LIMIT_S) -> None:
        """Send keys and wait until the app has read them: keys sent next are another batch. A
        key the input holds back (a lone Esc waits for more) counts as read after limit_s."""
        self.send(keys)
        try:
            await self.until(lambda: self.all_read() or not self.running, "the keys to be read", limit_s)
        except ShellTimeout:
            pass
        self.received = max(self.received, self.sent)

    async def type(self, text: str) -> None:
        """Type text at the end of the line and wait until the model has read it."""
        expected = self.buffer.text + text
        self.send(text)
        await self.until(lambda: self.buffer.text == expected and self.settled(), f"the line {expected!r}")

    async def command(self, line: str) -> str:
        """Run a :command on an empty line; -> the message it left."""
        if self.buffer.text:
            await self.clear()
        self.shell_app.message = ""
        self.send(line + "\r")
        await self.until(lambda: (self.shell_app.message != "" and self.settled()) or not self.running,
                         f"the result of {line!r}")
        return self.shell_app.message

    async def clear(self) -> None:
        """Ctrl-C: the line is dropped."""
        self.send("\x03")
        await self.until(lambda: self.buffer.text == "" and self.settled(), "an empty line")

    async def long_stream(self, produced: int) -> None:
        """Start a stream far longer than the test and wait until it has produced some text."""
        await self.command(":len 100000")
        self.send("\r")
        await self.until(lambda: len(self.shell_app.stream.pieces) > produced, "a stream")

    # ------------------------------------------------------------ waiting

    async def until(self, condition: Callable[[], bool], what: str = "the shell", timeout: float = TIMEOUT_S,
                    poll_s: float | None = POLL_S, at_frame: bool = False) -> None:
        """Wait until `condition` holds, looking after each frame, batch of keys or streamed
        token, and every poll_s (None: after each frame only, so the wait never wakes the loop
        between a key and its frame: a benchmark's timing).
        at_frame: it must hold right as a frame is drawn (what the screen shows then)."""
        if at_frame:
            held = [False]

            def check() -> None:
                held[0] = held[0] or condition()

            self.shell_app.hooks.add_callback("frame_drawn", check)
            try:
                return await self.until(lambda: held[0], what, timeout, poll_s)
            finally:
                self.shell_app.hooks.remove_callback("frame_drawn", check)
        await until(condition, what, timeout, poll_s, self._changed if poll_s else self._drawn, self._where)

    def _where(self) -> str:
        return (f" (message: {self.shell_app.message!r}, line: {self.buffer.text[-80:]!r}, "
                f"position: {self.session.snapshot.position})")

    def settled(self) -> bool:
        """Every key sent is read and handled, nothing streams, the frame is drawn (the app's
        settled signal, once the pipe's keys have reached it)."""
        return self.all_read() and self.shell_app.settled

    async def settle(self, timeout: float = TIMEOUT_S) -> None:
        """Wait until settled: keys sent after this are a new batch, not part of a paste."""
        await self.until(self.settled, "the shell to settle", timeout)

    def all_read(self) -> bool:
        """Every key sent has reached the app (a pipe's keys are not seen until read)."""
        return self.received >= self.sent

    async def ended(self) -> None:
        """Wait until the app has ended (a :quit, Ctrl-D, or exit() from elsewhere)."""
        await self.task


async def until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT_S, poll_s: float | None = POLL_S,
                wake: asyncio.Event | None = None, where: Callable[[], str] = lambda: "") -> None:
    """The one wait of tests, bench and replay: until `condition` holds, looked at whenever `wake`
    is set and every poll_s; past `timeout`, ShellTimeout names `what` and `where` things were."""
    wake = wake or asyncio.Event()
    deadline = time.monotonic() + timeout
    while not condition():
        left = deadline - time.monotonic()
        if left <= 0:
            raise ShellTimeout(f"timed out waiting for {what}{where()}")
        wake.clear()
        try:
            await asyncio.wait_for(wake.wait(), min(left, poll_s or left))
        except asyncio.TimeoutError:
            pass


def step_delay() -> float:
    """The test-only step delay from the environment: seconds, 0 to 1 (0 when unset)."""
    value = os.environ.get(STEP_DELAY_ENV) or "0"
    try:
        delay = float(value)
    except ValueError:
        delay = math.nan
    if not 0 <= delay <= 1:  # NaN included
        raise ConfigError(f"{STEP_DELAY_ENV}={value[:40]!r} is not a delay of 0 to 1 seconds; unset it "
                          "(it only slows the shell for tests)")
    return delay


def slow_steps(shell_app: ShellApp, delay_s: float) -> None:
    """Test-only: every model step of the shell's session takes `delay_s` longer (a slow CPU)."""
    session = shell_app.shell.session
    step = session.gate_step

    def slow_step(*args, **kwargs):
        time.sleep(delay_s)
        return step(*args, **kwargs)

    session.gate_step = slow_step


@asynccontextmanager
async def open_headless(build: Callable[[], ShellApp], output: Output) -> AsyncIterator[Headless]:
    """The app `build()` makes (within this pipe input and output), running; closed on leaving."""
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=output):
        shell_app = build()
        delay = step_delay()
        if delay:
            slow_steps(shell_app, delay)
        headless = Headless(shell_app, pipe, output)
        task = headless.task = asyncio.ensure_future(shell_app.run_async())
        try:
            await headless.until(lambda: headless.running or task.done(), "the shell to start")
            yield headless
        finally:
            if not task.done() and headless.running:
                shell_app.app.exit()
            await asyncio.wait_for(task, 60)


def shell_on(loaded, settings: Settings | None = None, prefix: str = "", **options) -> Shell:
    """A shell on a loaded checkpoint with `prefix` already read (its transcript), seeded."""
    from lstm_repl.model import checkpoint

    session = Session(loaded, settings or Settings(SampleConfig(seed=1)))
    shell = Shell(session, load_checkpoint=checkpoint.load, **options)
    if prefix:
        session.edit(0, prefix)
        shell.history = prefix
    return shell


def run_headless(shell: Shell, script: Callable[[Headless], Awaitable], output: Output | None = None,
                 color: bool = False, timing: ShellTiming = ShellTiming()):
    """Run the shell on `shell` (100 x 40 unless `output` says otherwise) and `script(headless)`
    against it; -> what the script returned. The app ends when the script does."""

    async def main():
        async with open_headless(lambda: ShellApp(shell, color=color, timing=timing),
                                 output or Screen()) as headless:
            return await script(headless)

    return asyncio.run(main())


def drive(loaded, script: Callable[[Headless], Awaitable], columns: int = 100, rows: int = 40,
          settings: Settings | None = None, timing: ShellTiming = ShellTiming(), color: bool = False,
          **options) -> Headless:
    """Run the shell on `loaded` and `script(headless)` against it; -> the driver, for
    assertions after the app ended (its screen keeps what was printed)."""

    async def script_then_driver(headless: Headless) -> Headless:
        await script(headless)
        return headless

    return run_headless(shell_on(loaded, settings, **options), script_then_driver, Screen(columns, rows), color,
                        timing)
