"""lstm-repl info: what a checkpoint holds and how it was trained."""

from __future__ import annotations

import click


@click.command()
@click.argument("ckpt")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def info(ckpt, as_json) -> None:
    """Model config, parameters, vocabulary, corpus, training time, device and metrics of CKPT."""
    from lstm_repl import checkpoint
    from lstm_repl.describe import describe, print_description
    from lstm_repl.terminal_text import terminal_json

    loaded = checkpoint.load(ckpt)
    description = describe(loaded)
    if as_json:
        click.echo(terminal_json(description, indent=1))
    else:
        print_description(description)
