"""`bench matrix`: the defaults against their references on several kinds of text, budgets and
levels, one cell at a time, each cell's figures appended to a results file as it ends.

A cell is a corpus, a level and a budget; its sides (lstm-repl with its plan, the plain
reference of that level, and at char level on some corpora nanoGPT's small GPT) train one after
the other on the same split for the same time, on the same machine, so each cell is a fair
comparison even when cells were run on different days or machines (the results say which).
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from lstm_repl.bench.quality import compare_quality, project_settings
from lstm_repl.bench.reference import recipe_for
from lstm_repl.bench.results import figure, newest, passes_made, read_rows, stamp
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


def corpus_paths(name: str, cell_name: str, given: dict[str, str],
                 locate: Callable[[str], Path | None]) -> tuple[list[str], int | None]:
    """Where corpus `name` lies (given NAME=PATH, or the catalogue's file), and its slice; the
    error names the cell that needs it."""
    corpus = next(c for c in CORPORA if c.name == name)
    if corpus.name in given:
        return [given[corpus.name]], corpus.chars
    path = locate(corpus.catalogue) if corpus.catalogue else None
    if path is None:
        how = f"`lstm-repl corpus get {corpus.catalogue}`" if corpus.catalogue else f"--corpus {corpus.name}=PATH"
        raise ConfigError(f"cell {cell_name} needs the {corpus.name} corpus: give it with {how}")
    return [str(path)], corpus.chars


def run_cell(cell: Cell, paths: list[str], chars: int | None, report: Callable[[str], None],
             earlier: dict | None = None) -> dict:
    """Train the cell's sides for its minutes each; -> its results row. With `earlier` (a row of
    this cell from this machine: kept_sides says which may be kept), the sides it holds are kept
    and only the others train."""
    time_limit = cell.minutes * 60
    config, model_args = project_settings("defaults", "auto", None, time_limit, cell.level)
    kept = {name: side for name, side in (earlier or {}).get("sides", {}).items() if name in cell.sides}
    to_train = tuple(name for name in cell.sides if name not in kept)
    split, sides = compare_quality(paths, config, model_args, recipe_for(cell.level), None, time_limit, chars,
                                   report=report, sides=to_train, planned=frozenset(PLANNED))
    row = {"cell": cell.name, "corpus": cell.corpus, "level": cell.level, "minutes": cell.minutes,
           "split": split.record(),
           "sides": {name: kept[name] if name in kept else _side_row(sides[name]) for name in cell.sides},
           **stamp()}
    if kept:
        measured = {"when": earlier.get("when"), "commit": earlier.get("commit")}
        row["kept"] = {name: earlier.get("kept", {}).get(name, measured) for name in kept}
    return row


def kept_sides(row: dict | None, retrain: tuple[str, ...], machine: str) -> dict | None:
    """The part of an earlier row of a cell that `bench matrix --side` may keep: the sides not
    named in `retrain`, and only when that row was measured on this same machine (sides measured
    on different CPUs are not an equal-time comparison). None: train the whole cell (as without
    --side, or with --again)."""
    if not retrain or row is None or row.get("machine") != machine:
        return None
    sides = {name: side for name, side in row.get("sides", {}).items() if name not in retrain}
    return {**row, "sides": sides} if sides else None


def _side_row(side) -> dict:
    row = asdict(side)
    row.pop("curve", None)
    return row


def read_results(path: Path) -> list[dict]:
    """The rows of a results file, the newest of each cell on each machine kept (a cell run again
    on the same machine replaces its row; one run on another CPU is a row of its own)."""
    rows = [row for row in read_rows(path) if isinstance(row.get("sides"), dict)]
    return newest(rows, key=lambda row: (row["cell"], row.get("machine")))


def row_of(cell: Cell, rows: list[dict], machine: str) -> dict | None:
    """This cell's row measured on this machine, if any."""
    return next((row for row in rows if row["cell"] == cell.name and row.get("machine") == machine), None)


def pending(cells: list[Cell], rows: list[dict], machine: str) -> list[Cell]:
    """The cells that have no row from this machine yet."""
    return [cell for cell in cells if row_of(cell, rows, machine) is None]


def table(rows: list[dict]) -> str:
    """The README's table: every cell, losses included, in bits per character on held-out text;
    a table for each machine the rows were measured on, headed by it where there are several."""
    machines = list(dict.fromkeys(row.get("machine") for row in rows))
    if len(machines) < 2:
        return _machine_table(rows)
    return "\n\n".join(f"On {_machine_name(machine)}:\n\n"
                        + _machine_table([row for row in rows if row.get("machine") == machine])
                        for machine in machines)


def _machine_name(machine: str | None) -> str:
    """A row's machine as a heading says it: 'a CPU (AMD EPYC, AVX2), 2 threads, ...'."""
    return machine.replace("this CPU", "a CPU", 1) if machine else "a machine not recorded"


def _machine_table(rows: list[dict]) -> str:
    lines = ["| corpus | level | budget | passes | lstm-repl | plain reference | small GPT | lstm-repl's margin |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in sorted(rows, key=_order):
        sides = row["sides"]
        ours, ref, gpt = (sides.get(n, {}).get("bpc") for n in ("lstm-repl", "reference", "gpt"))
        rivals = [b for b in (ref, gpt) if figure(b)]
        margin = min(rivals) - ours if figure(ours) and rivals else None
        lines.append(f"| {row['corpus']} | {row['level']} | {row['minutes']:g} min | {_passes(row)} | {_bpc(ours)} | "
                     f"{_bpc(ref)} | {_bpc(gpt)} | {_margin(margin)} |")
    return "\n".join(lines)


def _order(row: dict) -> tuple:
    names = [c.name for c in CORPORA]
    return (row["minutes"], row["level"], names.index(row["corpus"]) if row["corpus"] in names else 99)


def _bpc(value) -> str:
    return f"{value:.3f}" if figure(value) else "–"


def _margin(value) -> str:
    if value is None:
        return "–"
    return f"**+{value:.3f}**" if value >= 0.05 else f"{value:+.3f}"


def _passes(row: dict) -> str:
    passes = passes_made(row["sides"].get("lstm-repl", {}))
    return f"{passes:.2g}" if passes is not None else "–"
