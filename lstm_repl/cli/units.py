"""lstm-repl units / saturation / heatmap: what the units of a model do, on a text of your own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lstm_repl.analysis.features import FEATURES
from lstm_repl.terminal_text import terminal_line

if TYPE_CHECKING:
    from lstm_repl.analysis.heatmap import Band

LIMIT_HELP = "Read at most this many characters of the text (0: all of it)."


def _read(files: tuple[str, ...], limit: int) -> str:
    """The text of FILES, or only as much of it as --limit takes (0: all)."""
    from lstm_repl.data.corpus import read_head

    return read_head(list(files), limit)


def _write_json(path: Path, document: dict) -> None:
    try:
        path.write_text(json.dumps(document, indent=1), "utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {path} ({exc.strerror}); choose another file") from None


@click.command()
@click.argument("ckpt")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--feature", help="A built-in feature: " + ", ".join(FEATURES) + ".")
@click.option("--regex", help="Characters inside a match of this pattern are the feature.")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Units listed.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write every unit's score here.")
@click.option("--save", is_flag=True, help="Keep the best units as labels beside the checkpoint (units.json).")
@click.option("--limit", type=click.IntRange(min=0), default=0, help=LIMIT_HELP)
def units(ckpt, files, feature, regex, top, json_out, save, limit) -> None:
    """Score every unit of every layer of CKPT against a feature of the text in FILES.

    Binary features by AUROC (1.0: the unit is always higher inside the feature than outside;
    units that are low inside are listed with 1 - AUROC), numeric ones by correlation.
    """
    from lstm_repl.api import load
    from lstm_repl.analysis.features import find_feature, regex_feature
    from lstm_repl.training.run_records import recorded_name
    from lstm_repl.analysis.unit_labels import save_labels
    from lstm_repl.cli.unit_views import ranking_lines

    if bool(feature) == bool(regex):
        raise click.UsageError("give one of --feature NAME or --regex PATTERN")
    chosen = regex_feature(regex) if regex else find_feature(feature)
    model = load(ckpt)
    text = _read(files, limit)
    result = model.unit_scores(text, chosen)
    share = f"; {result.positives / max(result.tokens, 1):.1%} of tokens inside" if chosen.binary else ""
    click.echo(terminal_line(f"{model.name} on {len(text):,} characters ({result.tokens:,} tokens): "
                             f"{chosen.name}, {chosen.describe}{share}"))
    ranking = result.ranked()
    click.echo("\n".join(ranking_lines(ranking, chosen.binary, top)))
    if json_out:
        _write_json(json_out, _scores_document(model.name, chosen, result, len(text)))
        click.echo(terminal_line(f"every unit's score: {json_out}"))
    if save:
        names = ", ".join(recorded_name(f) for f in files)  # a checkpoint is shared: no path of this machine
        path = save_labels(model.path, chosen, ranking, f"{len(text):,} characters of {names}")
        click.echo(terminal_line(f"labels saved: {path}"))


def _scores_document(model: str, feature, result, characters: int) -> dict:
    return {
        "model": model, "feature": feature.name, "description": feature.describe,
        "metric": "auroc" if feature.binary else "pearson_r", "characters": characters, "tokens": result.tokens,
        "positives": result.positives,
        "layers": [
            {symbol: [None if v != v else round(float(v), 5) for v in values]
             for (layer, symbol), values in sorted(result.scores.items()) if layer == index}
            for index in sorted({layer for layer, _ in result.scores})
        ],
    }


@click.command()
@click.argument("ckpt")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write every unit's fractions here.")
@click.option("--limit", type=click.IntRange(min=0), default=0, help=LIMIT_HELP)
def saturation(ckpt, files, json_out, limit) -> None:
    """How often each gate unit of CKPT is saturated on the text in FILES: the share of tokens
    below 0.1 (left) and above 0.9 (right), one plot per gate, as Karpathy et al. (2015) fig. 3."""
    from lstm_repl.model import checkpoint
    from lstm_repl.analysis.unit_search import saturation as measure
    from lstm_repl.cli.unit_views import scatter_lines

    loaded = checkpoint.load(ckpt)
    text = _read(files, limit)
    fractions = measure(loaded.model, loaded.vocab, text)
    layers = loaded.model.config.layers
    names = {q.symbol: q.name for q in loaded.model.rnn.quantities}
    click.echo(terminal_line(f"{loaded.name} on {len(text):,} characters"))
    for symbol in dict.fromkeys(symbol for _, symbol in fractions):
        per_layer = [fractions[(layer, symbol)] for layer in range(layers)]
        means = ", ".join(f"layer {k + 1}: {left.mean():.0%} left, {right.mean():.0%} right"
                          for k, (left, right) in enumerate(per_layer))
        click.echo("")
        click.echo("\n".join(scatter_lines(per_layer, f"{names[symbol]} {symbol} ({means})")))
    if json_out:
        _write_json(json_out, {"model": loaded.name, "characters": len(text), "thresholds": [0.1, 0.9], "layers": [
            {symbol: {"left": np_round(fractions[(layer, symbol)][0]), "right": np_round(fractions[(layer, symbol)][1])}
             for (k, symbol) in fractions if k == layer} for layer in range(layers)]})
        click.echo(terminal_line(f"every unit's fractions: {json_out}"))


def np_round(values) -> list[float]:
    return [round(float(v), 5) for v in values]


@click.command()
@click.argument("ckpt")
@click.argument("file", type=click.Path())
@click.option("--unit", "units", multiple=True, required=True, help="LAYER:UNIT, layer 1 nearest the input; repeat.")
@click.option("--quantity", default="c", show_default=True, help="Which quantity: c, h or a gate (f, i, o, g, ...).")
@click.option("--out", type=click.Path(path_type=Path), help="Write a self-contained HTML page here.")
@click.option("--terminal", is_flag=True, help="Draw the heatmap here, in colour.")
@click.option("--limit", type=click.IntRange(min=1), default=3000, show_default=True,
              help="Characters of the text shown.")
def heatmap(ckpt, file, units, quantity, out, terminal, limit) -> None:
    """The text of FILE with each character coloured by a unit's value, one band per unit."""
    from lstm_repl.model import checkpoint

    if not out and not terminal:
        raise click.UsageError("give --out page.html, --terminal, or both")
    loaded = checkpoint.load(ckpt)
    chosen = [_parse_unit(u, loaded.model.config.layers, loaded.model.config.hidden) for u in units]
    symbols = [q.symbol for q in loaded.model.rnn.quantities]
    if quantity not in symbols:
        raise click.BadParameter(f"this {loaded.model.rnn.name} has {', '.join(symbols)}", param_hint="--quantity")
    text = _read((file,), limit)
    bands = _bands(loaded, text, chosen, quantity)
    if out:
        from lstm_repl.analysis.heatmap import html_page

        title = f"{loaded.name}: {quantity} of {', '.join(units)} on {Path(file).name}"
        try:
            out.write_text(html_page(text, bands, title), "utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {out} ({exc.strerror}); choose another file") from None
        click.echo(terminal_line(f"heatmap: {out}"))
    if terminal:
        from rich.console import Console

        console = Console(highlight=False)
        for line in terminal_lines(text, bands):
            console.print(line, soft_wrap=True)


def _parse_unit(spec: str, layers: int, hidden: int) -> tuple[int, int]:
    from lstm_repl.errors import ConfigError
    from lstm_repl.session.intervention_parser import parse_layer_unit

    try:
        return parse_layer_unit(spec, layers, hidden)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--unit") from None


def _bands(loaded, text: str, chosen: list[tuple[int, int]], quantity: str):
    import numpy as np

    from lstm_repl.analysis.heatmap import Band, per_character
    from lstm_repl.analysis.unit_labels import read_labels
    from lstm_repl.analysis.unit_search import unit_values

    tokens, values = unit_values(loaded.model, loaded.vocab, text, chosen, quantity)
    q = next(q for q in loaded.model.rnn.quantities if q.symbol == quantity)
    signed = q.low < 0
    labels = read_labels(loaded.path)
    bands = []
    for (layer, unit), row in zip(chosen, values):
        shown = np.tanh(row) if quantity == "c" else row
        label = labels.get((layer, unit))
        title = f"layer {layer + 1} unit {unit} · {q.name} {quantity}" + (f" · {label}" if label else "")
        bands.append(Band(title, per_character(shown, tokens.ends, len(text)), signed))
    return bands


def terminal_lines(text: str, bands: list[Band]):
    """rich Text lines: per band a title (its label is data: shown safely), then the text with
    coloured backgrounds, a character that is not printable shown as ·."""
    from rich.text import Text

    from lstm_repl.analysis.heatmap import VISIBLE_NEWLINE, colour

    for band in bands:
        yield Text(terminal_line(band.title), style="bold")
        line = Text()
        for ch, value in zip(text, band.values.tolist()):
            r, g, b = colour(value, band.signed)
            style = f"black on rgb({r},{g},{b})"
            if ch == "\n":
                line.append(VISIBLE_NEWLINE, style)
                yield line
                line = Text()
            else:
                line.append(ch if ch.isprintable() else "·", style)
        if line:
            yield line
        yield Text("")
