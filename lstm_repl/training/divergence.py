"""Watching a run for divergence: steps whose loss or gradients are not finite are skipped and
counted; too many in a row, or weights that are no longer finite, stop the run (and non-finite
weights are never saved, so the checkpoints keep the last good state)."""

from __future__ import annotations

from pathlib import Path

import torch

from lstm_repl.errors import TrainingDiverged
from lstm_repl.model import LanguageModel

MAX_BAD_STEPS_IN_A_ROW = 5  # non-finite steps in a row that stop a run: it is diverging, not unlucky


class DivergenceWatch:
    def __init__(self, loss_scaled: bool):
        """loss_scaled: fp16 loss scaling is on, and infinite gradients are the scaler's business
        (it skips the step and lowers the scale); only the loss is watched then."""
        self.loss_scaled = loss_scaled
        self.in_a_row = 0

    def finite(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> bool:
        """Whether a step may be applied (one sync with the device, as a loss scaler makes anyway)."""
        watched = loss.detach().float() if self.loss_scaled else loss.detach().float() + grad_norm.float()
        ok = bool(torch.isfinite(watched))
        self.in_a_row = 0 if ok else self.in_a_row + 1
        return ok

    @property
    def diverging(self) -> bool:
        return self.in_a_row >= MAX_BAD_STEPS_IN_A_ROW

    def why(self) -> str:
        return f"{self.in_a_row} steps in a row had a non-finite loss or gradients"


def weights_finite(model: LanguageModel) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def diverged(why: str, step: int, out_dir: Path, lr: float) -> TrainingDiverged:
    return TrainingDiverged(
        f"training stopped at step {step}: {why}; the checkpoints hold the last good state. "
        f"Resume with a lower learning rate: lstm-repl train --resume {out_dir} --lr {lr / 4:g}")
