"""The one way into a running shell from outside: callbacks on named events (minGPT's
add_callback). Replay, --follow, the recorder, the headless driver and bench plug in here;
nothing outside sets attributes on the app.

Events, with what a callback gets and what its answer means:
- keys_read(keys, streamed): a batch of keys as the terminal sent them; `streamed` is the
  running stream's token count (None when nothing streams).
- command(line): a :command is about to run.
- stream_started() -> a rate (tok/s) to show instead of the measured one, or None (a replay
  shows the recorded machine's rates).
- stream_at_token(count) -> True to hold the stream at `count` tokens for now (a replay waits
  there for the key recorded at that point).
- stream_ended(count, rate): however it ended, stopped included.
- status_extra() -> text for the status line after the model's name, or None.
- frame_drawn(): a frame is on the screen (the panel included).
"""

from __future__ import annotations

from typing import Any, Callable

EVENTS = ("keys_read", "command", "stream_started", "stream_at_token", "stream_ended", "status_extra",
          "frame_drawn")


class ShellHooks:
    def __init__(self):
        self._callbacks: dict[str, list[Callable[..., Any]]] = {event: [] for event in EVENTS}

    def add_callback(self, event: str, callback: Callable[..., Any]) -> None:
        self._known(event).append(callback)

    def remove_callback(self, event: str, callback: Callable[..., Any]) -> None:
        callbacks = self._known(event)
        if callback in callbacks:
            callbacks.remove(callback)

    def fire(self, event: str, *args) -> list:
        """Calls every callback of `event` in the order added; -> their answers."""
        return [callback(*args) for callback in list(self._known(event))]

    def _known(self, event: str) -> list[Callable[..., Any]]:
        try:
            return self._callbacks[event]
        except KeyError:
            raise ValueError(f"no shell event {event!r}; the events are {', '.join(EVENTS)}") from None
