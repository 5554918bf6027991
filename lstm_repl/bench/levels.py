"""`bench levels`: char, word and byte-level BPE at several vocabulary sizes side by side, each
trained with lstm-repl's planned defaults for the same minutes on bench matrix's split of the
same corpus (its first 90%) and scored in bits per character on the rest. The BPE default
vocabulary size (config.BPE_DEFAULTS) is to be chosen by it (issue 25).

Char and BPE figures are exact. A word model reads a held-out word it never saw as one <unk>,
which does not pay for the word's spelling, so its figure is then a lower bound: each row
carries the share of held-out tokens read as <unk>, and the table says so.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lstm_repl.bench.quality import compare_quality, project_settings
from lstm_repl.bench.reference import Recipe
from lstm_repl.bench.results import figure, newest, passes_made, read_rows, stamp
from lstm_repl.config import TrainConfig
from lstm_repl.errors import ConfigError
from lstm_repl.training.plan import PLANNED

LEVELS = ("char", "word", "bpe-512", "bpe-1024", "bpe-2048", "bpe-4096", "bpe-8192")
FIRST_RUN = ("char", "word", "bpe-512", "bpe-2048", "bpe-8192")  # without CELLS; the sizes between when named
CORPORA = ("shakespeare", "wikitext-2")  # bench matrix's, cut as it cuts them


@dataclass(frozen=True)
class LevelCell:
    corpus: str
    level: str  # one of LEVELS

    @property
    def name(self) -> str:
        return f"{self.corpus}/{self.level}"

    @property
    def tokenizer(self) -> str:
        """train's --level: char, word or bpe."""
        return self.level.partition("-")[0]

    @property
    def bpe_size(self) -> int | None:
        size = self.level.partition("-")[2]
        return int(size) if size else None


def all_cells() -> list[LevelCell]:
    return [LevelCell(corpus, level) for corpus in CORPORA for level in LEVELS]


def select(cells: list[LevelCell], patterns: list[str]) -> list[LevelCell]:
    """Cells whose name (corpus/level, e.g. wikitext-2/bpe-*) matches any pattern; with none, the
    first run's levels."""
    if not patterns:
        return [c for c in cells if c.level in FIRST_RUN]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(c.name, pattern) for c in cells):
            raise ConfigError(f"no cell of bench levels matches {pattern!r}; `bench levels --list` shows them")
    return [c for c in cells if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)]


def budget_label(minutes: float | None, steps: int | None) -> str:
    """A cell's bound as rows and the table name it: '10 min', or '40 steps' for a quick check."""
    return f"{steps} steps" if steps else f"{minutes:g} min"


def cell_settings(cell: LevelCell, minutes: float | None, steps: int | None) -> tuple[TrainConfig, dict]:
    """What `lstm-repl train --level L [--vocab-size N]` trains with for that budget, before its plan."""
    config, model_args = project_settings("defaults", "auto", steps, None if steps else minutes * 60, cell.tokenizer)
    if cell.bpe_size:
        config = dataclasses.replace(config, vocab_size=cell.bpe_size)
    return config, model_args


def run_cell(cell: LevelCell, paths: list[str], chars: int | None, config: TrainConfig, model_args: dict,
             report: Callable[[str], None]) -> dict:
    """Train lstm-repl, planning as train does, within config's bound; -> the cell's results row."""
    unused_reference = Recipe()  # lstm-repl trains alone here
    split, sides = compare_quality(paths, config, model_args, unused_reference, config.max_steps,
                                   config.time_limit_s, chars, report=report, sides=("lstm-repl",),
                                   planned=frozenset(PLANNED))
    side = sides["lstm-repl"]
    minutes = config.time_limit_s / 60 if config.time_limit_s else None
    return {"cell": cell.name, "corpus": cell.corpus, "level": cell.level, "vocab_size": side.vocab_size,
            "budget": budget_label(minutes, config.max_steps), "minutes": minutes, "max_steps": config.max_steps,
            "steps": side.steps, "seconds": side.seconds, "passes": passes_made(dataclasses.asdict(side)),
            "tokens_per_s": side.tokens_per_s, "precision": side.precision, "bpc": side.bpc,
            "unknown_fraction": side.unknown_fraction, "bpc_is_lower_bound": side.unknown_fraction > 0,
            "plan": side.plan, "split": split.record(), **stamp()}


def read_results(path: Path) -> list[dict]:
    """The rows of bench levels in a results file, the newest of each cell at each budget."""
    rows = [row for row in read_rows(path) if row.get("level") in LEVELS and isinstance(row.get("budget"), str)]
    return newest(rows, key=lambda row: (row["cell"], row["budget"]))


def pending(cells: list[LevelCell], rows: list[dict], budget: str) -> list[LevelCell]:
    """The cells that have no row at this budget yet."""
    done = {(row["cell"], row["budget"]) for row in rows}
    return [cell for cell in cells if (cell.name, budget) not in done]


def summary(row: dict) -> str:
    """A cell's one line as it ends."""
    passes = f"{row['passes']:.2g} passes, " if figure(row.get("passes")) else ""
    bpc = f"{row['bpc']:.3f}" if figure(row.get("bpc")) else "–"
    bound = f" (a lower bound: {_unknown(row)} <unk>)" if row.get("bpc_is_lower_bound") else ""
    return (f"{row['cell']} ({row['budget']}): held-out {bpc} bits per character{bound}; {row['steps']:,} steps, "
            f"{passes}vocabulary {row['vocab_size']:,}")


def table(rows: list[dict]) -> str:
    """The README's table: a row per corpus and budget, a column per level measured, the best
    exact figure in bold and each other's distance from it."""
    levels = [level for level in LEVELS if any(row["level"] == level for row in rows)]
    lines = ["| corpus | budget | " + " | ".join(levels) + " |", "| --- | --- |" + " --- |" * len(levels)]
    for (corpus, budget), by_level in sorted(_groups(rows).items(), key=_order):
        best = min((row["bpc"] for row in by_level.values() if _exact(row)), default=None)
        figures = [_shown(by_level.get(level), best) for level in levels]
        lines.append(f"| {corpus} | {budget} | " + " | ".join(figures) + " |")
    return "\n".join(lines)


def _groups(rows: list[dict]) -> dict[tuple[str, str], dict[str, dict]]:
    groups: dict[tuple[str, str], dict[str, dict]] = {}
    for row in rows:
        groups.setdefault((row["corpus"], row["budget"]), {})[row["level"]] = row
    return groups


def _order(group) -> tuple:
    (corpus, budget), _ = group
    return (CORPORA.index(corpus) if corpus in CORPORA else len(CORPORA), corpus, budget)


def _exact(row: dict) -> bool:
    return figure(row.get("bpc")) and not row.get("bpc_is_lower_bound")


def _shown(row: dict | None, best: float | None) -> str:
    if row is None or not figure(row.get("bpc")):
        return "–"
    if _exact(row) and row["bpc"] == best:
        return f"**{row['bpc']:.3f}**"
    notes = [f"{row['bpc'] - best:+.3f}"] if best is not None else []
    if row.get("bpc_is_lower_bound"):
        notes.append(f"lower bound, {_unknown(row)} unk")
    return f"{row['bpc']:.3f} ({'; '.join(notes)})" if notes else f"{row['bpc']:.3f}"


def _unknown(row: dict) -> str:
    """The share of held-out tokens read as <unk>, to two figures however small."""
    share = row.get("unknown_fraction")
    return f"{share * 100:.2g}%" if figure(share) else "some"
