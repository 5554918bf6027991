"""lstm-repl repl (and lstm-repl with no command): the interactive shell."""

from __future__ import annotations

import sys

import click

DEFAULT_MODEL = "shakespeare-char"

shell_options = [
    click.option("--temperature", type=click.FloatRange(min=0), default=0.8, show_default=True, help="0 is greedy."),
    click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True),
    click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True),
    click.option("--length", type=click.IntRange(min=1), default=200, show_default=True, help="Tokens Enter streams."),
    click.option("--seed", type=int, help="Seed the sampler."),
]


def with_shell_options(fn):
    for option in reversed(shell_options):
        fn = option(fn)
    return fn


@click.command()
@click.argument("ckpt", default=DEFAULT_MODEL)
@with_shell_options
def repl(ckpt, **settings) -> None:
    """Open the interactive shell on CKPT (a folder or a bundled model; default shakespeare-char)."""
    open_shell(ckpt, **settings)


def open_shell(ckpt: str = DEFAULT_MODEL, temperature=0.8, top_k=0, top_p=1.0, length=200, seed=None) -> None:
    from lstm_repl import checkpoint
    from lstm_repl.session import Session, Settings

    loaded = checkpoint.load(ckpt)
    session = Session(loaded, Settings(temperature=temperature, top_k=top_k, top_p=top_p, length=length, seed=seed))
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        from lstm_repl.repl.plain import run_plain

        run_plain(session, sys.stdin, sys.stdout)
        return
    from lstm_repl.repl.app import ShellApp
    from lstm_repl.repl.commands import Shell

    ShellApp(Shell(session, load_checkpoint=checkpoint.load)).run()
