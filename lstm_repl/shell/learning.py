"""The shell learns from what it reads (:learn on|off|reset, repl --learn, :export DIR): dynamic
evaluation (training/session_learning.py) run on a thread beside the shell, between keys.

The learner works on its own copy of the model; only the finished step touches the session, on
the shell's loop: the session's model takes the new weights, the scores of the segments learned,
and reads the tokens after the last boundary again. What the weights become depends on the text
alone, so the settled screens do too (`pending` keeps the shell unsettled while learning is due).
Before a stream, :learn off and :export, the learning the text asks for is finished first, so a
stream samples from the same weights whatever the machine's speed.
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from lstm_repl.config import DynamicConfig
from lstm_repl.errors import LstmReplError
from lstm_repl.training.session_learning import Learned, SessionLearner


class ShellLearning:
    def __init__(self, owner, config: DynamicConfig = DynamicConfig()):
        """owner: the ShellApp (its shell, app, hooks, stream, typing)."""
        self.owner, self.config = owner, config
        self.learner: SessionLearner | None = None
        self.trained: list[torch.Tensor] | None = None  # the loaded checkpoint's weights, once learning began
        self._model = None  # the model those belong to: a :load brings another
        self.moved = 0.0  # relative L2 distance of the session's weights from the trained ones
        self.spans: list[dict] = []  # what earlier learning (before a :learn off) adapted on
        self._running: Future | None = None
        self._pool: ThreadPoolExecutor | None = None
        hooks = owner.hooks
        hooks.add_callback("frame_drawn", self.look)
        hooks.add_callback("status_extra", self.status)
        hooks.add_callback("stream_started", self._before_stream)
        hooks.add_callback("stream_ended", lambda *_: self.look())

    @property
    def session(self):
        return self.owner.shell.session

    @property
    def on(self) -> bool:
        return self.learner is not None

    @property
    def pending(self) -> bool:
        """Learning is running, or due for the text read (the shell is not settled)."""
        if self.learner is None or not self._same_model():
            return False
        return self._running is not None or self.learner.outlived(self.session) or \
            self.learner.work(self.session) is not None

    # ------------------------------------------------------------ commands

    def command(self, arg: str) -> str:
        """:learn on|off|reset, or alone: where learning stands."""
        if arg == "on":
            return self.start()
        if arg == "off":
            return self.stop()
        if arg == "reset":
            return self.reset()
        if arg:
            raise LstmReplError(f":learn takes on, off or reset, not {arg[:40]!r}")
        return self.describe()

    def start(self) -> str:
        if self.learner is not None and self._same_model():
            return f"already learning · {self.describe()}"
        self._forget_other_model()
        self.trained = self.trained or [p.detach().clone() for p in self.session.model.parameters()]
        self._model = self.session.model
        self.learner = SessionLearner(self.session, self.config, self.trained)
        self.owner.app.invalidate()
        return f"learning from what is read from here on ({self.config.describe()})"

    def stop(self) -> str:
        if self.learner is None:
            return "not learning"
        self.finish()
        self._end_span()
        self.learner = None
        self.owner.app.invalidate()
        return f"learning off · the weights stay {self.moved:.2%} from the trained ones (:learn reset restores them)"

    def reset(self) -> str:
        """Back to the trained weights, bit for bit; learning, if on, starts again from here."""
        self._drop_running()
        self._forget_other_model()
        if self.trained is not None:
            with torch.inference_mode():
                for param, weight in zip(self.session.model.parameters(), self.trained):
                    param.copy_(weight)
            n = len(self.session.read)
            self.session.relearned(max(n - 1, 0), self.session.state(max(n - 1, 0)), 0, [])
        self.moved, self.spans = 0.0, []
        if self.learner is not None:
            self.learner = SessionLearner(self.session, self.config, self.trained)
        self.owner.app.invalidate()
        return "back to the trained weights" + (" · learning from here on" if self.learner else "")

    def describe(self) -> str:
        if self.learner is not None:
            return f"learning ({self.config.describe()}) · weights moved {self.moved:.2%}"
        return f"not learning · weights moved {self.moved:.2%}" if self.moved else "not learning (:learn on)"

    def status(self) -> str | None:
        if self.learner is not None and self._same_model():
            return f"learning{'…' if self._running is not None else ''} Δ{self.moved:.2%}"
        return f"adapted Δ{self.moved:.2%}" if self.moved else None

    # ------------------------------------------------------------ learning, between keys

    def look(self) -> None:
        """After each frame: start the learning the text asks for, unless some runs or a stream does."""
        if self.learner is None or self._running is not None or self.owner.stream.task is not None:
            return
        if not self._same_model():
            self._forget_other_model()
            return
        work = self._next_work()
        if work is None:
            return
        self._pool = self._pool or ThreadPoolExecutor(max_workers=1, thread_name_prefix="lstm-repl-learning",
                                                      initializer=_yield_to_keys)
        future = self._running = self._pool.submit(self.learner.run, work)
        loop = self.owner.app.loop
        future.add_done_callback(lambda done: loop.call_soon_threadsafe(self._finished, done))

    def _next_work(self):
        learner = self.learner
        if learner.outlived(self.session):  # text from before learning began was edited away
            self._take(learner.start_weights)
            self.learner = SessionLearner(self.session, self.config, self.trained)
            learner = self.learner
        return learner.work(self.session)

    def _finished(self, future: Future) -> None:
        if future is not self._running:
            return  # dropped by :learn reset or a :load
        self._running = None
        try:
            learned = future.result()
        except Exception as exc:  # a failed step stops learning, in one line, never a traceback
            self.learner = None
            self.owner.frame.message = f"⚠ learning stopped: {str(exc).splitlines()[0] if str(exc) else exc!r}"
            return
        self._apply(learned)
        self.look()

    def _apply(self, learned: Learned) -> None:
        if self.learner.apply(learned, self.session):
            self.moved = learned.moved
            self.owner.typing.refresh_ghost()
            self.owner.app.invalidate()

    def finish(self) -> None:
        """Do now, on this thread, all the learning the text read asks for."""
        if self.learner is None or not self._same_model():
            return
        if self._running is not None:
            running, self._running = self._running, None
            self._apply(running.result())
        while (work := self._next_work()) is not None:
            self._apply(self.learner.run(work))

    def _before_stream(self) -> None:
        self.finish()  # the stream samples from the weights the text gives, whatever the timing

    def _drop_running(self) -> None:
        if self._running is not None:
            running, self._running = self._running, None
            running.result()  # the learner's copy is not the session's: its result is simply not applied

    # ------------------------------------------------------------ models

    def _same_model(self) -> bool:
        return self._model is self.session.model

    def _forget_other_model(self) -> None:
        """A :load brought another model: what was learned, and its trained weights, are of the old one."""
        if self._model is not None and not self._same_model():
            self._drop_running()
            self.learner, self.trained, self._model, self.moved, self.spans = None, None, None, 0.0, []

    def _take(self, weights: list[torch.Tensor]) -> None:
        with torch.inference_mode():
            for param, weight in zip(self.session.model.parameters(), weights):
                param.copy_(weight)

    def _end_span(self) -> None:
        span = self.learner.span(self.session) if self.learner is not None else None
        if span:
            self.spans.append(span)

    def adapted_on(self) -> list[dict]:
        """Each stretch of text the weights learned from, oldest first (for :export's card)."""
        current = self.learner.span(self.session) if self.learner is not None else None
        return self.spans + ([current] if current else [])

    def export(self, dest: str) -> str:
        from lstm_repl.training.adapted_export import export_adapted

        self.finish()
        path = export_adapted(self.owner.shell.session.loaded, Path(dest).expanduser(), self.adapted_on(),
                              self.config, self.moved)
        return f"exported the adapted weights to {path}"

    def close(self) -> None:
        if self._pool is not None:
            self._drop_running()
            self._pool.shutdown(wait=True)
            self._pool = None


LEARNING_NICENESS = 10  # measured: key to frame p99 16.2 -> 12.5 ms with 100 characters typed (bench repl)


def _yield_to_keys() -> None:
    """Learning's thread runs at a lower priority, so a key's step wins the cores it shares with a
    learning step (its compute threads, started from it, inherit this). Linux alone sets a
    priority per thread; elsewhere nothing changes."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LEARNING_NICENESS)
        except OSError:
            pass
