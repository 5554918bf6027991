"""Scores of every unit against a feature, accumulated chunk by chunk (unit_trace.py), so that
nothing per token is kept.

- A binary feature: AUROC, the chance that the unit is higher at a random token inside the
  feature than at a random token outside it (0.5: no relation; 1: always higher; 0: always
  lower, reported as its mirror 1 - AUROC with "low inside"). Computed exactly up to ties within
  HISTOGRAM_BINS bins of each unit's values: bins spread evenly over a bounded quantity's range
  (a gate's 0 to 1, tanh's -1 to 1), and over asinh of an unbounded one (a cell state), which keeps
  both small and large values apart (c = 8 and c = 10 fall 20 bins apart) and leaves AUROC as it is.
- A numeric feature: Pearson's correlation (a unit that falls as the feature rises, negative).
- Saturation (Karpathy et al. 2015, fig. 3): the share of tokens at which each gate unit is
  below 0.1 (left-saturated) or above 0.9 (right-saturated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

HISTOGRAM_BINS = 1024
LEFT, RIGHT = 0.1, 0.9  # saturation thresholds of a gate


ASINH_LIMIT = math.asinh(1000.0)  # unbounded values beyond ±1000 share the end bins


def _bins(values: torch.Tensor, bounds: tuple[float, float] | None) -> torch.Tensor:
    """Values -> bin numbers: linear over `bounds`, or through asinh when unbounded (None)."""
    v = values.double()
    share = (torch.asinh(v) / ASINH_LIMIT + 1) / 2 if bounds is None else (v - bounds[0]) / (bounds[1] - bounds[0])
    return (share * HISTOGRAM_BINS).long().clamp_(0, HISTOGRAM_BINS - 1)


class AurocAccumulator:
    """Per unit, a histogram of its values at positive and at negative tokens."""

    def __init__(self, hidden: int, bounds: tuple[float, float] | None = None):
        """bounds: the quantity's range when it has one (a gate's (0, 1)); None: unbounded."""
        self.hidden, self.bounds = hidden, bounds
        self.positive = torch.zeros(hidden * HISTOGRAM_BINS, dtype=torch.int64)
        self.negative = torch.zeros(hidden * HISTOGRAM_BINS, dtype=torch.int64)

    def add(self, values: torch.Tensor, labels: torch.Tensor) -> None:
        """values: (n, hidden); labels: (n,) bool."""
        index = _bins(values.cpu(), self.bounds) + torch.arange(self.hidden)[None, :] * HISTOGRAM_BINS
        labels = labels.cpu()
        self.positive += torch.bincount(index[labels].reshape(-1), minlength=self.positive.numel())
        self.negative += torch.bincount(index[~labels].reshape(-1), minlength=self.negative.numel())

    def scores(self) -> np.ndarray:
        """(hidden,) AUROC of each unit (nan when one class is empty)."""
        positive = self.positive.reshape(self.hidden, HISTOGRAM_BINS).double()
        negative = self.negative.reshape(self.hidden, HISTOGRAM_BINS).double()
        below = torch.cumsum(negative, 1) - negative  # negatives in lower bins
        wins = (positive * (below + negative / 2)).sum(1)
        pairs = positive.sum(1) * negative.sum(1)
        return torch.where(pairs > 0, wins / pairs.clamp(min=1), torch.nan).numpy()


class CorrelationAccumulator:
    def __init__(self, hidden: int):
        self.n = 0
        self.sx = torch.zeros(hidden, dtype=torch.float64)
        self.sxx = torch.zeros(hidden, dtype=torch.float64)
        self.sxy = torch.zeros(hidden, dtype=torch.float64)
        self.sy = self.syy = 0.0

    def add(self, values: torch.Tensor, target: torch.Tensor) -> None:
        x, y = values.cpu().double(), target.cpu().double()
        self.n += len(y)
        self.sx += x.sum(0)
        self.sxx += (x * x).sum(0)
        self.sxy += (x * y[:, None]).sum(0)
        self.sy += float(y.sum())
        self.syy += float((y * y).sum())

    def scores(self) -> np.ndarray:
        n = max(self.n, 1)
        cov = self.sxy / n - (self.sx / n) * (self.sy / n)
        var_x = (self.sxx / n - (self.sx / n) ** 2).clamp(min=0)
        var_y = max(self.syy / n - (self.sy / n) ** 2, 0.0)
        denominator = (var_x * var_y).sqrt()
        return torch.where(denominator > 1e-12, cov / denominator.clamp(min=1e-12), torch.nan).numpy()


class SaturationAccumulator:
    def __init__(self, hidden: int):
        self.n = 0
        self.left = torch.zeros(hidden, dtype=torch.int64)
        self.right = torch.zeros(hidden, dtype=torch.int64)

    def add(self, values: torch.Tensor) -> None:
        self.n += values.shape[0]
        self.left += (values < LEFT).sum(0).cpu()
        self.right += (values > RIGHT).sum(0).cpu()

    def fractions(self) -> tuple[np.ndarray, np.ndarray]:
        n = max(self.n, 1)
        return (self.left.double() / n).numpy(), (self.right.double() / n).numpy()


@dataclass(frozen=True)
class UnitScore:
    layer: int  # 0-based
    unit: int
    quantity: str  # symbol
    score: float  # AUROC (mirrored when low inside) or |r|
    direction: str  # "high inside" / "low inside" (binary) or "rises with" / "falls with" (numeric)
    raw: float  # AUROC or r as measured

    @property
    def label(self) -> str:
        return f"{self.layer + 1}:{self.unit}"


def ranked(scores: dict[tuple[int, str], np.ndarray], binary: bool) -> list[UnitScore]:
    """Every (layer, quantity, unit) score, best first."""
    out = []
    for (layer, symbol), values in scores.items():
        for unit, raw in enumerate(values.tolist()):
            if raw != raw:  # nan
                continue
            if binary:
                high = raw >= 0.5
                out.append(UnitScore(layer, unit, symbol, raw if high else 1 - raw,
                                     "high inside" if high else "low inside", raw))
            else:
                out.append(UnitScore(layer, unit, symbol, abs(raw), "rises with" if raw >= 0 else "falls with", raw))
    return sorted(out, key=lambda s: (-s.score, s.layer, s.quantity, s.unit))
