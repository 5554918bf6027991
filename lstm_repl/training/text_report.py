"""A run's figures as plain text, for the terminal and for model cards alike: a duration, and
the loss curve drawn with characters. No rich, no torch."""

from __future__ import annotations

import math


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def loss_curve(history: list[dict], width: int = 60, height: int = 12) -> str:
    """Train (·) and validation (●) loss against step, drawn with characters."""
    points = [(r["step"], r["train_loss"], r.get("val_loss")) for r in history if r.get("train_loss") is not None]
    if len(points) < 2:
        return ""
    values = [v for _, t, val in points for v in (t, val) if v is not None and math.isfinite(v)]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    last_step = points[-1][0] or 1
    grid = [[" "] * width for _ in range(height)]

    def put(step: int, value: float, mark: str) -> None:
        col = min(width - 1, int(step / last_step * (width - 1)))
        row = min(height - 1, int((high - value) / span * (height - 1)))
        if mark == "●" or grid[row][col] == " ":
            grid[row][col] = mark

    for step, train, val in points:
        put(step, train, "·")
        if val is not None:
            put(step, val, "●")
    lines = [f"{high - span * r / (height - 1):7.3f} │{''.join(row)}" for r, row in enumerate(grid)]
    lines.append(" " * 8 + "└" + "─" * width)
    lines.append(" " * 9 + f"step 0{' ' * (width - 12 - len(str(last_step)))}step {last_step}")
    lines.append(" " * 9 + "· train loss   ● validation loss (nats)")
    return "\n".join(lines)
