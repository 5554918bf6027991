"""lstm-repl train: train a character- or word-level language model on a corpus."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lstm_repl.cli.options import (
    CELL_OPTION,
    POSITIVE,
    TRAINING_OPTIONS,
    left_to_plan,
    parse_duration,
    split_settings,
    with_options,
)

RESUMABLE = ("max_steps", "time_limit", "epochs", "device", "precision", "eval_interval", "log_interval", "lr")
DEFAULT_TIME = "10m"  # with no bound given


@click.command()
@click.argument("corpus", nargs=-1, type=click.Path())
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Output folder (default: runs/<corpus>-<level>).")
@click.option("--resume", "resume_dir", type=click.Path(), help="Continue the run saved in this folder.")
@click.option("--overwrite", is_flag=True, help="Start over in an --out folder that already holds a run.")
@CELL_OPTION
@with_options(TRAINING_OPTIONS)
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after this many steps.")
@click.option("--time", "time_limit",
              help=f"Stop after this long, e.g. 90s, 10m, 1h (default {DEFAULT_TIME} if no bound).")
@click.option("--epochs", type=POSITIVE, help="Stop after this many passes.")
@click.option("--tensorboard", type=click.Path(file_okay=False, path_type=Path),
              help="Also write loss, validation bits per character, learning rate and gate saturation as "
                   "TensorBoard events in this folder (needs the tensorboard extra).")
@click.pass_context
def train(ctx: click.Context, corpus, out_dir, resume_dir, overwrite, tensorboard, **opts) -> None:
    """Train an LSTM language model (or a variant: --cell) on CORPUS (files or folders of UTF-8 text)."""
    from lstm_repl.training import distributed

    ranks = distributed.from_environment()  # torchrun sets it; a lone process is rank 0 of 1
    distributed.start(ranks, gpu=opts.get("device") != "cpu" and _has_gpu())
    ended_well = False
    try:
        _train(ctx, corpus, out_dir, resume_dir, overwrite, ranks, opts, tensorboard)
        ended_well = True
    finally:
        distributed.finish(ranks, ended_well)


def _train(ctx: click.Context, corpus, out_dir, resume_dir, overwrite, ranks, opts: dict,
           tensorboard: Path | None = None) -> None:
    from contextlib import nullcontext

    from rich.console import Console

    from lstm_repl.training import run_lock
    from lstm_repl.cli.progress import CorpusPassBar

    if tensorboard and ranks.leader:
        from lstm_repl.cli.tensorboard import require_tensorboard

        require_tensorboard()  # before the corpus is read

    folder = _run_folder(corpus, out_dir, resume_dir, overwrite, opts)
    with run_lock.holding(folder) if ranks.leader and folder else nullcontext():  # before the folder is touched
        bar = CorpusPassBar(Console(stderr=True, quiet=not ranks.leader))
        try:
            trainer = _assemble(ctx, corpus, folder, resume_dir, overwrite, ranks, opts, bar)
        finally:
            bar.close()
        if ranks.leader:
            _run_with_display(trainer, tensorboard)
        else:
            _run_quietly(trainer)


def _run_folder(corpus, out_dir, resume_dir, overwrite, opts: dict) -> Path | None:
    """The folder the run writes: --out, runs/<corpus>-<level>, or the folder of the run resumed
    (None when --resume names no resumable checkpoint: loading it then says why)."""
    from lstm_repl.training import runs

    if resume_dir:
        if overwrite:
            raise click.UsageError("--overwrite starts a run over; it cannot go with --resume")
        return runs.resumed_folder(resume_dir)
    if not corpus:
        raise click.UsageError("give a corpus: one or more text files or folders (or --resume DIR)")
    return Path(out_dir) if out_dir else Path("runs") / f"{Path(corpus[0]).stem or 'corpus'}-{_settings(opts)[0].level}"


def _assemble(ctx: click.Context, corpus, folder, resume_dir, overwrite, ranks, opts: dict, progress):
    """The run's trainer, the corpus streamed through the passes `progress` shows."""
    from lstm_repl.training import runs

    if resume_dir:
        overrides, restated = _resume_settings(ctx, opts)
        out = ctx.params["out_dir"]  # given again: it must be the run's own folder
        return runs.resumed_run(resume_dir, list(corpus), overrides, restated, out, ranks, progress)
    config, model_args = _settings(opts)
    return runs.new_run(list(corpus), config, model_args, folder, overwrite, ranks, progress, left_to_plan(opts))


def _run_quietly(trainer) -> None:
    """A process other than the first: it trains, and the first one alone says what happened."""
    from lstm_repl.errors import LstmReplError, TrainingInterrupted

    try:
        trainer.run()
    except TrainingInterrupted:
        raise SystemExit(130) from None
    except LstmReplError:
        raise SystemExit(1) from None


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _settings(opts: dict):
    from lstm_repl.config import TrainConfig

    bounded = any(opts[name] is not None for name in ("time_limit", "max_steps", "epochs"))
    time_limit = parse_duration(opts["time_limit"] or (None if bounded else DEFAULT_TIME))
    train_settings, model_args = split_settings(opts)
    return TrainConfig(time_limit_s=time_limit, **train_settings), model_args


def _resume_settings(ctx: click.Context, opts: dict) -> tuple[dict, dict]:
    """The flags given with --resume: (bounds and the like, which may change; the run's other
    settings restated, which must equal what the run was started with)."""
    given = {name for name in opts if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    overrides = {name: opts[name] for name in given & set(RESUMABLE) if name != "time_limit"}
    if "time_limit" in given:
        overrides["time_limit_s"] = parse_duration(opts["time_limit"])
    restated = {name: opts[name] for name in given - set(RESUMABLE)}
    return overrides, restated


def _run_with_display(trainer, tensorboard: Path | None = None) -> None:
    from rich.console import Console

    from lstm_repl.cli.progress import PlainReporter, RichReporter
    from lstm_repl.training.text_report import loss_curve
    from lstm_repl.terminal_text import terminal_line

    reporter = RichReporter(Console(stderr=True)) if sys.stderr.isatty() else PlainReporter(sys.stderr)
    if trainer.plan is not None:
        click.echo(terminal_line(trainer.plan.line()), err=True)
    if tensorboard:
        from lstm_repl.cli.tensorboard import TensorBoardReporter, summary_writer

        reporter = TensorBoardReporter(summary_writer(tensorboard), trainer, reporter)
    try:
        summary = trainer.run(reporter)
    finally:
        reporter.close()
    metric = "bpc" if trainer.config.level == "char" else "ppl"
    click.echo(terminal_line(
        f"best validation: {summary['best_val_loss']:.4f} nats, {metric} {summary[f'best_val_{metric}']:.3f}"
        f" after {summary['step']} steps; checkpoints in {summary['out_dir']}/best and /last"
    ))
    curve = loss_curve(summary["history"])
    if curve:
        click.echo(curve)
