"""lstm-repl info: what a checkpoint holds and how it was trained."""

from __future__ import annotations

import click


@click.command()
@click.argument("ckpt")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def info(ckpt, as_json) -> None:
    """Model config, parameters, vocabulary, corpus, training time, device and metrics of CKPT."""
    from lstm_repl.model import checkpoint
    from lstm_repl.model.describe import describe
    from lstm_repl.terminal_text import terminal_json

    loaded = checkpoint.load(ckpt)
    description = describe(loaded)
    if as_json:
        click.echo(terminal_json(description, indent=1))
    else:
        print_description(description)


def print_description(d: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from lstm_repl.model.describe import description_rows

    console = Console()
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in description_rows(d):
        table.add_row(name, Text(value))  # a Text: a folder named [/x] is not markup
    console.print(table)
