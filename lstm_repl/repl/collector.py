"""Keeping Python's cycle collector out of the way of keystrokes.

Measured in the shell (2 x 512 model, 120 x 36 panel): a full collection walked the million-odd
objects made while starting (torch, the model, the app) and took 130-200 ms, about once every 30
keys; after those were frozen, the few thousand live tensors still made each full collection
cost 7-10 ms, on top of a frame of about 14. So, while the shell runs: what start-up made is
frozen (never scanned), full collections do not start on their own, and the shell runs one
itself whenever it has been idle for a moment, and at the latest every LONGEST_WAIT_S when it
never is (a demo streaming for hours, a script typing): one slow key in that while, instead of
memory that grows. Young collections, which only look at new objects, go on as usual.
Everything is put back on exit.
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
NO_AUTOMATIC_FULL = 1_000_000  # gen-2 threshold: never reached in practice


class Collector:
    def __init__(self, loop: asyncio.AbstractEventLoop, busy: Callable[[], bool]):
        """busy() -> whether a key is being handled right now (a stream is not busy: its frames
        can take a collection)."""
        self.loop, self.busy = loop, busy
        self.last_key = self.last_collection = time.monotonic()
        self.collections = 0
        self._timer: asyncio.TimerHandle | None = None

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
        self.start()


@contextmanager
def paced_collection(loop: asyncio.AbstractEventLoop, busy: Callable[[], bool]) -> Iterator[Collector]:
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(thresholds[0], thresholds[1], NO_AUTOMATIC_FULL)
    collector = Collector(loop, busy)
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()
        gc.set_threshold(*thresholds)
        gc.unfreeze()
