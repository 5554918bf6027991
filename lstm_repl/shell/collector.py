"""Keeping Python's cycle collector out of the way of keystrokes.

Measured in the shell (2 x 512 model, 120 x 36 panel): a full collection walked the million-odd
objects made while starting (torch, the model, the app) and took 130-200 ms, about once every 30
keys; after those were frozen, the few thousand live tensors still made each full collection
cost 7-10 ms, on top of a frame of about 14. So, while the shell runs: what start-up made is
frozen (never scanned), full collections do not start on their own, and the shell runs one
itself whenever it has been idle for a moment, and at the latest every LONGEST_WAIT_S when it
never is (a demo streaming for hours, a script typing): one slow key in that while, instead of
memory that grows. Young collections, which only look at new objects, cost about 1 ms each and
came every other key, in the middle of a frame; they now run right after a frame is written
(after_frame), once as many new objects as Python's own threshold have piled up, so the key's
frame is on the screen first. Everything is put back on exit.
"""

from __future__ import annotations

import asyncio
import gc
import time
from contextlib import contextmanager
from typing import Callable, Iterator

IDLE_S = 0.5  # a full collection waits for this long without keys
LONGEST_WAIT_S = 10.0  # ... but not longer than this since the last one
CHECK_EVERY_S = 1.0  # how often the shell looks whether it is time for one
YOUNG_EVERY = gc.get_threshold()[0]  # new objects between young collections (Python's default: 700)
MIDDLE_EVERY = gc.get_threshold()[1]  # young collections between collections of the middle generation


class Collector:
    def __init__(self, loop: asyncio.AbstractEventLoop, busy: Callable[[], bool]):
        """busy() -> whether a key is being handled right now (a stream is not busy: its frames
        can take a collection)."""
        self.loop, self.busy = loop, busy
        self.last_key = self.last_collection = time.monotonic()
        self.collections = 0
        self._timer: asyncio.TimerHandle | None = None

    def after_frame(self) -> None:
        """A young collection if one is due: now, with the frame already written."""
        young, middle, _ = gc.get_count()
        if young >= YOUNG_EVERY:
            gc.collect(1 if middle >= MIDDLE_EVERY else 0)

    def key_seen(self) -> None:
        self.last_key = time.monotonic()

    def start(self) -> None:
        self._timer = self.loop.call_later(CHECK_EVERY_S, self._check)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _check(self) -> None:
        now = time.monotonic()
        idle_after_keys = now - self.last_key >= IDLE_S and self.last_key > self.last_collection  # once per pause
        due = idle_after_keys or now - self.last_collection >= LONGEST_WAIT_S
        if due and not self.busy():
            gc.collect()
            self.collections += 1
            self.last_collection = time.monotonic()
        else:
            self.after_frame()  # a while without frames (a long command): the young ones still go
        self.start()


@contextmanager
def paced_collection(loop: asyncio.AbstractEventLoop, busy: Callable[[], bool]) -> Iterator[Collector]:
    was_enabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()  # no automatic collections: young ones after frames, full ones when idle
    collector = Collector(loop, busy)
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()
        if was_enabled:
            gc.enable()
        gc.unfreeze()
