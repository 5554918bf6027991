"""--follow: the shell on a training run picks up each new best/ as training writes it.

Once a second it looks at best/config.json's modification time (one stat); when it changed, the
checkpoint is loaded off the event loop (typing goes on meanwhile), and, if it is newer than the
one shown, the session swaps models between keys and reads the text typed so far again. The
status line shows the model's step and validation figure.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable

from lstm_repl.model import checkpoint
from lstm_repl.errors import LstmReplError
from lstm_repl.shell.app import ShellApp

POLL_S = 1.0


def metrics_line(info: dict) -> str:
    """'step 1200 · val 1.95 bpc' from a checkpoint's config.json."""
    metrics = info.get("metrics") or {}
    step = metrics.get("step")
    for name in ("bpc", "ppl"):
        value = metrics.get(f"best_val_{name}")
        if isinstance(value, (int, float)):
            return f"step {step:,} · val {value:.2f} {name}"
    return f"step {step:,}" if isinstance(step, int) else "no step recorded"


def step_of(info: dict) -> int:
    step = (info.get("metrics") or {}).get("step")
    return step if isinstance(step, int) else -1


class Follower:
    def __init__(self, app: ShellApp, poll_s: float = POLL_S, load: Callable = checkpoint.load):
        self.app, self.poll_s, self.load = app, poll_s, load
        self.folder: Path = app.shell.session.loaded.path  # the run's best/ (or the folder named)
        self.seen = self._stamp()
        self.reloads = 0
        self._pending = None  # a newer checkpoint, loaded while a stream ran

    def attach(self) -> Follower:
        self.app.hooks.add_callback("status_extra", self.status)
        self.app.app.pre_run_callables.append(lambda: self.app.app.create_background_task(self.follow()))
        return self

    def status(self) -> str:
        return metrics_line(self.app.shell.session.loaded.info)

    def _stamp(self) -> int | None:
        try:
            return (self.folder / checkpoint.CONFIG_FILE).stat().st_mtime_ns
        except OSError:  # between the renames of a save: the next look finds it
            return None

    async def follow(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            stamp = self._stamp()
            if stamp is not None and stamp != self.seen:
                try:
                    self._pending = await asyncio.to_thread(self.load, self.folder)
                    self.seen = stamp
                except LstmReplError:
                    continue  # caught mid-save: the next look loads it whole
            if self._pending is not None and self.app.streaming is None:
                self._swap(self._pending)
                self._pending = None

    def _swap(self, loaded) -> None:
        if step_of(loaded.info) <= step_of(self.app.shell.session.loaded.info):
            return  # an older copy (read while a save swapped folders)
        replace_model(self.app, loaded, f"reloaded {loaded.name} at {metrics_line(loaded.info)}")
        self.reloads += 1


def replace_model(app: ShellApp, loaded, message: str) -> None:
    """Another checkpoint of the same model: the text so far is read again with it; the panel's
    layer, pinned units and the interventions stay."""
    session, edits = app.shell.session, app.shell.session.interventions
    session.load(loaded)
    if edits:
        session.intervene(edits)
    app.reader.read_again()
    app.frame.forget_panel()
    app.message = message
    app.typing.sync()
