"""The readable form of a trace: one row per token, each gate of a few units of one layer stacked.
Tokens are data: shown by visible_token, and handed to rich as Text, never as markup."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from lstm_repl.terminal_text import visible_token


def print_trace_table(document: dict, layer: int, units: list[int], console: Console | None = None) -> None:
    console = console or Console()
    quantities = document["quantities"]
    fit = max(1, (console.width - 50) // 9)
    if len(units) > fit:
        console.print(f"[dim]showing {fit} of {len(units)} units to fit {console.width} columns[/]")
        units = units[:fit]
    legend = ", ".join(f"{q['symbol']} {q['name']}" for q in quantities)
    title = f"layer {layer + 1} of {document['layers']}: {legend}"
    table = Table(title=title, header_style="bold", show_lines=True)
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column("token", no_wrap=True)
    table.add_column("p", justify="right", no_wrap=True)
    table.add_column("bits", justify="right", no_wrap=True)
    table.add_column("next top 3", no_wrap=True)
    table.add_column("", style="bold")
    for unit in units:
        table.add_column(f"u{unit}", justify="right", no_wrap=True)
    symbols = "\n".join(q["symbol"] for q in quantities)
    for token in document["tokens"]:
        values = token["layers"][layer]
        p = "" if token["probability"] is None else f"{token['probability']:.3f}"
        bits = "" if token["surprisal_bits"] is None else f"{token['surprisal_bits']:.2f}"
        top = "\n".join(f"{visible_token(t['text'])} {t['probability']:.2f}" for t in token["top"][:3])
        cells = ["\n".join(f"{values[q['symbol']][u]:+.2f}" for q in quantities) for u in units]
        row = [str(token["index"]), visible_token(token["text"]), p, bits, top, symbols, *cells]
        table.add_row(*map(Text, row))
    console.print(table)
    mean = document["mean_surprisal_bits"]
    if mean is not None:
        console.print(f"mean surprisal {mean:.3f} bits per token over {len(document['tokens']) - 1} predicted tokens")
