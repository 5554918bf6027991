"""The recurrent states and gates a session keeps, so that its memory does not grow with the text.

A state (2 x 512 LSTM: h and c, 8 KiB) and a token's gates (24 KiB) cost far more than the
token itself. So states are kept only at every CHECKPOINT_EVERY-th position and for the most
recent RECENT positions, gates only for the most recent RECENT tokens; anything else is
recomputed from the nearest kept state (at most CHECKPOINT_EVERY tokens, one fused call).
Typing, backspace and short edits stay inside the recent window and cost nothing extra.
"""

from __future__ import annotations

from typing import Generic, TypeVar

CHECKPOINT_EVERY = 256  # a state every this many tokens, however long the text
RECENT = 512  # and for the last this many positions (backspace and short edits are free)

State = TypeVar("State")
Gates = TypeVar("Gates")


class StateStore(Generic[State, Gates]):
    """position -> state after that many tokens; position -> gates of the token ending there."""

    def __init__(self, checkpoint_every: int = CHECKPOINT_EVERY, recent: int = RECENT):
        self.checkpoint_every, self.recent = checkpoint_every, recent
        self._states: dict[int, State] = {}
        self._gates: dict[int, Gates] = {}
        self._latest = 0

    def __len__(self) -> int:
        return len(self._states)

    def gates_kept(self) -> int:
        return len(self._gates)

    def bound(self, length: int) -> int:
        """The most states kept for a text of `length` tokens (what a test holds the store to)."""
        return 1 + length // self.checkpoint_every + self.recent + 1

    def put(self, position: int, state: State, gates: Gates | None = None) -> None:
        self._states[position] = state
        if gates is not None:
            self._gates[position] = gates
        self._latest = max(self._latest, position)
        self._forget(position - self.recent - 1)
        if len(self._states) > self.bound(self._latest) or len(self._gates) > self.recent + 1:
            self._sweep()

    def state(self, position: int) -> State | None:
        return self._states.get(position)

    def gates(self, position: int) -> Gates | None:
        return self._gates.get(position)

    def nearest(self, position: int) -> tuple[int, State]:
        """The kept state at the largest position not past `position` (position 0 is always kept)."""
        best = max(p for p in self._states if p <= position) if position not in self._states else position
        return best, self._states[best]

    def truncate(self, length: int) -> None:
        """Forget everything after `length` tokens (an edit there)."""
        for store in (self._states, self._gates):
            for position in [p for p in store if p > length]:
                del store[position]
        self._latest = min(self._latest, length)

    def clear(self) -> None:
        self._states.clear()
        self._gates.clear()
        self._latest = 0

    def _kept(self, position: int) -> bool:
        return position == 0 or position % self.checkpoint_every == 0 or position > self._latest - self.recent

    def _forget(self, position: int) -> None:
        if position > 0 and not self._kept(position):
            self._states.pop(position, None)
        if position > 0:
            self._gates.pop(position, None)

    def _sweep(self) -> None:
        """Drop what the one-by-one forgetting missed (states left behind by a jump, e.g. a paste)."""
        for position in [p for p in self._states if not self._kept(p)]:
            del self._states[position]
        for position in [p for p in self._gates if p <= self._latest - self.recent]:
            del self._gates[position]
