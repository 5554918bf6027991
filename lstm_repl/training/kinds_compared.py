"""Comparing cell kinds: each trained on the same corpus for the same time (or steps), at the same
hidden size or the same parameter count. Reports through a callback; never prints or draws."""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from lstm_repl.training import runs
from lstm_repl.cells import cell_kinds
from lstm_repl.config import ModelConfig, TrainConfig
from lstm_repl.data.corpus import load_vocab_cached, read_corpus
from lstm_repl.errors import ConfigError
from lstm_repl.model import LanguageModel, count_parameters
from lstm_repl.training.trainer import LOG_FILE, Event

BASELINE = "lstm"  # --match-params matches every kind's total to this kind's at --hidden
PLAIN = "rnn"  # the ratio column: recurrent parameters against the plain RNN's


@dataclass
class Plan:
    """One kind's model, decided before training."""

    cell: str
    hidden: int
    parameters: int  # the whole model: embedding, recurrent stack, decoder
    recurrent: int  # the recurrent stack alone, biases included
    ratio: float  # recurrent / the plain RNN's recurrent at this same hidden size
    ratio_matched: float | None = None  # --match-params: recurrent / the matched plain RNN's recurrent


@dataclass
class Result(Plan):
    steps: int = 0
    train_time_s: float = 0.0
    tokens_per_s: float = 0.0  # training tokens per second, warm-up and validation excluded
    best_val_loss: float = float("nan")  # nats per token
    best_val_bpc: float = float("nan")  # bits per character (every level) at the best validation
    best_val_ppl_word: float = float("nan")  # perplexity per word there (spaces not counted as words)
    out_dir: Path | None = None  # the run folder, when kept (--out)


@dataclass
class CompareEvent:
    """What compare() tells its observer. kind: plan | start | train | result | end."""

    kind: str
    cell: str = ""
    plans: list[Plan] = field(default_factory=list)  # plan
    train_event: Event | None = None  # train: the training loop's own event
    result: Result | None = None  # result
    results: list[Result] = field(default_factory=list)  # end


Report = Callable[[CompareEvent], None]


def parse_cells(text: str) -> list[str]:
    cells = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in cells if c not in cell_kinds()]
    if unknown or not cells:
        raise ConfigError(f"unknown cell kind {unknown[0] if unknown else text!r}; use a comma-separated list of "
                          f"{', '.join(cell_kinds())}")
    if len(set(cells)) != len(cells):
        raise ConfigError("each cell kind may appear once in --cells")
    return cells


def parameter_counts(cell: str, vocab_size: int, hidden: int, embed: int, layers: int) -> dict[str, int]:
    """count_parameters of the real model, built on the meta device (no memory, no arithmetic)."""
    return dict(_parameter_counts(cell, vocab_size, hidden, embed, layers))


@functools.lru_cache(maxsize=4096)
def _parameter_counts(cell: str, vocab_size: int, hidden: int, embed: int, layers: int) -> tuple:
    with torch.device("meta"):
        model = LanguageModel(ModelConfig(vocab_size=vocab_size, cell=cell, hidden=hidden, embed=embed, layers=layers),
                              initialise=False)
    return tuple(count_parameters(model).items())


def matched_hidden(cell: str, target: int, vocab_size: int, embed: int, layers: int) -> int:
    """The hidden size whose model's total parameter count is closest to target."""
    def total(hidden: int) -> int:
        return parameter_counts(cell, vocab_size, hidden, embed, layers)["total"]

    low, high = 1, 2
    while total(high) < target:
        high *= 2
    while high - low > 1:  # total grows with hidden: bisect to total(low) < target <= total(high)
        middle = (low + high) // 2
        low, high = (middle, high) if total(middle) < target else (low, middle)
    return min((low, high), key=lambda h: (abs(total(h) - target), h))


def plan(cells: list[str], vocab_size: int, hidden: int, embed: int, layers: int, match_params: bool) -> list[Plan]:
    sizes = {cell: hidden for cell in {*cells, PLAIN}}
    if match_params:
        target = parameter_counts(BASELINE, vocab_size, hidden, embed, layers)["total"]
        sizes = {cell: matched_hidden(cell, target, vocab_size, embed, layers) for cell in sizes}
    plain_matched = parameter_counts(PLAIN, vocab_size, sizes[PLAIN], embed, layers)["rnn"]
    plans = []
    for cell in cells:
        counts = parameter_counts(cell, vocab_size, sizes[cell], embed, layers)
        plain_same = parameter_counts(PLAIN, vocab_size, sizes[cell], embed, layers)["rnn"]
        plans.append(Plan(cell, sizes[cell], counts["total"], counts["rnn"], counts["rnn"] / plain_same,
                          counts["rnn"] / plain_matched if match_params else None))
    return plans


def compare(
    corpus_paths: list[str],
    cells: list[str],
    config: TrainConfig,
    model_args: dict,
    match_params: bool = False,
    out_dir: Path | None = None,
    overwrite: bool = False,
    report: Report = lambda event: None,
) -> list[Result]:
    """Train each kind in turn under the same config; model_args: ModelConfig fields but cell (and
    vocab_size). Run folders go to out_dir/<cell>/, or to a temporary folder removed afterwards."""
    if not (config.max_steps or config.time_limit_s or config.epochs):
        raise ConfigError("give a bound for each training: --time or --steps")
    if out_dir is not None and not overwrite:
        _check_fresh(Path(out_dir), cells)
    corpus = read_corpus(corpus_paths, config.encoding)
    vocab = load_vocab_cached(corpus, config.level, config.vocab_size, config.min_count)
    plans = plan(cells, len(vocab), model_args["hidden"], model_args["embed"], model_args["layers"], match_params)
    report(CompareEvent("plan", plans=plans))
    with tempfile.TemporaryDirectory(prefix="lstm-repl-compare-") as scratch:
        root = Path(out_dir) if out_dir is not None else Path(scratch)
        results = [_train_one(corpus_paths, p, config, model_args, root, out_dir is not None, overwrite, report)
                   for p in plans]
    report(CompareEvent("end", results=results))
    return results


def _train_one(corpus_paths, p: Plan, config: TrainConfig, model_args: dict, root: Path, keep: bool,
               overwrite: bool, report: Report) -> Result:
    report(CompareEvent("start", cell=p.cell))
    args = {**model_args, "cell": p.cell, "hidden": p.hidden}
    trainer = runs.new_run(corpus_paths, config, args, root / p.cell, overwrite)
    summary = trainer.run(lambda event: report(CompareEvent("train", cell=p.cell, train_event=event)))
    position = trainer.position
    result = Result(
        **dataclasses.asdict(p),
        steps=position.step,
        train_time_s=position.elapsed_s,
        tokens_per_s=_steady_speed(trainer.history, position.tokens_seen / max(position.elapsed_s, 1e-9)),
        best_val_loss=summary["best_val_loss"],
        **_best_figures(trainer.history),
        out_dir=root / p.cell if keep else None,
    )
    report(CompareEvent("result", cell=p.cell, result=result))
    return result


def _best_figures(history: list[dict]) -> dict:
    validated = [r for r in history if r.get("val_loss") is not None]
    best = min(validated, key=lambda r: r["val_loss"]) if validated else {}
    nan = float("nan")
    return {"best_val_bpc": best.get("val_bpc", nan), "best_val_ppl_word": best.get("val_ppl_word", nan)}


def _check_fresh(out_dir: Path, cells: list[str]) -> None:
    """Refuse before training anything, rather than after the first kinds have trained."""
    taken = [cell for cell in cells if any((out_dir / cell / name).exists() for name in ("best", "last", LOG_FILE))]
    if taken:
        raise ConfigError(f"{out_dir} already holds runs for {', '.join(taken)}; pass --overwrite to replace them, "
                          "or choose another --out")


def _steady_speed(history: list[dict], overall: float) -> float:
    """Median tokens/s of the log windows after the first: the first carries one-off costs
    (TorchScript's profiling runs, oneDNN building its kernels for each new shape)."""
    speeds = sorted(r["tokens_per_s"] for r in history[1:] if r.get("tokens_per_s"))
    return speeds[len(speeds) // 2] if speeds else overall
