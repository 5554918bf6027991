"""What a training run reports: the records of its start, each logged step and its end, and the
facts stored with its checkpoints. Built from what the run is (RunSetup, fixed at its start) and
where it stands (Position); nothing here trains."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lstm_repl.config import TrainConfig
from lstm_repl.data.vocab import Vocab
from lstm_repl.model import LanguageModel, count_parameters
from lstm_repl.training.evaluation import comparable_figures, scored_sum
from lstm_repl.training.schedule import Bounds, Position


@dataclass(frozen=True)
class RunSetup:
    """What a run is, fixed at its start."""

    config: TrainConfig
    vocab: Vocab
    out_dir: Path
    corpus_info: dict  # the corpus as checkpoints record it: file names, sha256, sizes
    corpus_paths: list[str]  # where its files lie: kept in last/ for --resume alone
    device: torch.device
    precision: str
    plan: dict | None = None  # what the planner chose and why (plan.Plan.record), kept across resumes


def metric_names(level: str) -> str:
    return "bpc" if level == "char" else "ppl"


def quality(level: str, loss_nats: float) -> float:
    """Bits per character (char level) or perplexity (word level) from a loss in nats."""
    return loss_nats / math.log(2) if level == "char" else math.exp(min(loss_nats, 50.0))


def validation_record(config: TrainConfig, held_out: int, extent: tuple[np.ndarray, np.ndarray], streams: int,
                      val_loss: float, max_tokens: int | None) -> dict:
    """The validation figures of a record: the loss per token, bits per character and
    perplexity per word for every level (so runs of both levels compare), and at word level the
    perplexity per token. held_out: tokens held out; extent: each one's characters and word
    starts (evaluation.validation_extent); streams: the streams a validation reads them as."""
    count = scored_sum(np.ones(held_out, np.int64), streams, config.seq_len, max_tokens)
    characters, words = (scored_sum(v, streams, config.seq_len, max_tokens) for v in extent)
    figures = comparable_figures(val_loss * count, characters, words)
    return {"val_loss": val_loss, f"val_{metric_names(config.level)}": quality(config.level, val_loss),
            "val_bpc": figures["bits_per_character"], "val_ppl_word": figures["perplexity_per_word"]}


def start_record(setup: RunSetup, model: LanguageModel, train_tokens: int, val_tokens: int, resumed_at: int) -> dict:
    return {"device": setup.device.type, "device_name": device_name(setup.device),
            "precision": setup.precision, "parameters": count_parameters(model)["total"],
            "train_tokens": train_tokens, "val_tokens": val_tokens,
            "vocab_size": len(setup.vocab), "out_dir": str(setup.out_dir), "resumed_at": resumed_at,
            "plan": setup.plan}


def step_record(pos: Position, bounds: Bounds, chunks_per_epoch: int, lr: float, train_loss: float | None,
                tokens_per_s: float) -> dict:
    return {"step": pos.step, "elapsed_s": round(pos.elapsed_s, 3), "tokens_seen": pos.tokens_seen,
            "train_loss": train_loss, "val_loss": None, "tokens_per_s": round(tokens_per_s, 1), "lr": lr,
            "epoch": pos.step / max(1, chunks_per_epoch),
            "progress": min(1.0, bounds.used(pos)), "eta_s": bounds.eta_s(pos),
            "skipped_steps": pos.skipped_steps}


def checkpoint_info(setup: RunSetup, model: LanguageModel, pos: Position) -> dict:
    """The run's facts saved beside the weights (config.json's "info")."""
    level = setup.config.level
    best = pos.best_val_loss if math.isfinite(pos.best_val_loss) else None
    metrics = {"step": pos.step, "tokens_seen": pos.tokens_seen, "best_val_loss": best,
               f"best_val_{metric_names(level)}": None if best is None else quality(level, best)}
    return {"corpus": setup.corpus_info, "metrics": metrics, "parameters": count_parameters(model),
            "train_time_s": round(pos.elapsed_s, 2), "device": setup.device.type,
            "device_name": device_name(setup.device), "precision": setup.precision,
            **({"plan": setup.plan} if setup.plan else {})}


def corpus_names(paths: list[str], files: list[Path]) -> list[str]:
    """Each corpus file as checkpoints and cards record it: a file given by itself, its name; a
    file found in a folder given, the folder's name and the path inside it. Never where on this
    machine they lay (a checkpoint is shared; the paths stay in last/ for --resume)."""
    return [_name_among(file, paths) for file in files]


def _name_among(file: Path, paths: list[str]) -> str:
    for raw in paths:
        root = Path(raw)
        if file == root:
            return recorded_name(raw)
        if root in file.parents:
            return "/".join([recorded_name(raw), *file.relative_to(root).parts]).lstrip("/")
    return file.name


def recorded_name(path: str | Path) -> str:
    """The name of a file or folder, '.' and '..' resolved ('.' in ~/texts is 'texts')."""
    return Path(os.path.abspath(path)).name


def final_summary(setup: RunSetup, pos: Position, history: list[dict]) -> dict:
    level = setup.config.level
    return {"step": pos.step, "elapsed_s": pos.elapsed_s, "best_val_loss": pos.best_val_loss,
            f"best_val_{metric_names(level)}": quality(level, pos.best_val_loss),
            "out_dir": str(setup.out_dir), "history": history}


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
