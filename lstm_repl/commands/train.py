"""lstm-repl train: train a character- or word-level language model on a corpus."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lstm_repl.cli import parse_duration
from lstm_repl.config import CELL_KINDS

MODEL_FLAGS = ("cell", "layers", "hidden", "embed", "dropout", "tie_weights")
RESUMABLE_FLAGS = ("max_steps", "time", "epochs", "device", "precision", "eval_interval", "log_interval")


@click.command()
@click.argument("corpus", nargs=-1, type=click.Path())
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Output folder (default: runs/<corpus>-<level>).")
@click.option("--resume", "resume_dir", type=click.Path(), help="Continue the run saved in this folder.")
@click.option("--overwrite", is_flag=True, help="Start over in an --out folder that already holds a run.")
@click.option("--level", type=click.Choice(["char", "word"]), default="char", show_default=True)
@click.option("--vocab-size", type=click.IntRange(min=2), default=20000, show_default=True, help="Word level: vocabulary cap.")
@click.option("--min-count", type=click.IntRange(min=1), default=1, show_default=True, help="Word level: drop rarer words.")
@click.option("--cell", type=click.Choice(CELL_KINDS), default="lstm", show_default=True, help="Recurrent cell kind (docs/cells.md).")
@click.option("--layers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--hidden", type=click.IntRange(min=1), default=512, show_default=True, help="Units per layer.")
@click.option("--embed", type=click.IntRange(min=1), default=128, show_default=True, help="Embedding size.")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Dropout between layers and before the decoder; for long runs that overfit (costs ~10% speed).")
@click.option("--tie-weights", is_flag=True, help="Share the embedding and decoder matrices (needs --embed = --hidden).")
@click.option("--seq-len", type=click.IntRange(min=1), default=100, show_default=True, help="TBPTT chunk length.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Parallel streams.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True, help="Peak learning rate.")
@click.option("--schedule", type=click.Choice(["cosine", "constant"]), default="cosine", show_default=True)
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after this many steps.")
@click.option("--time", "time_limit", help="Stop after this long, e.g. 90s, 10m, 1h (default 10m if no bound).")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), help="Stop after this many passes.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True)
@click.option("--eval-interval", type=click.IntRange(min=1), default=200, show_default=True, help="Steps between validations.")
@click.option("--log-interval", type=click.IntRange(min=1), default=20, show_default=True, help="Steps between log lines.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp16", "fp32"]), default="auto", show_default=True,
              help="auto: bf16 or fp16 where it runs here and is faster, else fp32.")
@click.option("--encoding", default="utf-8", show_default=True, help="Text encoding of the corpus.")
@click.option("--seed", type=int, default=1337, show_default=True)
@click.pass_context
def train(ctx: click.Context, corpus, out_dir, resume_dir, overwrite, **opts) -> None:
    """Train an LSTM language model (or a variant: --cell) on CORPUS (files or folders of UTF-8 text)."""
    from lstm_repl import runs

    if resume_dir:
        if overwrite:
            raise click.UsageError("--overwrite starts a run over; it cannot go with --resume")
        overrides, restated = _resume_settings(ctx, opts)
        trainer = runs.resumed_run(resume_dir, list(corpus), overrides, restated, out_dir)
    else:
        if not corpus:
            raise click.UsageError("give a corpus: one or more text files or folders (or --resume DIR)")
        config = _train_config(opts)
        out = Path(out_dir) if out_dir else Path("runs") / f"{Path(corpus[0]).stem or 'corpus'}-{config.level}"
        model_args = {name: opts[name] for name in MODEL_FLAGS}
        trainer = runs.new_run(list(corpus), config, model_args, out, overwrite)
    _run_with_display(trainer)


def _train_config(opts: dict):
    from lstm_repl.config import TrainConfig

    time_limit = parse_duration(opts["time_limit"])
    if time_limit is None and opts["max_steps"] is None and opts["epochs"] is None:
        time_limit = 600.0
    names = ("level", "vocab_size", "min_count", "seq_len", "batch_size", "lr", "schedule", "max_steps", "epochs",
             "val_fraction", "eval_interval", "log_interval", "device", "precision", "encoding", "seed")
    return TrainConfig(time_limit_s=time_limit, **{name: opts[name] for name in names})


def _resume_settings(ctx: click.Context, opts: dict) -> tuple[dict, dict]:
    """The flags given with --resume: (bounds and the like, which may change; the run's other
    settings restated, which must equal what the run was started with)."""
    given = {name for name in opts if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    overrides = {name: opts[name] for name in given if name in RESUMABLE_FLAGS}
    if "time_limit" in given:
        overrides["time_limit_s"] = parse_duration(opts["time_limit"])
    restated = {name: opts[name] for name in given - set(RESUMABLE_FLAGS) - {"time_limit"}}
    return overrides, restated


def _run_with_display(trainer) -> None:
    from rich.console import Console

    from lstm_repl.progress import PlainReporter, RichReporter, loss_curve

    reporter = RichReporter(Console(stderr=True)) if sys.stderr.isatty() else PlainReporter(sys.stderr)
    try:
        summary = trainer.run(reporter)
    finally:
        reporter.close()
    metric = "bpc" if trainer.config.level == "char" else "ppl"
    click.echo(
        f"best validation: {summary['best_val_loss']:.4f} nats, {metric} {summary[f'best_val_{metric}']:.3f}"
        f" after {summary['step']} steps; checkpoints in {summary['out_dir']}/best and /last"
    )
    curve = loss_curve(summary["history"])
    if curve:
        click.echo(curve)
