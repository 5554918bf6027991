"""Where a training run stands: its position, the budget it has used, and the learning rate there.

The budget is whichever bound comes first (--max-steps, --time, --epochs). The learning-rate
schedule is shaped by the fraction of it used, so a 10-minute run and a 1,000-step run both warm
up over their first part and decay to their last step. A resume that changes the bounds anchors
the schedule where it stood, so the learning rate goes on from there instead of jumping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lstm_repl.config import TrainConfig

WSD_DECAY = 0.2  # "wsd": the share of the run over which the learning rate comes down


@dataclass
class Position:
    """Everything about where training is (besides weights and optimizer) that resuming restores."""

    step: int = 0
    epoch: int = 0
    chunk: int = 0  # TBPTT chunks read in this epoch
    tokens_seen: int = 0
    elapsed_s: float = 0.0  # training time, validation excluded
    best_val_loss: float = math.inf
    progress: float = 0.0  # where the schedule stood (0 to 1) when saved
    skipped_steps: int = 0  # steps whose loss or gradients were not finite (not applied)
    # [schedule position, budget used] where a resume changed the bounds; see Bounds.schedule
    anchor: list[float] | None = None


@dataclass(frozen=True)
class Bounds:
    max_steps: int | None
    time_limit_s: float | None
    epoch_steps: float | None  # --epochs in steps

    @classmethod
    def of(cls, config: TrainConfig, chunks_per_epoch: int) -> Bounds:
        epoch_steps = config.epochs * chunks_per_epoch if config.epochs else None
        return cls(config.max_steps, config.time_limit_s, epoch_steps)

    def used(self, pos: Position) -> float:
        """Fraction of the budget used, by whichever bound comes first (the ETA and the end)."""
        fractions = [0.0]
        if self.max_steps:
            fractions.append(pos.step / self.max_steps)
        if self.time_limit_s:
            fractions.append(pos.elapsed_s / self.time_limit_s)
        if self.epoch_steps:
            fractions.append(pos.step / self.epoch_steps)
        return max(fractions)

    def schedule(self, pos: Position) -> float:
        """Where the schedule stands, 0 to 1: the budget used, except after a resume that changed
        the bounds, where it runs on from where it stood to 1 at the new end (a finished
        schedule stays at its end)."""
        used = self.used(pos)
        if pos.anchor is None:
            return used
        at, used_at = pos.anchor
        if used_at >= 1.0:
            return 1.0
        return min(1.0, at + (1.0 - at) * max(0.0, used - used_at) / (1.0 - used_at))

    def anchor_at_resume(self, pos: Position) -> None:
        """After restoring pos: if these bounds put the run somewhere other than where its
        schedule stood, continue the schedule from there. Unchanged bounds change nothing."""
        if self.used(pos) != pos.progress:
            pos.anchor = [pos.progress, self.used(pos)]

    def eta_s(self, pos: Position) -> float:
        used = self.used(pos)
        return pos.elapsed_s / used * (1 - used) if 0 < used < 1 else 0.0


def learning_rate(config: TrainConfig, progress: float) -> float:
    """Linear warm-up over the first `warmup` of the run, then one of: "wsd" holds lr and decays
    linearly to lr * min_lr_ratio over the run's last WSD_DECAY; "cosine" decays to it along a
    half cosine over the whole run; "constant" holds lr."""
    warm = min(1.0, progress / config.warmup) if config.warmup else 1.0
    progress = min(1.0, progress)
    if config.schedule == "constant":
        return config.lr * warm
    if config.schedule == "wsd":
        decayed = max(0.0, (progress - (1 - WSD_DECAY)) / WSD_DECAY)
        return config.lr * warm * (1 - (1 - config.min_lr_ratio) * decayed)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr * warm * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)
