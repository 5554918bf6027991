"""A stream: the model writes on from the text typed, drawn live, until its length or Ctrl-C;
then the line and what was written become transcript above the prompt."""

from __future__ import annotations

import asyncio
import time

from lstm_repl.shell.frame import STREAM_TAIL
from lstm_repl.shell.timing import FRAME_S


class Stream:
    def __init__(self, owner):
        """owner: the ShellApp (its shell, app, hooks, frame, reader, buffer, typing)."""
        self.owner = owner
        self.task: asyncio.Task | None = None  # while a stream runs
        self.pieces: list[str] = []  # what the running stream wrote so far
        self.rate = 0.0

    def start(self) -> None:
        self.task = self.owner.app.create_background_task(self._run())
        self.task.add_done_callback(self._done)

    def stop(self) -> bool:
        if self.task is None:
            return False
        self.task.cancel()
        return True

    @property
    def text(self) -> str:
        """All the running stream wrote (O(length): for tests; the screen shows tail())."""
        return "".join(self.pieces)

    def tail(self) -> str:
        """The last STREAM_TAIL characters of the running stream (cost independent of its length)."""
        tail, size = [], 0
        for piece in reversed(self.pieces):
            if size >= STREAM_TAIL:
                break
            tail.append(piece)
            size += len(piece)
        return "".join(reversed(tail))[-STREAM_TAIL:]

    async def _run(self) -> None:
        owner, app, frame = self.owner, self.owner.app, self.owner.frame
        half_frame = FRAME_S / 2  # also when every frame is drawn (a benchmark): the stream's own pace
        start, count = time.perf_counter(), 0
        next_pause = start + half_frame
        recorded_rate = next((rate for rate in owner.hooks.fire("stream_started") if rate), None)
        if recorded_rate:
            self.rate = recorded_rate
        frame.message = "streaming · Ctrl-C stops"
        try:
            app.invalidate()
            await asyncio.sleep(0)
            await self._hold(0)
            for piece in owner.shell.session.stream():
                self.pieces.append(piece)
                count += 1
                await self._hold(count)
                now = time.perf_counter()
                if now >= next_pause:  # hand the loop a moment twice a frame: keys and redraws get in
                    self.rate = recorded_rate or count / max(now - start, 1e-9)
                    app.invalidate()
                    await asyncio.sleep(0)
                    next_pause = time.perf_counter() + half_frame
            rate = recorded_rate or count / max(time.perf_counter() - start, 1e-9)
            frame.message = f"streamed {count} tokens at {rate:,.0f} tok/s"
            owner.hooks.fire("stream_ended", count, rate)
        except asyncio.CancelledError:
            frame.message = f"stopped after {count} tokens"
            owner.hooks.fire("stream_ended", count, count / max(time.perf_counter() - start, 1e-9))

    async def _hold(self, count: int) -> None:
        """A replay holds the stream where the recorded one was when keys came (a Ctrl-C stops it there)."""
        while any(self.owner.hooks.fire("stream_at_token", count)):
            self.owner.app.invalidate()
            await asyncio.sleep(0.005)

    def _done(self, task: asyncio.Task) -> None:
        """However the stream ended (even cancelled before it began), the shell takes the text back."""
        if task.cancelled():
            self.owner.frame.message = f"stopped after {len(self.pieces)} tokens"
        if self.task is task:
            self._finish()

    def _finish(self) -> None:
        owner = self.owner
        typed, produced = owner.buffer.text, "".join(self.pieces)
        owner.reader.finished_stream(produced)
        owner.shell.streams.append(len(owner.shell.history) - len(produced))  # :undo and :regen take it back
        self.pieces = []
        self.task = None
        owner.print_above(typed, produced)
        owner.typing.sync()
