"""lstm-repl repl (and lstm-repl with no command): the interactive shell."""

from __future__ import annotations

import sys

import click

from lstm_repl.cli.options import SHELL_OPTIONS, with_options

DEFAULT_MODEL = "shakespeare-char"
PROMPT_FILE_LIMIT = 16 << 20  # bytes, as :open reads a text


@click.command()
@click.argument("ckpt", required=False)
@with_options(SHELL_OPTIONS)
@click.option("--prompt-file", type=click.Path(dir_okay=False),
              help="Start with this file's text read in, as a paste (UTF-8, up to 16 MiB).")
@click.option("--session", "session_file", type=click.Path(dir_okay=False),
              help="Restore a session :save wrote: its text, settings, layer, pinned units and interventions "
                   "(on its own model unless CKPT is given; sampling options given here win).")
@click.option("--record", "record_path", type=click.Path(dir_okay=False),
              help="Record the session into this file (lstm-repl replay plays it back).")
@click.option("--follow", is_flag=True,
              help="CKPT is a training run: load its newest best/ whenever training writes one.")
@click.option("--learn", is_flag=True,
              help="Learn from what is typed and pasted as it is read (:learn on); :learn reset undoes it.")
@click.pass_context
def repl(ctx, ckpt, record_path, follow, prompt_file, session_file, learn, **sampling) -> None:
    """Open the interactive shell on CKPT (a folder or a bundled model; default shakespeare-char)."""
    from click.core import ParameterSource

    given = {name for name in sampling if ctx.get_parameter_source(name) != ParameterSource.DEFAULT}
    open_shell(ckpt, record_path=record_path, follow=follow, prompt_file=prompt_file, session_file=session_file,
               learn=learn, given=given, **sampling)


def open_shell(ckpt: str | None = None, record_path: str | None = None, follow: bool = False,
               prompt_file: str | None = None, session_file: str | None = None, learn: bool = False,
               given: set[str] | None = None, **sampling) -> None:
    """sampling: SampleConfig's fields, as SHELL_OPTIONS give them (`given`: those set on the
    command line, which win over a restored session's)."""
    from lstm_repl.config import SampleConfig
    from lstm_repl.model import checkpoint
    from lstm_repl.session.session import Session, Settings

    saved = _saved_session(session_file)
    loaded = checkpoint.load(ckpt or (_saved_model(saved) if saved else DEFAULT_MODEL))
    settings = Settings(SampleConfig(**{**sampling, "stop": tuple(sampling.get("stop") or ()) or None}))
    prompt = _prompt_text(prompt_file)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        if record_path or follow or saved:
            flag = "--record" if record_path else "--follow" if follow else "--session"
            raise click.UsageError(f"{flag} needs the interactive shell (a terminal); without one the shell "
                                   "reads its input and writes one continuation")
        from lstm_repl.data.piped_input import binary
        from lstm_repl.shell.plain import run_plain

        run_plain(loaded.model, loaded.vocab, settings, binary(sys.stdin), sys.stdout, prompt)
        return
    from lstm_repl.shell.app import ShellApp
    from lstm_repl.shell.shell_state import Shell

    shell = Shell(Session(loaded, settings), load_checkpoint=checkpoint.load)
    message = _restore(shell, saved, settings, given or set()) if saved else None
    app = ShellApp(shell)
    if saved:
        app.print_above(shell.history)
        app.message = message
    if prompt:
        app.reader.paste(prompt)
        app.typing.sync()
    if follow:
        from lstm_repl.shell.follow import Follower

        Follower(app).attach()
    if learn:
        app.message = app.learning.start()  # before recording: a recording's start says it
    if record_path:
        app.message = app.recording.record(record_path)
    app.run()


def _saved_session(path: str | None):
    if path is None:
        return None
    from lstm_repl.shell.session_file import read_session

    return read_session(path)


def _saved_model(saved) -> str:
    """Where the session's model was loaded from, if it is still there; else its name."""
    from pathlib import Path

    return saved.model.path if Path(saved.model.path).is_dir() else saved.model.name


def _restore(shell, saved, settings, given: set[str]) -> str:
    """The saved session restored, then the sampling options given on the command line over it."""
    from dataclasses import replace

    from lstm_repl.shell.session_file import restore

    message = restore(shell, saved)
    if given:
        session = shell.session
        chosen = {name: getattr(settings.sampling, name) for name in given}
        session.settings = replace(session.settings, sampling=replace(session.settings.sampling, **chosen))
        session.reseed(session.settings.sampling.seed)
    return message


def _prompt_text(path: str | None) -> str:
    if path is None:
        return ""
    from lstm_repl.errors import LstmReplError
    from lstm_repl.safe_read import read_text

    return read_text(path, PROMPT_FILE_LIMIT, LstmReplError, "prompt file (a UTF-8 text)")
