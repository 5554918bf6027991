"""lstm-repl replay: play a recorded session back in the shell, or write it as an asciicast."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lstm_repl.atomic import atomic_file
from lstm_repl.cli.options import POSITIVE as SPEED, FiniteFloat
from lstm_repl.terminal_text import terminal_line, terminal_safe


def parse_size(text: str) -> tuple[int, int]:
    """'100x30' -> (columns, rows)."""
    from lstm_repl.shell.recording import MAX_COLUMNS, MAX_ROWS

    columns, _, rows = text.lower().partition("x")
    try:
        size = int(columns), int(rows)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size; write COLUMNSxROWS, e.g. 100x30", param_hint="--size")
    if size[0] < 20 or size[1] < 8:
        raise click.BadParameter(f"{text} is too small; at least 20x8", param_hint="--size")
    if size[0] > MAX_COLUMNS or size[1] > MAX_ROWS:
        raise click.BadParameter(f"{text} is larger than any terminal; at most {MAX_COLUMNS}x{MAX_ROWS}",
                                 param_hint="--size")
    return size


IDLE_LIMIT_S = 2.0  # asciinema's documented example of --idle-time-limit
# above the shell's paste gap (0.03 s), so keys that came on their own still wait for the shell
IDLE_LIMIT = FiniteFloat(min=0.1)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--speed", type=SPEED, default=1.0, show_default=True, help="2 plays twice as fast.")
@click.option("--model", help="Replay on this checkpoint, even if it is not the one recorded.")
@click.option("--cast", "cast_path", type=click.Path(dir_okay=False),
              help="Write the replay as an asciicast v2 file (asciinema plays it) instead of showing it.")
@click.option("--size", help="COLUMNSxROWS of the cast (default: the recorded terminal's size).")
@click.option("--idle-limit", type=IDLE_LIMIT, default=IDLE_LIMIT_S, show_default=True, metavar="SECONDS",
              help="Cut every pause longer than this to this (as asciinema's --idle-time-limit).")
@click.option("--keep-pauses", is_flag=True, help="Play every pause as long as it was recorded.")
def replay(file, speed, model, cast_path, size, idle_limit, keep_pauses) -> None:
    """Play the session recorded in FILE (:record, or repl --record) back in the shell."""
    from lstm_repl.shell.recording import read_recording
    from lstm_repl.shell.playback import recorded_model

    recording = read_recording(file)
    if not keep_pauses:
        recording = recording.with_idle_limit(idle_limit)
    loaded = recorded_model(recording, model)
    header = recording.header
    columns, rows = parse_size(size) if size else (header.columns, header.rows)
    if cast_path:
        events, seconds = write_cast(recording, loaded, Path(cast_path), columns, rows, speed, title=Path(file).name)
        click.echo(terminal_line(f"wrote {cast_path}: {events} events, {seconds:.1f} s, {columns}x{rows}"))
    elif sys.stdin.isatty() and sys.stdout.isatty():
        play_in_terminal(recording, loaded, speed)
    else:
        click.echo(terminal_safe(replay_transcript(recording, loaded, columns, rows)))


def write_cast(recording, loaded, path: Path, columns: int, rows: int, speed: float, title: str) -> tuple[int, float]:
    """Replay into an asciicast file, as fast as the machine goes (the cast's times are the
    recording's over the speed); written beside and renamed, so a failure leaves no half file."""
    from lstm_repl.shell.cast import CastWriter
    from lstm_repl.shell.playback import replay, vt100_output

    writers = []

    def output(clock):
        writers.append(CastWriter(file, columns, rows, clock, title=title))
        return vt100_output(writers[0], columns, rows)

    try:
        with atomic_file(path) as file:
            replay(recording, loaded, output, speed=speed, paced=False)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path} ({exc.strerror}); choose another file") from None
    return writers[0].events, writers[0].last


def play_in_terminal(recording, loaded, speed: float) -> None:
    from lstm_repl.shell.playback import any_key, replay, terminal_output

    replay(recording, loaded, lambda clock: terminal_output(), speed=speed, paced=True, stop=any_key)


def replay_transcript(recording, loaded, columns: int, rows: int) -> str:
    """No terminal: the replay runs unseen, as fast as it goes; the text it ended with is printed."""
    from lstm_repl.shell.playback import discarding_output, replay

    app = replay(recording, loaded, lambda clock: discarding_output(columns, rows), paced=False)
    return app.model_text()


@click.command()
@click.option("--model", default="shakespeare-char", show_default=True, help="Checkpoint the tour runs on.")
@click.option("--speed", type=SPEED, default=1.0, show_default=True)
@click.option("--cast", "cast_path", type=click.Path(dir_okay=False),
              help="Write one pass of the tour as an asciicast v2 file instead of showing it.")
@click.option("--size", default="120x36", show_default=True, help="COLUMNSxROWS of the cast.")
def demo(model, speed, cast_path, size) -> None:
    """Run a scripted tour of the shell on its own, again and again, until a key is pressed."""
    from lstm_repl.model import checkpoint
    from lstm_repl.shell.tour import tour

    loaded = checkpoint.load(model)
    columns, rows = parse_size(size)
    if cast_path:
        events, seconds = write_cast(tour(loaded, columns, rows), loaded, Path(cast_path), columns, rows, speed,
                                     title=f"lstm-repl demo on {loaded.name}")
        click.echo(terminal_line(f"wrote {cast_path}: {events} events, {seconds:.1f} s, {columns}x{rows}"))
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise click.UsageError("the demo plays in a terminal; without one, write it as a cast with --cast FILE")
    from lstm_repl.shell.playback import any_key, replay, terminal_output

    pressed: list[bool] = []

    def stop(callback):
        return any_key(lambda: (pressed.append(True), callback()))

    while not pressed:
        size = terminal_output().get_size()
        replay(tour(loaded, size.columns, size.rows), loaded, lambda clock: terminal_output(), speed=speed,
               paced=True, stop=stop)
