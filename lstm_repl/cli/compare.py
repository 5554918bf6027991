"""lstm-repl compare: train several cell kinds alike and print one table of size, speed and quality."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lstm_repl.cells import cell_kinds
from lstm_repl.cli.options import TRAINING_OPTIONS, parse_duration, split_settings, with_options

DEFAULT_TIME_S = 120.0  # per kind, with no --time and no --steps


@click.command()
@click.argument("corpus", nargs=-1, required=True, type=click.Path())
@click.option("--cells", default=",".join(cell_kinds()), show_default=True, help="Comma-separated cell kinds to train.")
@click.option("--time", "time_limit", help="Training time per kind, e.g. 90s, 2m (default 2m if no --steps).")
@click.option("--steps", "max_steps", type=click.IntRange(min=1), help="Training steps per kind.")
@click.option("--match-params", is_flag=True,
              help="Give every kind the LSTM's parameter count (at --hidden) instead of its hidden size.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Keep the runs in DIR/<cell>/ (open one with: lstm-repl repl DIR/<cell>).")
@click.option("--overwrite", is_flag=True, help="Replace runs already in the --out folders.")
@with_options(TRAINING_OPTIONS)
@click.pass_context
def compare(ctx, corpus, cells, time_limit, max_steps, match_params, out_dir, overwrite, **opts) -> None:
    """Train each cell kind on CORPUS for the same time (or steps) and compare them in one table."""
    from lstm_repl.training.kinds_compared import compare as run_compare
    from lstm_repl.training.kinds_compared import parse_cells
    from lstm_repl.config import TrainConfig

    kinds = parse_cells(cells)
    seconds = parse_duration(time_limit)
    if seconds is None and max_steps is None:
        seconds = DEFAULT_TIME_S
    settings, model_args = split_settings(opts)
    model_args.pop("cell", None)
    if ctx.get_parameter_source("log_interval") != click.core.ParameterSource.COMMANDLINE:
        # a few speed windows
        settings["log_interval"] = max(1, min(20, (max_steps or 100) // 4, opts["eval_interval"]))
    config = TrainConfig(time_limit_s=seconds, max_steps=max_steps, **settings)
    display = _Display(len(kinds))
    try:
        results = run_compare(list(corpus), kinds, config, model_args, match_params,
                              Path(out_dir) if out_dir else None, overwrite, display)
    finally:
        display.close()
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped or captured: wide enough that no column is cut
        console = Console(width=120)
    console.print(compare_table(results, config, match_params))
    if out_dir:
        from lstm_repl.terminal_text import terminal_line

        click.echo(terminal_line(f"runs kept in {out_dir}/<cell>; open one with: lstm-repl repl {out_dir}/{kinds[0]}"))


def compare_table(results, config, match_params: bool):
    """One row per kind, as a rich Table. A pure function of the results."""
    from rich.table import Table

    bound = f"{config.max_steps} steps" if config.max_steps else f"{config.time_limit_s:g}s"
    table = Table(title=f"{len(results)} cells, {bound} each, same data and seed", header_style="bold",
                  caption="×rnn: recurrent parameters (biases included) / the plain RNN's at the same hidden size"
                          + ("; matched: / the RNN's at its own matched size" if match_params else "")
                          + ". tok/s: median over the log windows after the first (warm-up excluded)")
    table.add_column("cell", no_wrap=True)
    table.add_column("hidden", justify="right")
    table.add_column("params", justify="right")
    table.add_column("recurrent", justify="right")
    table.add_column("×rnn", justify="right")
    if match_params:
        table.add_column("matched", justify="right")
    table.add_column("steps", justify="right")
    table.add_column("tok/s", justify="right")
    table.add_column("val bpc", justify="right")
    table.add_column("val ppl/word", justify="right")
    best = min(r.best_val_loss for r in results)
    for r in results:
        figures = [f"{r.best_val_bpc:.3f}", f"{r.best_val_ppl_word:.1f}"]
        row = [r.cell, str(r.hidden), f"{r.parameters:,}", f"{r.recurrent:,}", f"{r.ratio:.2f}"]
        if match_params:
            row.append(f"{r.ratio_matched:.2f}")
        row += [str(r.steps), f"{r.tokens_per_s:,.0f}",
                *([f"[bold]{f}[/]" for f in figures] if r.best_val_loss == best else figures)]
        table.add_row(*row)
    return table


class _Display:
    """Progress on stderr: a live bar per kind on a terminal, a line per kind otherwise."""

    def __init__(self, count: int):
        self.count, self.done, self.reporter = count, 0, None

    def __call__(self, event) -> None:
        if event.kind == "plan":
            sizes = ", ".join(f"{p.cell} {p.hidden}" for p in event.plans)
            click.echo(f"hidden sizes: {sizes}", err=True)
        elif event.kind == "start":
            click.echo(f"[{self.done + 1}/{self.count}] training {event.cell}", err=True)
            if sys.stderr.isatty():
                from rich.console import Console

                from lstm_repl.cli.progress import RichReporter

                self.reporter = RichReporter(Console(stderr=True))
        elif event.kind == "train" and self.reporter is not None:
            self.reporter(event.train_event)
        elif event.kind == "result":
            self.close()
            self.done += 1
            r = event.result
            click.echo(f"      {r.cell}: {r.steps} steps, {r.tokens_per_s:,.0f} tok/s, "
                       f"best val loss {r.best_val_loss:.4f}", err=True)

    def close(self) -> None:
        if self.reporter is not None:
            self.reporter.close()
            self.reporter = None
