"""The command line. The only place that turns library errors into one-line messages."""

from __future__ import annotations

import errno
import re
import sys

import click

from lstm_repl import __version__
from lstm_repl.cli.options import SHELL_OPTIONS, with_options
from lstm_repl.cli.repl import DEFAULT_MODEL, open_shell
from lstm_repl.errors import LstmReplError, TrainingInterrupted
from lstm_repl.terminal_text import terminal_line


class OneLineErrors(click.Group):
    """Every error a user can cause ends as one line on stderr and a non-zero exit, no traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name or "lstm-repl", complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            _fail(_click_message(exc), exc.exit_code)
        except click.exceptions.Abort:
            _fail("aborted", 130)
        except TrainingInterrupted as exc:
            _fail(str(exc), 130)
        except LstmReplError as exc:
            _fail(str(exc), 1)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except MemoryError:
            _fail(_OUT_OF_MEMORY.format(size=""), 1)
        except RuntimeError as exc:  # torch reports a failed allocation as a RuntimeError
            if not _allocation_failed(exc):
                raise
            _fail(_OUT_OF_MEMORY.format(size=_allocation_size(exc)), 1)
        except BrokenPipeError:
            sys.stderr.close()
            sys.exit(1)
        except OSError as exc:
            if getattr(exc, "errno", None) == 28:
                _fail(f"the disk is full ({exc.filename or 'writing'}); free some space and retry", 1)
            if getattr(exc, "errno", None) in _PATH_ERRORS and exc.filename:
                _fail(f"{_shorter(str(exc.filename))}: {exc.strerror}; give another path", 1)
            raise
        sys.exit(code if isinstance(code, int) else 0)


_PATH_ERRORS = (errno.ENAMETOOLONG, errno.ELOOP)  # a path given that no filesystem call can take


def _shorter(text: str) -> str:
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text):,} characters)"


_OUT_OF_MEMORY = ("not enough memory{size}; use a smaller model (--hidden, --layers, --embed), "
                  "--batch-size or --seq-len, or a shorter text")
_ALLOCATION_FAILURES = ("DefaultCPUAllocator", "can't allocate memory", "not enough memory", "out of memory")


def _allocation_failed(exc: RuntimeError) -> bool:
    return any(words in str(exc) for words in _ALLOCATION_FAILURES)


def _allocation_size(exc: RuntimeError) -> str:
    found = re.search(r"allocate (\d+) bytes", str(exc))
    return f" (it asked for {int(found.group(1)):,} bytes)" if found else ""


def _click_message(exc: click.ClickException) -> str:
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    hint = f" (see {ctx.command_path} --help)" if isinstance(exc, click.UsageError) and ctx is not None else ""
    return f"{where}{message}{hint}".replace("\n", " ")


def _fail(message: str, code: int) -> None:
    """The one line: file names, model names and tokens in it are data, shown safely."""
    click.echo(f"error: {terminal_line(message)}", err=True)
    sys.exit(code)


@click.group(cls=OneLineErrors, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lstm-repl")
@with_options(SHELL_OPTIONS)
@click.pass_context
def cli(ctx: click.Context, **settings) -> None:
    """Train an LSTM language model on your own text and watch it think, live.

    With no command, opens the interactive shell on the bundled default model
    (shakespeare-char); `lstm-repl repl CKPT` opens it on any checkpoint.
    """
    if ctx.invoked_subcommand is None:
        open_shell(DEFAULT_MODEL, **settings)


def main() -> None:
    cli.main()


def _register_commands() -> None:
    from lstm_repl.cli.bench import bench
    from lstm_repl.cli.compare import compare
    from lstm_repl.cli.corpus import corpus
    from lstm_repl.cli.evaluate import evaluate
    from lstm_repl.cli.export import export
    from lstm_repl.cli.generate import generate
    from lstm_repl.cli.info import info
    from lstm_repl.cli.repl import repl
    from lstm_repl.cli.replay import demo, replay
    from lstm_repl.cli.trace import trace
    from lstm_repl.cli.train import train
    from lstm_repl.cli.units import heatmap, saturation, units

    for command in (repl, replay, demo, train, generate, trace, evaluate, info, corpus, bench, export, compare, units,
                    saturation, heatmap):
        cli.add_command(command)


_register_commands()
