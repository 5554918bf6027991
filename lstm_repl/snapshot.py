"""What the model did at one token, as plain numbers: the views draw this. No torch."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lstm_repl.quantities import Quantity


@dataclass(frozen=True)
class Snapshot:
    position: int  # tokens read so far (0: nothing typed yet)
    token: str | None  # text of the latest token read; None before the first
    probability: float | None  # the model's probability for that token before it was read
    surprisal_bits: float | None  # -log2(probability)
    top: list[tuple[str, float]]  # next-token predictions (text, probability), most likely first
    layers: list[dict[str, np.ndarray]]  # per layer: quantity symbol -> (hidden,) float32
    previous_cell: list[np.ndarray]  # per layer: the cell state (or h, for cells without c) before this token
    quantities: tuple[Quantity, ...]  # what each symbol means, its range, in display order
    cell_kind: str = "lstm"
    extras: dict = field(default_factory=dict)  # anything a view may show (e.g. unk count)

    @property
    def hidden(self) -> int:
        return len(next(iter(self.layers[0].values()))) if self.layers else 0
