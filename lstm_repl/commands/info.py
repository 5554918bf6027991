"""lstm-repl info: what a checkpoint holds and how it was trained."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("ckpt")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def info(ckpt, as_json) -> None:
    """Model config, parameters, vocabulary, corpus, training time, device and metrics of CKPT."""
    from lstm_repl import checkpoint
    from lstm_repl.describe import describe, print_description

    loaded = checkpoint.load(ckpt)
    description = describe(loaded)
    if as_json:
        click.echo(json.dumps(description, ensure_ascii=False, indent=1))
    else:
        print_description(description)
