"""A bench's results file: one JSON row a line, appended as each cell ends, so that a run of many
cells can be stopped and taken up again; the stamp every row carries (the machine, the day, the
commit), since cells of one table may be measured on different days or machines; and the figures
read back from the rows, which a killed run or a hand may have left incomplete."""

from __future__ import annotations

import datetime
import json
import math
import subprocess
from pathlib import Path
from typing import Callable, Hashable

import torch

from lstm_repl.errors import ConfigError

RESULTS_LIMIT = 16 << 20  # bytes: thousands of rows


def stamp() -> dict:
    return {"machine": machine(), "when": datetime.date.today().isoformat(), "commit": commit()}


def machine() -> str:
    from lstm_repl.model.precision import device_description
    return device_description(torch.device("cpu")) + f", {torch.get_num_threads()} threads, torch {torch.__version__}"


def commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def append_row(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def read_rows(path: Path) -> list[dict]:
    """Every row naming its cell, in the order written. A line cut short by a killed run, or not
    JSON, is passed over."""
    from lstm_repl.safe_read import read_text
    rows = []
    for line in read_text(path, RESULTS_LIMIT, ConfigError).splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("cell"), str):
            rows.append(row)
    return rows


def newest(rows: list[dict], key: Callable[[dict], Hashable]) -> list[dict]:
    """The last row of each key: a cell run again replaces its row."""
    return list({key(row): row for row in rows}.values())


def figure(value) -> bool:
    """A finite number: a figure a row may be shown with."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def passes_made(side: dict) -> float | None:
    """The passes lstm-repl made over its training tokens, from its side's row (its plan's
    estimate where that is all the row has)."""
    plan = side.get("plan") or {}
    made = (side.get("tokens_per_s"), side.get("seconds"), plan.get("train_tokens"))
    if all(figure(x) for x in made):
        return made[0] * made[1] / made[2]
    return plan["passes"] if figure(plan.get("passes")) else None
