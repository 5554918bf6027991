"""Recording a running shell: every batch of keys as the terminal sent it, the commands run and
how each stream ended, with their times, into a recording file (lstm_repl/shell/recording.py)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Callable

from prompt_toolkit.key_binding import KeyPress
from prompt_toolkit.keys import Keys

from lstm_repl.shell.shell_state import Shell, model_id
from lstm_repl.shell.hooks import ShellHooks
from lstm_repl.shell.recording import (SETTINGS_FIELDS, Event, Header, RecordingError, RecordingWriter,
                                       Start)


def raw_keys(keys: list[KeyPress]) -> str:
    """The characters the terminal sent for these keys (a bracketed paste with its markers)."""
    return "".join(f"\x1b[200~{k.data}\x1b[201~" if k.key == Keys.BracketedPaste else k.data for k in keys)


class KeyTap:
    """The application's input, unchanged, telling `on_keys` of every batch of keys it reads."""

    def __init__(self, inner, on_keys: Callable[[str], None]):
        self._inner, self._on_keys = inner, on_keys

    def read_keys(self) -> list[KeyPress]:
        return self._tell(self._inner.read_keys())

    def flush_keys(self) -> list[KeyPress]:
        return self._tell(self._inner.flush_keys())

    def _tell(self, keys: list[KeyPress]) -> list[KeyPress]:
        if keys:
            self._on_keys(raw_keys(keys))
        return keys

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def start_state(shell: Shell, message: str) -> Start:
    edits = shell.session.interventions
    return Start(transcript=shell.history, layer=shell.panel.layer, units=list(shell.panel.units or []) or None,
                 interventions=[f":{item}" for item in edits.items], message=message,
                 learning=bool(getattr(shell.learning, "on", False)))


class SessionRecorder:
    """Writes the events of one recording; times are seconds since it began."""

    def __init__(self, path: Path, shell: Shell, columns: int, rows: int, seed: int, message: str,
                 clock: Callable[[], float] = time.monotonic):
        """Sampling restarts from `seed` here, so the replay, which starts from it, streams the same."""
        shell.session.reseed(seed)
        settings = {name: getattr(shell.session.settings.sampling, name) for name in SETTINGS_FIELDS}
        start = start_state(shell, message)
        header = Header(model=model_id(shell), settings=settings, columns=columns, rows=rows, start=start)
        self.writer = RecordingWriter(path, header)
        self.clock, self.started = clock, clock()

    @property
    def path(self) -> Path:
        return self.writer.path

    def now(self) -> float:
        return round(self.clock() - self.started, 4)

    def keys(self, keys: str, streamed: int | None) -> None:
        self.writer.event(Event(self.now(), keys=keys, streamed=streamed))

    def command(self, line: str) -> None:
        self.writer.event(Event(self.now(), command=line))

    def stream_ended(self, tokens: int, rate: float) -> None:
        self.writer.event(Event(self.now(), stream=tokens, rate=rate))

    def end(self) -> None:
        self.writer.end(self.now())


class ShellRecording:
    """:record in a running shell: starts and stops a SessionRecorder, which the shell's hooks feed.
    A full disk ends the recording with a message; the session goes on."""

    def __init__(self, hooks: ShellHooks, shell: Shell, terminal_size: Callable[[], tuple[int, int]],
                 tell: Callable[[str], None]):
        """terminal_size() -> (columns, rows); tell(message) shows a message on the status line."""
        self.hooks, self.shell, self.terminal_size, self.tell = hooks, shell, terminal_size, tell
        self.recorder: SessionRecorder | None = None
        self._callbacks = {"keys_read": self._keys, "command": self._command, "stream_ended": self._stream_ended}

    def record(self, path: str) -> str:
        """:record FILE starts recording (a running one ends first); :record alone ends it."""
        previous = self.stop()
        if not path:
            return f"recording saved to {previous}" if previous else "not recording (:record FILE starts)"
        (columns, rows), target = self.terminal_size(), Path(path).expanduser()
        seed = self.shell.session.settings.sampling.seed
        seed = secrets.randbelow(2**31) if seed is None else seed  # sampling is seeded, or no replay streams the same
        message = f"recording to {target} (seed {seed}) · :record alone stops"
        self.recorder = SessionRecorder(target, self.shell, columns, rows, seed, message)
        for event, callback in self._callbacks.items():
            self.hooks.add_callback(event, callback)
        return message

    def stop(self) -> Path | None:
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return None
        for event, callback in self._callbacks.items():
            self.hooks.remove_callback(event, callback)
        recorder.end()
        return recorder.path

    def _keys(self, keys: str, streamed: int | None) -> None:
        self._safely(lambda recorder: recorder.keys(keys, streamed))

    def _command(self, line: str) -> None:
        self._safely(lambda recorder: recorder.command(line))

    def _stream_ended(self, count: int, rate: float) -> None:
        self._safely(lambda recorder: recorder.stream_ended(count, rate))

    def _safely(self, write: Callable[[SessionRecorder], None]) -> None:
        if self.recorder is None:
            return
        try:
            write(self.recorder)
        except RecordingError as exc:  # a full disk: the session goes on without recording
            self.recorder = None
            for event, callback in self._callbacks.items():
                self.hooks.remove_callback(event, callback)
            self.tell(f"⚠ {exc}")
