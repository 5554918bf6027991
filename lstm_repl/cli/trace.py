"""lstm-repl trace: every gate, probability and prediction for each token of a text."""

from __future__ import annotations

import click

from lstm_repl.cli.options import INTERVENTION_OPTIONS, interventions_from, with_options


@click.command()
@click.argument("ckpt")
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help="Print the full trace as JSON (docs/trace-format.md).")
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="Next-token predictions per token.")
@click.option("--units", default="0-5", show_default=True, help="Units shown in the table, e.g. 0-7 or 3,17,42.")
@click.option("--layer", type=click.IntRange(min=1), default=1, show_default=True,
              help="Layer shown in the table, 1 = nearest the input (as the shell starts).")
@click.option("--explain", metavar="L:U",
              help="Instead of the table, the equations of unit U of layer L at the last token, with the numbers.")
@with_options(INTERVENTION_OPTIONS)
def trace(ckpt, text, as_json, top_k, units, layer, explain, clamp, ablate, force) -> None:
    """Trace TEXT through checkpoint CKPT, token by token, via the gate path."""
    from lstm_repl.api import load
    from lstm_repl.terminal_text import terminal_json

    model = load(ckpt)
    if not model.vocab.split(text):
        raise click.BadParameter("the text is empty", param_hint="TEXT")
    if explain:
        if clamp or ablate or force:
            raise click.UsageError("--explain shows the equations as the weights have them; it takes no "
                                   "--clamp, --ablate or --force")
        _explain(model, text, explain)
        return
    edits = interventions_from(model.network, clamp, ablate, force)
    document = model.trace(text, top_k, edits).to_json()
    if as_json:
        click.echo(terminal_json(document))
        return
    from lstm_repl.cli.trace_table import print_trace_table

    layers = model.network.config.layers
    chosen_layer = layer - 1
    if chosen_layer >= layers:
        raise click.BadParameter(f"the model has {layers} layers (1-{layers})", param_hint="--layer")
    print_trace_table(document, chosen_layer, parse_units(units, model.network.config.hidden))


def _explain(model, text: str, spec: str) -> None:
    from lstm_repl.errors import ConfigError
    from lstm_repl.terminal_text import terminal_safe

    try:
        explanation = model.explain(text, spec)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--explain") from None
    click.echo(terminal_safe("\n".join(explanation.lines())))


def parse_units(text: str, hidden: int) -> list[int]:
    from lstm_repl.errors import ConfigError
    from lstm_repl.session.intervention_parser import parse_unit_list

    try:
        chosen = parse_unit_list(text, hidden)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--units") from None
    if not chosen:
        raise click.BadParameter(f"units must be between 0 and {hidden - 1}", param_hint="--units")
    return chosen
