"""lstm-repl repl (and lstm-repl with no command): the interactive shell."""

from __future__ import annotations

import sys

import click

from lstm_repl.cli.options import SAMPLING, SHELL_OPTIONS, with_options

DEFAULT_MODEL = "shakespeare-char"


@click.command()
@click.argument("ckpt", default=DEFAULT_MODEL)
@with_options(SHELL_OPTIONS)
@click.option("--record", "record_path", type=click.Path(dir_okay=False),
              help="Record the session into this file (lstm-repl replay plays it back).")
@click.option("--follow", is_flag=True,
              help="CKPT is a training run: load its newest best/ whenever training writes one.")
@click.option("--learn", is_flag=True,
              help="Learn from what is typed and pasted as it is read (:learn on); :learn reset undoes it.")
def repl(ckpt, record_path, follow, learn, **settings) -> None:
    """Open the interactive shell on CKPT (a folder or a bundled model; default shakespeare-char)."""
    open_shell(ckpt, record_path=record_path, follow=follow, learn=learn, **settings)


def open_shell(ckpt: str = DEFAULT_MODEL, temperature=SAMPLING.temperature, top_k=SAMPLING.top_k,
               top_p=SAMPLING.top_p, length=SAMPLING.length, seed=SAMPLING.seed, record_path: str | None = None,
               follow: bool = False, learn: bool = False) -> None:
    from lstm_repl.model import checkpoint
    from lstm_repl.config import SampleConfig
    from lstm_repl.session.session import Session, Settings

    loaded = checkpoint.load(ckpt)
    settings = Settings(SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p, length=length, seed=seed))
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        if record_path or follow:
            flag = "--record" if record_path else "--follow"
            raise click.UsageError(f"{flag} needs the interactive shell (a terminal); without one the shell "
                                   "reads its input and writes one continuation")
        from lstm_repl.data.piped_input import binary
        from lstm_repl.shell.plain import run_plain

        run_plain(loaded.model, loaded.vocab, settings, binary(sys.stdin), sys.stdout)
        return
    session = Session(loaded, settings)
    from lstm_repl.shell.app import ShellApp
    from lstm_repl.shell.colon_commands import Shell

    app = ShellApp(Shell(session, load_checkpoint=checkpoint.load))
    if follow:
        from lstm_repl.shell.follow import Follower

        Follower(app).attach()
    if learn:
        app.message = app.learning.start()  # before recording: a recording's start says it
    if record_path:
        app.message = app.recording.record(record_path)
    app.run()
