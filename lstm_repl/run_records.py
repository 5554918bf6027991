"""What a training run reports: the records of its start, each logged step and its end, and the
facts stored with its checkpoints. Built from the trainer's state; nothing here trains."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from lstm_repl.evaluation import comparable_figures, scored_sum
from lstm_repl.model import count_parameters

if TYPE_CHECKING:
    from lstm_repl.train import Trainer


def metric_names(level: str) -> str:
    return "bpc" if level == "char" else "ppl"


def quality(level: str, loss_nats: float) -> float:
    """Bits per character (char level) or perplexity (word level) from a loss in nats."""
    return loss_nats / math.log(2) if level == "char" else math.exp(min(loss_nats, 50.0))


def validation_record(trainer: Trainer, val_loss: float, max_tokens: int | None) -> dict:
    """The validation figures of a record: the loss per token, bits per character and
    perplexity per word for every level (so runs of both levels compare), and at word level the
    perplexity per token."""
    config = trainer.config
    streams = trainer.streams_in_all
    count = scored_sum(np.ones(len(trainer.val_ids), np.int64), streams, config.seq_len, max_tokens)
    characters, words = (scored_sum(v, streams, config.seq_len, max_tokens) for v in trainer.val_extent)
    figures = comparable_figures(val_loss * count, characters, words)
    return {"val_loss": val_loss, f"val_{metric_names(config.level)}": quality(config.level, val_loss),
            "val_bpc": figures["bits_per_character"], "val_ppl_word": figures["perplexity_per_word"]}


def start_record(trainer: Trainer) -> dict:
    return {"device": trainer.device.type, "device_name": device_name(trainer.device),
            "precision": trainer.precision, "parameters": count_parameters(trainer.model)["total"],
            "train_tokens": int(trainer.batches.streams.size), "val_tokens": int(len(trainer.val_ids)),
            "vocab_size": len(trainer.vocab), "out_dir": str(trainer.out_dir), "resumed_at": trainer.position.step}


def step_record(trainer: Trainer, train_loss: float | None, tokens_per_s: float) -> dict:
    pos = trainer.position
    return {"step": pos.step, "elapsed_s": round(pos.elapsed_s, 3), "tokens_seen": pos.tokens_seen,
            "train_loss": train_loss, "val_loss": None, "tokens_per_s": round(tokens_per_s, 1),
            "lr": trainer.optimizer.param_groups[0]["lr"],
            "epoch": pos.step / max(1, trainer.batches.chunks_per_epoch),
            "progress": min(1.0, trainer.bounds.used(pos)), "eta_s": trainer.bounds.eta_s(pos),
            "skipped_steps": pos.skipped_steps}


def checkpoint_info(trainer: Trainer) -> dict:
    """The run's facts saved beside the weights (config.json's "info")."""
    pos, level = trainer.position, trainer.config.level
    best = pos.best_val_loss if math.isfinite(pos.best_val_loss) else None
    metrics = {"step": pos.step, "tokens_seen": pos.tokens_seen, "best_val_loss": best,
               f"best_val_{metric_names(level)}": None if best is None else quality(level, best)}
    return {"corpus": trainer.corpus_info, "metrics": metrics, "parameters": count_parameters(trainer.model),
            "train_time_s": round(pos.elapsed_s, 2), "device": trainer.device.type,
            "device_name": device_name(trainer.device), "precision": trainer.precision}


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


def final_summary(trainer: Trainer) -> dict:
    pos, level = trainer.position, trainer.config.level
    return {"step": pos.step, "elapsed_s": pos.elapsed_s, "best_val_loss": pos.best_val_loss,
            f"best_val_{metric_names(level)}": quality(level, pos.best_val_loss),
            "out_dir": str(trainer.out_dir), "history": trainer.history}


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
