"""Playing a recording back in the real shell. Its keys go in through a pipe, batch by batch as
the terminal sent them, at their recorded times divided by the speed, and each batch waits for
what it waited for when it was recorded: a typed Enter for the shell to decide it was typed, a
key for the screen it was pressed at, a Ctrl-C for the stream to have written as many tokens as
it had. Sampling is seeded, so the replay streams the same text and draws the same screens.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from contextlib import nullcontext
from typing import Callable, ContextManager

from prompt_toolkit.output import Output

from lstm_repl.config import SampleConfig
from lstm_repl.errors import ConfigError
from lstm_repl.model.checkpoint import Checkpoint
from lstm_repl.model.interventions import Interventions
from lstm_repl.session.intervention_parser import forceable_gates, parse
from lstm_repl.session.session import Session, Settings
from lstm_repl.shell.app import ShellApp
from lstm_repl.shell.shell_state import Shell
from lstm_repl.shell.headless import Headless, ShellTimeout, open_headless
from lstm_repl.shell.recording import SETTINGS_FIELDS, Event, Recording, RecordingError
from lstm_repl.shell.timing import PASTE_GAP_S

WAIT_LIMIT_S = 300.0  # the longest a key waits for the shell (a :find on a big model takes seconds)


def build_shell(recording: Recording, loaded: Checkpoint) -> ShellApp:
    """The shell as it stood when recording began: settings and seed, transcript, panel, interventions."""
    from lstm_repl.model import checkpoint

    header, start = recording.header, recording.header.start
    sampling = SampleConfig(**{name: header.settings[name] for name in SETTINGS_FIELDS if name in header.settings})
    settings = Settings(sampling)
    session = Session(loaded, settings)
    shell = Shell(session, load_checkpoint=checkpoint.load, writes_files=False)
    if start.transcript:
        session.edit(0, start.transcript)
        shell.history = start.transcript
    shell.panel.layer = min(max(start.layer, 0), loaded.model.config.layers - 1)
    hidden = loaded.model.config.hidden
    shell.panel.units = [u for u in start.units or [] if 0 <= u < hidden] or None
    edits = recorded_interventions(recording, session)
    if edits:
        session.intervene(edits)
    app = ShellApp(shell, color=True, history=False)  # the replay's lines are not the user's: their history stays
    if start.learning:
        app.learning.start()
    app.message = start.message or app.message
    if start.transcript:
        app.print_above(start.transcript)
    return app


def recorded_interventions(recording: Recording, session: Session) -> Interventions:
    """The interventions set when recording began, each through the intervention parser against
    this model: a recording's start restores them and runs no command."""
    config, gates, items = session.model.config, forceable_gates(session.model), Interventions()
    for line in recording.header.start.interventions:
        kind, _, spec = line.removeprefix(":").partition(" ")
        try:
            items = items.with_(parse(kind, spec, config.layers, config.hidden, gates))
        except ConfigError as exc:
            raise RecordingError(f"{recording.path}: the intervention set when recording began does not fit "
                                 f"this model ({exc})") from None
    return items


class ReplayClock:
    """The replay's time, in the recording's seconds over the speed, whatever this machine's speed:
    a key's recorded time from when it is sent; while a stream runs, the time it began plus its
    tokens at the recorded rate. Never past the next key's time (after the last key, the
    recording's end), never backwards."""

    def __init__(self, speed: float):
        self.app: ShellApp | None = None  # set once the shell is built (it draws to an output that reads this)
        self.speed = speed
        self.key_t, self.next_key_t, self.last = 0.0, math.inf, 0.0
        self._stream: object | None = None
        self._stream_t = 0.0

    def key_sent(self, t: float, next_t: float) -> None:
        self.key_t, self.next_key_t = max(t, self.last), next_t

    def __call__(self) -> float:
        app, t = self.app, self.key_t
        stream = app.stream if app is not None else None
        if stream is not None and stream.task is not None and stream.rate > 0:
            if self._stream is not stream.task:
                self._stream, self._stream_t = stream.task, max(self.last, self.key_t)
            t = max(t, self._stream_t + len(stream.pieces) / stream.rate)
        self.last = max(self.last, min(t, self.next_key_t))
        return self.last / self.speed


class Replayer:
    """Sends a recording's keys into a running shell through its headless driver."""

    def __init__(self, recording: Recording, headless: Headless, speed: float, paced: bool, clock: ReplayClock,
                 before_send: Callable[[Event], None] | None = None):
        self.keys = recording.keys
        self.end = math.inf if recording.end is None else recording.end  # no frame is drawn after it
        self.headless, self.app = headless, headless.shell_app
        self.speed, self.paced, self.before_send, self.clock = speed, paced, before_send, clock
        self.hold_at: int | None = None  # the stream waits at this many tokens
        self.rates = deque(e.rate or 0.0 for e in recording.streams)
        self.app.hooks.add_callback("stream_started", lambda: self.rates.popleft() if self.rates else None)
        self.app.hooks.add_callback("stream_at_token", lambda count: self.hold_at is not None and count >= self.hold_at)

    async def play(self) -> None:
        began, previous_t = time.monotonic(), 0.0
        for index, event in enumerate(self.keys):
            self.hold_at = event.streamed  # at once: a stream running now must not pass it
            if self.paced:
                await asyncio.sleep(max(0.0, began + event.t / self.speed - time.monotonic()))
            await self._ready_for(event, event.t - previous_t)
            if not self.running:
                return
            following = self.keys[index + 1].t if index + 1 < len(self.keys) else self.end
            self.clock.key_sent(event.t, following)
            if self.before_send is not None:
                self.before_send(event)
            await self.headless.deliver(event.keys)
            previous_t = event.t
        self.hold_at = None
        await self._until(self.idle, "the end of the replay")
        if self.running:
            self.app.app.exit()

    async def _ready_for(self, event: Event, gap: float) -> None:
        if event.streamed is not None:
            await self._until(lambda: self._stream_reached(event.streamed) or self.idle(), "the stream")
        elif gap >= PASTE_GAP_S:  # keys that came on their own, not right behind others
            await self._until(self.idle, "the shell to settle")

    def _stream_reached(self, count: int) -> bool:
        return self.app.stream.task is not None and len(self.app.stream.pieces) >= count

    def idle(self) -> bool:
        """Nothing streams, every key is read and handled, the frame for it drawn."""
        return not self.running or (self.headless.all_read() and self.app.settled)

    async def _until(self, condition: Callable[[], bool], what: str) -> None:
        try:
            await self.headless.until(condition, what, WAIT_LIMIT_S)
        except ShellTimeout:
            raise RecordingError(f"the replay waited {WAIT_LIMIT_S:.0f} s for {what}; "
                                 "the shell no longer does what the recording did") from None

    @property
    def running(self) -> bool:
        return self.app.app.is_running


def replay(recording: Recording, loaded: Checkpoint, output: Callable[[ReplayClock], Output],
           speed: float = 1.0, paced: bool = True, before_send: Callable[[Event], None] | None = None,
           stop: Callable[[Callable[[], None]], ContextManager] | None = None) -> ShellApp:
    """Play `recording` in a shell on `loaded` drawing to output(clock); returns the shell app,
    ended. `stop(callback)`, when given, is a context manager that calls back to end the replay
    early (a key pressed in the terminal)."""

    async def main() -> ShellApp:
        clock = ReplayClock(speed)
        async with open_headless(lambda: build_shell(recording, loaded), output(clock)) as headless:
            app = clock.app = headless.shell_app
            player = asyncio.ensure_future(Replayer(recording, headless, speed, paced, clock, before_send).play())
            player.add_done_callback(lambda _: app.app.exit() if app.app.is_running else None)
            with stop(lambda: app.app.exit() if app.app.is_running else None) if stop else nullcontext():
                await headless.ended()
            player.cancel()
            await asyncio.gather(player, return_exceptions=True)
            if not player.cancelled() and player.exception() is not None:
                raise player.exception()
            return app

    return asyncio.run(main())


def recorded_model(recording: Recording, override: str | None) -> Checkpoint:
    """The model to replay on: --model when given; else the recorded one, refused if its weights
    are not the recorded weights (the replay would stream other text and draw other screens)."""
    from lstm_repl.model import checkpoint
    from lstm_repl.errors import CheckpointError
    from lstm_repl.shell.recording import weights_sha256

    if override:
        return checkpoint.load(override)
    model = recording.header.model
    loaded = None
    for spec in (model.path, model.name):
        try:
            loaded = checkpoint.load(spec)
            break
        except CheckpointError:
            continue
    if loaded is None:
        raise RecordingError(f"{recording.path}: recorded on model {model.name} ({model.path}), which is not here; "
                             "name one to replay it on with --model")
    found = weights_sha256(loaded.path, loaded.info)
    if found != model.sha256:
        raise RecordingError(f"{recording.path}: recorded on {model.name} with weights sha256 {model.short}, but "
                             f"{loaded.path} holds other weights ({found[:12]}); pass --model {model.name} "
                             "to replay on them anyway")
    return loaded


def vt100_output(stream, columns: int, rows: int) -> Output:
    """A VT100 terminal of this size writing into `stream` (a cast file, a terminal emulator)."""
    from prompt_toolkit.data_structures import Size
    from prompt_toolkit.output.color_depth import ColorDepth
    from prompt_toolkit.output.vt100 import Vt100_Output

    size = Size(rows=rows, columns=columns)
    return Vt100_Output(stream, lambda: size, term="xterm-256color", default_color_depth=ColorDepth.TRUE_COLOR)


class _Discard:
    encoding = "utf-8"

    def write(self, data: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def discarding_output(columns: int, rows: int) -> Output:
    return vt100_output(_Discard(), columns, rows)


def terminal_output() -> Output:
    """This process's terminal; it is asked no cursor positions (its answers would come on a
    standard input nobody reads while the keys come from the recording)."""
    import os

    from prompt_toolkit.output import create_output

    os.environ["PROMPT_TOOLKIT_NO_CPR"] = "1"
    return create_output()


class any_key:
    """While open, a key pressed in the terminal calls `callback` (and is not echoed)."""

    def __init__(self, callback: Callable[[], None]):
        from prompt_toolkit.input import create_input

        self.callback, self.input = callback, create_input()
        self._contexts: list = []

    def __enter__(self):
        def pressed() -> None:
            if self.input.read_keys():
                self.callback()

        self._contexts = [self.input.raw_mode(), self.input.attach(pressed)]
        for context in self._contexts:
            context.__enter__()
        return self

    def __exit__(self, *exc):
        for context in reversed(self._contexts):
            context.__exit__(*exc)
        return False
