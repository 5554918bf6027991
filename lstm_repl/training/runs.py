"""Assembling a training run: corpus, vocabulary, model and trainer, new or resumed."""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

from lstm_repl.model import checkpoint
from lstm_repl.config import TrainConfig, to_dict
from lstm_repl.training.cutoffs import output_layer
from lstm_repl.data.corpus import (
    Progress,
    capped_validation,
    encode_cached,
    load_vocab_cached,
    no_progress,
    scan,
    split_ids,
    tail_pieces,
)
from lstm_repl.model.devices import resolve_device
from lstm_repl.training.distributed import Ranks, device_for
from lstm_repl.training.plan import Plan, make_plan
from lstm_repl.training.step_rate import choose_training_precision
from lstm_repl.errors import CheckpointError, ConfigError, CorpusError, LstmReplError
from lstm_repl.training.run_records import corpus_names
from lstm_repl.safe_read import read_json
from lstm_repl.training.trainer import LOG_FILE, Trainer, check_writable, new_model


def new_run(corpus_paths: list[str], config: TrainConfig, model_args: dict, out_dir: Path, overwrite: bool,
            ranks: Ranks = Ranks(), progress: Progress = no_progress, planned: frozenset[str] = frozenset()) -> Trainer:
    """A fresh run. model_args: the ModelConfig fields other than vocab_size. ranks: this process
    among several (torchrun): only the first one looks at and tidies the run folder. progress:
    told how far the streaming passes over the corpus have come. planned: the settings (of
    plan.PLANNED) the plan chooses, by the passes this machine makes in the budget; the others
    are as given. The plan, and the precision timed on the model, are recorded in the run."""
    if ranks.leader:
        _check_fresh(out_dir, overwrite)
    corpus = scan(corpus_paths, config.encoding, progress)
    vocab = load_vocab_cached(corpus, config.level, config.vocab_size, config.min_count, progress)
    ids = encode_cached(corpus, vocab, progress)
    train_ids = split_ids(ids, config.val_fraction)[0]
    layer = output_layer(model_args.get("softmax", "auto"), config.level, train_ids, len(vocab))
    config, model_args, plan = _planned(config, {**model_args, **layer}, planned, train_ids, len(vocab), ranks)
    model = new_model(len(vocab), model_args, config.seed)
    if ranks.leader:
        checkpoint.remove_stale_temporaries(out_dir)
    recorded = _corpus_info(corpus, corpus_names(corpus_paths, corpus.files), len(ids))
    return Trainer(model, vocab, ids, config, out_dir, recorded, ranks=ranks, corpus_paths=_located(corpus),
                   val_pieces=_held_out_pieces(corpus, vocab, len(ids), config.val_fraction),
                   precision=plan.precision, plan=plan)


def _planned(config: TrainConfig, model_args: dict, planned: frozenset[str], train_ids, vocab_size: int,
             ranks: Ranks) -> tuple[TrainConfig, dict, Plan]:
    """plan.make_plan with its rates timed on trial models of the sizes it weighs, reading the
    training text (then dropped: the run's model is made afresh from the seed, as it would be
    were the plan's settings given). Precision is decided on each trial model at each batch."""
    device = device_for(ranks, resolve_device(config.device))
    timed: dict[tuple, dict[str, float]] = {}  # (batch, hidden, embed) -> tokens/s in each precision

    def rate_at(batch_size: int, args: dict) -> tuple[str, float]:
        trial = new_model(vocab_size, args, config.seed).to(device)
        precision, rates = choose_training_precision(replace(config, batch_size=batch_size), trial, ranks,
                                                     text_ids=train_ids)
        timed[batch_size, args.get("hidden"), args.get("embed")] = rates
        return precision, rates[precision]

    config, model_args, plan = make_plan(config, model_args, planned, len(train_ids), rate_at)
    rates = timed.get((config.batch_size, model_args.get("hidden"), model_args.get("embed")), {})
    return config, model_args, replace(plan, precision_rates={p: round(r, 1) for p, r in rates.items()})


def resumed_run(resume_dir: str, corpus_paths: list[str], overrides: dict, restated: dict | None = None,
                out: str | None = None, ranks: Ranks = Ranks(), progress: Progress = no_progress) -> Trainer:
    """Continue a run from its last checkpoint; `overrides` may extend its bounds (max_steps, time).
    `restated`: other settings given again (people re-run the same command with --resume added),
    each of which must equal the run's own; `out`: an --out given again, which must be the run's."""
    saved = checkpoint.load(resume_dir, for_resume=True)
    out_dir = _folder_of(saved.path)
    _check_restated(saved, restated or {})
    if out is not None and Path(out).resolve() != out_dir.resolve():
        raise ConfigError(f"--out {out} is not the folder of the run being resumed ({out_dir}); drop --out")
    if ranks.leader:
        check_writable(out_dir)
        checkpoint.remove_stale_temporaries(out_dir)
    config = TrainConfig(**{**to_dict(saved.train_config), **overrides})
    corpus_info = saved.info.get("corpus", {})
    paths = corpus_paths or corpus_location(saved.resume, corpus_info)
    if not paths:
        raise CorpusError("the run does not record where its corpus lies; pass the corpus files after --resume DIR")
    corpus = scan(paths, config.encoding, progress)
    if corpus.sha256 != corpus_info.get("sha256"):
        raise CorpusError(
            "the corpus differs from the one this run was trained on (sha256 mismatch); "
            "pass the original corpus files after --resume DIR"
        )
    ids = encode_cached(corpus, saved.vocab, progress)
    trainer = Trainer(saved.model, saved.vocab, ids, config, out_dir, _names_only(corpus_info), resume=saved.resume,
                      val_pieces=_held_out_pieces(corpus, saved.vocab, len(ids), config.val_fraction),
                      ranks=ranks, corpus_paths=_located(corpus), plan=saved.info.get("plan"))
    # best/ may be newer than last/ (last/ failed to save after it, a full disk): never let a worse
    # model replace it because last/ remembers an older best
    trainer.position.best_val_loss = min(trainer.position.best_val_loss, _best_saved(out_dir))
    return trainer


def resumed_folder(resume_dir: str) -> Path | None:
    """The run folder a --resume of `resume_dir` writes into; None when it holds no training state
    to resume from (loading it says so)."""
    path = checkpoint.resolve(resume_dir, for_resume=True)
    return _folder_of(path) if (path / checkpoint.RESUME_JSON_FILE).is_file() else None


def _folder_of(resumable: Path) -> Path:
    return resumable.parent if resumable.name in ("last", ".last.old") else resumable


def _best_saved(out_dir: Path) -> float:
    """best/'s validation loss as its config.json records it (inf when there is none to read)."""
    try:
        config = read_json(out_dir / "best" / checkpoint.CONFIG_FILE, checkpoint.CONFIG_LIMIT, CheckpointError)
        value = config["metrics"]["best_val_loss"]
    except (LstmReplError, KeyError, TypeError):
        return math.inf
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0 else math.inf


def _held_out_pieces(corpus, vocab, n_tokens: int, val_fraction: float) -> list[str] | None:
    """The text as written of the held-out tokens a validation reads (split_ids holds out the
    last ones, capped_validation keeps the last of those). None at bpe level: there the ids
    spell the text exactly (validation_extent spells them)."""
    if vocab.level == "bpe":
        return None
    held_out = int(n_tokens * val_fraction)
    return tail_pieces(corpus, vocab, len(capped_validation(range(held_out))))


def _check_restated(saved: checkpoint.Checkpoint, restated: dict) -> None:
    """Refuse a changed setting, naming it; the same value stated again is fine."""
    run_settings = {**to_dict(saved.train_config), **to_dict(saved.model.config)}
    for name, value in sorted(restated.items()):
        flag = "--" + name.replace("_", "-")
        if name == "softmax" and value == "auto":
            continue  # the run chose its own when it started
        if name not in run_settings:
            raise ConfigError(f"{flag} cannot be given with --resume")
        if run_settings[name] != value:
            shown = value if not isinstance(value, bool) else ("on" if value else "off")
            was = run_settings[name] if not isinstance(value, bool) else ("on" if run_settings[name] else "off")
            raise ConfigError(
                f"{flag} {shown} differs from the run's {was}: a resumed run keeps its model and training "
                "settings (only --max-steps, --time, --epochs, --lr, --device, --precision and the intervals change); "
                f"drop {flag}, or start a new run with --out"
            )


def _check_fresh(out_dir: Path, overwrite: bool) -> None:
    existing = [p for p in ("best", "last", LOG_FILE) if (out_dir / p).exists()]
    if existing and not overwrite:
        raise ConfigError(
            f"{out_dir} already holds a training run; continue it with --resume {out_dir}, "
            "or pass --overwrite to start over (its checkpoints will be replaced)"
        )
    check_writable(out_dir)
    # Old checkpoints stay until the new run's first validation replaces them, atomically.
    (out_dir / LOG_FILE).unlink(missing_ok=True)


def _corpus_info(corpus, names: list[str], n_tokens: int) -> dict:
    """What checkpoints record of the corpus: its files' names, never where they lay."""
    return {"files": names, "sha256": corpus.sha256, "characters": corpus.characters, "tokens": int(n_tokens)}


def _located(corpus) -> list[str]:
    return [str(path.resolve()) for path in corpus.files]


def _names_only(corpus_info: dict) -> dict:
    """corpus_info with the absolute paths that runs made before names were kept cut to names."""
    files = corpus_info.get("files")
    if not isinstance(files, list):
        return corpus_info
    return {**corpus_info, "files": [Path(f).name if isinstance(f, str) and os.path.isabs(f) else f for f in files]}


def corpus_location(resume: dict | None, corpus_info: dict) -> list[str]:
    """Where a run's corpus was read: last/resume.json's corpus_paths, or, in runs made before
    those were kept there, config.json's files when they are absolute paths. [] when unknown."""
    saved = resume.get("corpus_paths") if isinstance(resume, dict) else None
    if _all_paths(saved):
        return saved
    files = corpus_info.get("files") if isinstance(corpus_info, dict) else None
    return files if _all_paths(files) and all(os.path.isabs(f) for f in files) else []


def saved_corpus_location(run_dir: Path, corpus_info: dict) -> list[str]:
    """corpus_location for a run folder, read from its last/resume.json alone (no weights)."""
    try:
        resume = read_json(run_dir / "last" / checkpoint.RESUME_JSON_FILE, checkpoint.RESUME_JSON_LIMIT,
                           CheckpointError, "training state")
    except LstmReplError:
        resume = None
    return corpus_location(resume, corpus_info)


def _all_paths(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v and "\0" not in v for v in value)
