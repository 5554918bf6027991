"""The times the shell waits for, in one place, so a test or a benchmark can set them."""

from __future__ import annotations

from dataclasses import dataclass

FRAME_S = 1 / 30  # redraws are capped at about 30 a second
PASTE_GAP_S = 0.03  # an Enter that ends a batch of keys is typed if nothing follows within this
GHOST_DELAY_S = 0.002  # the ghost text is worked out this long after the frame that shows a key


@dataclass(frozen=True)
class ShellTiming:
    frame_s: float | None = FRAME_S  # None: every frame is drawn (a benchmark measures each one)
    paste_gap_s: float = PASTE_GAP_S
    ghost_delay_s: float = GHOST_DELAY_S
