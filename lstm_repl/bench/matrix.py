"""`bench matrix`: the defaults against their references on several kinds of text, budgets and
levels, one cell at a time, each cell's figures appended to a results file as it ends.

A cell is a corpus, a level and a budget; its sides (lstm-repl with its plan, the plain
reference of that level, and at char level on some corpora nanoGPT's small GPT) train one after
the other on the same split for the same time, on the same machine, so each cell is a fair
comparison even when cells were run on different days or machines (the results say which).
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import math
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from lstm_repl.bench.quality import compare_quality, project_settings
from lstm_repl.bench.reference import recipe_for
from lstm_repl.errors import ConfigError
from lstm_repl.training.plan import PLANNED

QUALITY_CHARS = 1_115_000  # a slice of a big corpus: about tinyshakespeare's size


@dataclass(frozen=True)
class MatrixCorpus:
    name: str
    kind: str  # what sort of text, for the table
    catalogue: str | None  # `lstm-repl corpus get NAME`, or None: given with --corpus NAME=PATH
    chars: int | None  # the first this many characters (None: all)


CORPORA = (
    MatrixCorpus("shakespeare", "plays and verse", "shakespeare", QUALITY_CHARS),
    MatrixCorpus("wikitext-2", "Wikipedia articles (WikiText-2's validation split)", None, None),
    MatrixCorpus("python", "Python source (the standard library)", "python", QUALITY_CHARS),
    MatrixCorpus("paradise-lost", "an epic poem in 1674 spelling (454 kB: many passes)", "paradise-lost", None),
    MatrixCorpus("shakespeare-100k", "a small corpus (100 kB of Shakespeare: tens of passes)", "shakespeare",
                 100_000),
)


@dataclass(frozen=True)
class Cell:
    corpus: str
    level: str
    minutes: float
    sides: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.corpus}/{self.level}/{self.minutes:g}m"


def default_cells() -> list[Cell]:
    cells = []
    for minutes in (2.0, 10.0):
        for corpus in ("shakespeare", "python"):
            cells.append(Cell(corpus, "char", minutes, ("lstm-repl", "reference", "gpt")))
        for corpus in ("wikitext-2", "paradise-lost"):
            cells.append(Cell(corpus, "char", minutes, ("lstm-repl", "reference")))
        for corpus in ("shakespeare", "wikitext-2"):
            cells.append(Cell(corpus, "word", minutes, ("lstm-repl", "reference")))
    cells.append(Cell("shakespeare-100k", "char", 10.0, ("lstm-repl", "reference")))
    cells.append(Cell("wikitext-2", "word", 60.0, ("lstm-repl", "reference")))
    return cells


def select(cells: list[Cell], patterns: list[str]) -> list[Cell]:
    """Cells whose name (corpus/level/minutes, e.g. shakespeare/char/10m) matches any pattern."""
    if not patterns:
        return [c for c in cells if c.minutes < 60]  # the hour-long cell only when named
    return [c for c in cells if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)]


def corpus_paths(cell: Cell, given: dict[str, str],
                 locate: Callable[[str], Path | None]) -> tuple[list[str], int | None]:
    """Where the cell's corpus lies (given NAME=PATH, or the catalogue's file), and its slice."""
    corpus = next(c for c in CORPORA if c.name == cell.corpus)
    if corpus.name in given:
        return [given[corpus.name]], corpus.chars
    path = locate(corpus.catalogue) if corpus.catalogue else None
    if path is None:
        how = f"`lstm-repl corpus get {corpus.catalogue}`" if corpus.catalogue else f"--corpus {corpus.name}=PATH"
        raise ConfigError(f"cell {cell.name} needs the {corpus.name} corpus: give it with {how}")
    return [str(path)], corpus.chars


def run_cell(cell: Cell, paths: list[str], chars: int | None, report: Callable[[str], None]) -> dict:
    """Train the cell's sides for its minutes each; -> its results row."""
    time_limit = cell.minutes * 60
    config, model_args = project_settings("defaults", "auto", None, time_limit, cell.level)
    split, sides = compare_quality(paths, config, model_args, recipe_for(cell.level), None, time_limit, chars,
                                   report=report, sides=cell.sides, planned=frozenset(PLANNED))
    return {"cell": cell.name, "corpus": cell.corpus, "level": cell.level, "minutes": cell.minutes,
            "split": {"corpus": split.name, "train_chars": len(split.train_text),
                      "held_out_chars": len(split.held_out)},
            "sides": {name: _side_row(side) for name, side in sides.items()},
            "machine": machine(), "when": _today(), "commit": _commit()}


def _side_row(side) -> dict:
    row = asdict(side)
    row.pop("curve", None)
    return row


def machine() -> str:
    from lstm_repl.model.precision import device_description
    return device_description(torch.device("cpu")) + f", {torch.get_num_threads()} threads, torch {torch.__version__}"


def _today() -> str:
    return datetime.date.today().isoformat()


def _commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def append_result(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def read_results(path: Path) -> list[dict]:
    """The rows of a results file, the newest of each cell kept (a cell run again replaces its row)."""
    from lstm_repl.safe_read import read_text
    rows: dict[str, dict] = {}
    for line in read_text(path, 16 << 20, ConfigError).splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("cell"), str) and isinstance(row.get("sides"), dict):
            rows[row["cell"]] = row
    return list(rows.values())


def table(rows: list[dict]) -> str:
    """The README's table: every cell, losses included, in bits per character on held-out text."""
    lines = ["| corpus | level | budget | passes | lstm-repl | plain reference | small GPT | lstm-repl's margin |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in sorted(rows, key=_order):
        sides = row["sides"]
        ours, ref, gpt = (sides.get(n, {}).get("bpc") for n in ("lstm-repl", "reference", "gpt"))
        rivals = [b for b in (ref, gpt) if _number(b)]
        margin = min(rivals) - ours if _number(ours) and rivals else None
        lines.append(f"| {row['corpus']} | {row['level']} | {row['minutes']:g} min | {_passes(row)} | {_bpc(ours)} | "
                     f"{_bpc(ref)} | {_bpc(gpt)} | {_margin(margin)} |")
    return "\n".join(lines)


def _order(row: dict) -> tuple:
    names = [c.name for c in CORPORA]
    return (row["minutes"], row["level"], names.index(row["corpus"]) if row["corpus"] in names else 99)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _bpc(value) -> str:
    return f"{value:.3f}" if _number(value) else "–"


def _margin(value) -> str:
    if value is None:
        return "–"
    return f"**+{value:.3f}**" if value >= 0.05 else f"{value:+.3f}"


def _passes(row: dict) -> str:
    """The passes lstm-repl made over its training tokens (its plan's estimate where that is all)."""
    side = row["sides"].get("lstm-repl", {})
    plan = side.get("plan") or {}
    if all(_number(x) for x in (side.get("tokens_per_s"), side.get("seconds"), plan.get("train_tokens"))):
        return f"{side['tokens_per_s'] * side['seconds'] / plan['train_tokens']:.2g}"
    return f"{plan['passes']:.2g}" if _number(plan.get("passes")) else "–"
