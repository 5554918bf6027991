"""lstm-repl corpus: list the corpora the tool can obtain, and build one as a plain UTF-8 text file."""

from __future__ import annotations

from pathlib import Path

import click

STATUS_LABELS = {"ok": "yes", "missing": "no", "differs": "yes, differs"}


@click.group()
def corpus() -> None:
    """Corpora to train on, built from a package registry or this machine (see corpora/README.md)."""


@corpus.command("list")
def list_corpora() -> None:
    """List the corpora: size, licence, source, and whether each is here."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from lstm_repl.data import catalogue as corpora
    from lstm_repl.terminal_text import terminal_line

    catalogue = corpora.load_catalogue()
    folder = corpora.corpora_dir()
    table = Table(caption=Text(terminal_line(f"corpora folder: {folder}"), style="table.caption"),
                  caption_justify="left")  # a Text: the folder ($LSTM_REPL_CORPORA) is not markup
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("licence")
    table.add_column("source")
    table.add_column("here", no_wrap=True)
    for entry in catalogue.values():
        status = corpora.file_status(entry, folder / entry.file)
        table.add_row(entry.name, human_size(entry.bytes), entry.licence, entry.source, STATUS_LABELS[status])
    Console().print(table)


@corpus.command("get")
@click.argument("name")
@click.option("--out", type=click.Path(path_type=Path), help="Write here instead (a file, or a folder to put it in).")
def get(name: str, out: Path | None) -> None:
    """Build corpus NAME as a UTF-8 text file and check its sha256.

    Progress goes to stderr and the file's path is the last line on stdout:
    lstm-repl train $(lstm-repl corpus get shakespeare | tail -1)
    """
    from lstm_repl.data import catalogue as corpora

    entry = corpora.find(corpora.load_catalogue(), name)
    result = corpora.materialise(entry, out, progress=lambda message: _say(f"{entry.name}: {message}"))
    _report(entry, result)
    click.echo(str(result.path))


def _report(entry, result) -> None:
    if not result.built:
        _say(f"{entry.name}: {result.path} is already there with the recorded sha256; nothing to do")
        return
    for note in result.notes:
        _say(f"warning: {entry.name}: {note}")
    if result.matches:
        _say(f"{entry.name}: wrote {result.bytes:,} bytes; sha256 {result.sha256} verified")
    else:
        _say(f"warning: {entry.name}: wrote {result.bytes:,} bytes with sha256 {result.sha256}, "
             f"but the catalogue records {entry.sha256} ({entry.bytes:,} bytes)")


def _say(message: str) -> None:
    click.echo(message, err=True)


def human_size(size: int) -> str:
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    return f"{size / 1_000:.0f} kB"
