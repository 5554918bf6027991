"""What `lstm-repl units` and `lstm-repl saturation` print: the ranking of units against a
feature, and the saturation of each gate as a scatter plot of characters (Karpathy et al. 2015,
fig. 3: x = share of tokens left-saturated, y = share right-saturated, one mark per unit)."""

from __future__ import annotations

import numpy as np

from lstm_repl.analysis.unit_scores import UnitScore

PLOT_WIDTH, PLOT_HEIGHT = 41, 17
LAYER_MARKS = "123456789"
CROWDED = "#"  # a cell where units of several layers fall


def ranking_lines(scores: list[UnitScore], binary: bool, top: int) -> list[str]:
    metric = "AUROC" if binary else "|r|"
    lines = [f"{'rank':>4}  {'unit':>7}  {'quantity':<8}  {metric:>5}  direction"]
    for rank, s in enumerate(scores[:top], 1):
        lines.append(f"{rank:>4}  {s.label:>7}  {s.quantity:<8}  {s.score:5.3f}  {s.direction}")
    return lines


def scatter_lines(per_layer: list[tuple[np.ndarray, np.ndarray]], title: str) -> list[str]:
    """One plot: each unit of each layer at (left-saturated share, right-saturated share), marked
    with its layer's number; cells shared by layers show CROWDED."""
    grid: list[list[str]] = [[" "] * PLOT_WIDTH for _ in range(PLOT_HEIGHT)]
    for layer, (left, right) in enumerate(per_layer):
        mark = LAYER_MARKS[layer % len(LAYER_MARKS)]
        columns = np.clip(np.rint(left * (PLOT_WIDTH - 1)), 0, PLOT_WIDTH - 1).astype(int)
        rows = np.clip(np.rint(right * (PLOT_HEIGHT - 1)), 0, PLOT_HEIGHT - 1).astype(int)
        for x, y in zip(columns.tolist(), rows.tolist()):
            cell = grid[PLOT_HEIGHT - 1 - y][x]
            grid[PLOT_HEIGHT - 1 - y][x] = mark if cell in (" ", mark) else CROWDED
    lines = [title, "right-saturated (> 0.9)"]
    for index, row in enumerate(grid):
        axis = "1.0" if index == 0 else ("0.0" if index == PLOT_HEIGHT - 1 else "")
        lines.append(f"{axis:>3} |{''.join(row)}|")
    lines.append("    +" + "-" * PLOT_WIDTH + "+")
    lines.append("     0.0" + " " * (PLOT_WIDTH - 8) + "1.0")
    lines.append("     left-saturated (< 0.1)   marks: layer number, " + CROWDED + " = several layers")
    return lines
