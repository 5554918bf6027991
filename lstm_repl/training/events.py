"""What a training run tells whoever watches it (the progress display, compare, bench quality)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Event:
    """What the loop tells its observer. kind: start | log | eval | warning | end."""

    kind: str
    step: int
    record: dict = field(default_factory=dict)
    sample: str = ""


Report = Callable[[Event], None]
