"""lstm-repl eval: score a checkpoint on a corpus of the user's."""

from __future__ import annotations

import json

import click


@click.command("eval")
@click.argument("ckpt")
@click.argument("corpus", nargs=-1, required=True, type=click.Path())
@click.option("--encoding", default="utf-8", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def evaluate(ckpt, corpus, encoding, as_json) -> None:
    """Bits per character and perplexity per word of CKPT on CORPUS (for char and word models
    alike, so they compare), the loss per token, the unknown-token rate, and speed."""
    from lstm_repl.api import load
    from lstm_repl.data.corpus import read_corpus

    model = load(ckpt)
    result = model.evaluation(read_corpus(list(corpus), encoding).text)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"loss {result['loss_nats']:.4f} nats per token   {result['bits_per_character']:.4f} bits per "
               f"character   perplexity {result['perplexity_per_word']:.2f} per word")
    if "perplexity" in result:
        click.echo(f"word level: perplexity {result['perplexity']:.2f} per token (spaces counted as tokens)")
    click.echo(f"{result['tokens_scored']:,} tokens ({result['characters_scored']:,} characters, "
               f"{result['words_scored']:,} words) scored at {result['tokens_per_s']:,.0f} tokens/s")
    click.echo(
        f"unknown tokens: {result['unknown_tokens']:,} of {result['tokens']:,} ({result['unknown_fraction']:.2%})"
        + ("  (characters or words the model never saw in training)" if result["unknown_tokens"] else "")
    )
    if result.get("bits_per_character_is_lower_bound"):
        click.echo("bits per character is a lower bound here: an unknown word costs one <unk>, not its spelling")
