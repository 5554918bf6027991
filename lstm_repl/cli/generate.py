"""lstm-repl generate: stream a continuation of a prompt to stdout."""

from __future__ import annotations

import sys
from typing import Callable

import click

from lstm_repl.cli.options import (
    INTERVENTION_OPTIONS,
    MORE_SAMPLING_OPTIONS,
    SEED,
    SAMPLING,
    TEMPERATURE,
    TOP_P,
    WholeNumber,
    interventions_from,
    with_options,
)

MAX_PIPED_PROMPT = 1 << 20  # bytes: eight times what one command-line argument can hold (--prompt)


@click.command()
@click.argument("ckpt")
@click.option("--prompt", help="Text to continue (default: read from stdin, up to 1 MiB, when it is not a terminal).")
@click.option("--length", type=WholeNumber(min=0), default=500, show_default=True, help="Tokens to generate.")
@click.option("--temperature", type=TEMPERATURE, default=SAMPLING.temperature, show_default=True, help="0 is greedy.")
@click.option("--top-k", type=WholeNumber(min=0), default=SAMPLING.top_k, show_default=True, help="0 keeps all tokens.")
@click.option("--top-p", type=TOP_P, default=SAMPLING.top_p, show_default=True)
@click.option("--seed", type=SEED, help="Same seed and settings (precision included), same text; with --n, "
                                         "sample j's seed is derived from it.")
@with_options(MORE_SAMPLING_OPTIONS)
@click.option("--n", "samples", type=WholeNumber(1, 10_000), default=1, show_default=True,
              help="Samples to write, each headed by its number and seed.")
@click.option("--precision", type=click.Choice(["auto", "fp16", "fp32"]), default="auto", show_default=True,
              help="Weights read per token: fp16 halves the bytes (arithmetic stays fp32); auto picks fp16 "
                   "on CPUs with fbgemm (x86), else fp32, the weights as trained, as `trace` and the shell "
                   "read them. Only the lstm kind has fp16.")
@click.option("--echo/--no-echo", default=True, show_default=True, help="Print the prompt before the continuation.")
@click.option("--raw", is_flag=True,
              help="Write the exact text, control characters and escape sequences included. Without it they "
                   "are shown as \\x1b, U+009B and the like, so no text a model learned can act on the terminal.")
@with_options(INTERVENTION_OPTIONS)
def generate(ckpt, prompt, length, temperature, top_k, top_p, seed, min_p, repeat_penalty, repeat_window, stop,
             samples, precision, echo, raw, clamp, ablate, force) -> None:
    """Generate text from checkpoint CKPT (a folder or a bundled model name)."""
    from lstm_repl.api import load
    from lstm_repl.config import SampleConfig
    from lstm_repl.data.piped_input import binary, read_piped

    model = load(ckpt)
    edits = interventions_from(model.network, clamp, ablate, force)
    if prompt is None and not sys.stdin.isatty():
        prompt = read_piped(binary(sys.stdin), MAX_PIPED_PROMPT, "a prompt is shorter (`lstm-repl repl CKPT` reads "
                            "a piped text of any length and continues it)")
    prompt = prompt or ""
    config = SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p, length=length, seed=seed,
                          stop=stop or None, precision=precision, min_p=min_p, repeat_penalty=repeat_penalty,
                          repeat_window=repeat_window)
    write = _exact_writer() if raw else _safe_writer()
    for index, sample_config in enumerate(sample_configs(config, samples)):
        if samples > 1:
            write(("\n" if index else "") + f"── sample {index + 1} of {samples} · seed {sample_config.seed} ──\n")
        if echo and prompt:
            write(prompt)
        try:
            for piece in model.generate(prompt, sample_config, edits):
                write(piece)
        finally:  # Ctrl-C too: the text so far ends its line
            write("\n")


def sample_configs(config, count: int):
    """`count` configs, the first with the seed given, the others with seeds derived from it (a
    random one when none is given and there are several), so `--seed S --n K` is reproducible."""
    import secrets
    from dataclasses import replace

    from lstm_repl.session.sampling import derived_seed

    if count == 1:
        return [config]
    seed = secrets.randbelow(1 << 63) if config.seed is None else config.seed
    return [replace(config, seed=derived_seed(seed, index)) for index in range(count)]


def _safe_writer() -> Callable[[str], None]:
    """Text as it streams, with anything that could act on a terminal shown visibly."""
    from lstm_repl.terminal_text import terminal_safe

    return lambda text: click.echo(terminal_safe(text), nl=False)  # echo flushes: the text streams as it comes


def _exact_writer() -> Callable[[str], None]:
    """Text as it streams, byte for byte: UTF-8, and surrogateescape for the one source of lone
    surrogates (a --prompt or standard input that is not UTF-8; vocabularies cannot hold them), so
    those bytes come out as they went in."""
    out = sys.stdout.buffer

    def write(text: str) -> None:
        out.write(text.encode("utf-8", "surrogateescape"))
        out.flush()

    return write
