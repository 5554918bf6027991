"""lstm-repl export: bundle a trained run as a model folder with a model card."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.argument("dest", type=click.Path())
@click.option("--command", "command", required=True, help="The exact command that trained it (for the card).")
@click.option("--prompt", default="", help="Prompt for the card's sample.")
@click.option("--onnx", is_flag=True, help="Also write model.onnx: the one-token step, its state (h, c per layer) "
                                          "an input and an output (needs the onnx extra).")
def export(run, dest, command, prompt, onnx) -> None:
    """Copy RUN's best checkpoint to DEST with a model card (README.md).

    DEST must be a new or empty folder, or hold exactly an earlier export, which is replaced."""
    from lstm_repl.training.modelcard import export_run
    from lstm_repl.terminal_text import terminal_line

    path = export_run(Path(run), Path(dest), command, prompt, onnx)
    click.echo(terminal_line(f"exported {path}"))
