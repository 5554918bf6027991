"""lstm-repl eval: score a checkpoint on a corpus of the user's."""

from __future__ import annotations

import json

import click

from lstm_repl.cli.options import FiniteFloat
from lstm_repl.config import DynamicConfig


@click.command("eval")
@click.argument("ckpt")
@click.argument("corpus", nargs=-1, required=True, type=click.Path())
@click.option("--encoding", default="utf-8", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--dynamic", is_flag=True,
              help="Dynamic evaluation: the model learns from each segment after scoring it (Krause et al. 2018).")
@click.option("--dynamic-lr", type=FiniteFloat(min=0), default=DynamicConfig.lr, show_default=True,
              help="With --dynamic: the step, in units of each weight's gradient rms.")
@click.option("--decay", type=FiniteFloat(0, 1), default=DynamicConfig.decay, show_default=True,
              help="With --dynamic: the pull back toward the trained weights, per segment (0 to 1).")
@click.option("--segment", type=int, default=DynamicConfig.segment, show_default=True,
              help="With --dynamic: tokens scored, then learned from, at a time.")
def evaluate(ckpt, corpus, encoding, as_json, dynamic, dynamic_lr, decay, segment) -> None:
    """Bits per character and perplexity per word of CKPT on CORPUS (for char and word models
    alike, so they compare), the loss per token, the unknown-token rate, and speed.

    --dynamic reads CORPUS once, start to end, a segment at a time: each segment is scored, then
    the weights take a step on it and decay toward the trained ones. It prints the same figures
    for the same segments read without learning beside them."""
    from lstm_repl.api import load
    from lstm_repl.data.corpus import read_corpus

    config = DynamicConfig(lr=dynamic_lr, decay=decay, segment=segment) if dynamic else None
    model = load(ckpt)
    text = read_corpus(list(corpus), encoding).text
    if config is not None:
        _dynamic(model, text, config, as_json)
        return
    result = model.evaluation(text)
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


def _dynamic(model, text: str, config: DynamicConfig, as_json: bool) -> None:
    from lstm_repl.training.dynamic_eval import dynamic_evaluate

    static = dynamic_evaluate(model.network, model.vocab, text, config, learn=False)
    result = dynamic_evaluate(model.network, model.vocab, text, config)
    result["without_learning"] = {key: static[key] for key in ("loss_nats", "bits_per_character",
                                                                "perplexity_per_word")}
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"dynamic evaluation ({config.describe()}): {result['bits_per_character']:.4f} bits per character, "
               f"perplexity {result['perplexity_per_word']:.2f} per word")
    click.echo(f"the same segments without learning: {static['bits_per_character']:.4f} bits per character, "
               f"perplexity {static['perplexity_per_word']:.2f} per word "
               f"(gain {static['bits_per_character'] - result['bits_per_character']:+.4f} bits per character)")
    click.echo(f"{result['tokens_scored']:,} tokens ({result['characters_scored']:,} characters) scored, each "
               f"before learning from it; the weights moved {result['weights_moved']:.2%} from the trained ones")
