"""Recording a session and replaying it: the shell runs on a real VT100 output into a terminal
emulator (pyte) while a session is typed and recorded with :record; the replay, on the same
kind of terminal, must show the same screens at the same moments and end with the same text,
and its asciicast must hold exactly those screens, timed by the recorded key times."""

from __future__ import annotations

import asyncio
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from prompt_toolkit.application import create_app_session
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output.vt100 import Vt100_Output

from lstm_repl import checkpoint
from lstm_repl.cast import CastWriter
from lstm_repl.cli import cli
from lstm_repl.recording import read_recording
from lstm_repl.repl.app import PASTE_GAP_S, ShellApp
from lstm_repl.repl.commands import Shell
from lstm_repl.repl.replay import replay, vt100_output
from lstm_repl.session import Session, Settings
from pyte_terminal import Terminal

COLUMNS, ROWS = 100, 30
ENTER, CTRL_C = "\r", "\x03"
TIMEOUT = 20.0


def idle(shell_app: ShellApp) -> bool:
    return (shell_app.streaming is None and shell_app.settled and not shell_app.app.key_processor.input_queue
            and not shell_app.app.invalidated)


async def until(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@dataclass
class Recorded:
    path: Path
    screens: list[list[str]]  # before each key batch sent to an idle shell
    text: str  # what the model had read when the session ended


@pytest.fixture(scope="module")
def recorded(tiny_run, tmp_path_factory) -> Recorded:
    """A session typed into the real shell and recorded: text, commands, a stream that ends by
    itself, one stopped with Ctrl-C, then :quit."""
    path = tmp_path_factory.mktemp("recordings") / "session.jsonl"
    screens: list[list[str]] = []
    loaded = checkpoint.load(tiny_run)

    async def script(shell_app: ShellApp, inp, terminal: Terminal) -> str:
        async def send(keys: str, done, what: str, capture: bool = True) -> None:
            await asyncio.sleep(3 * PASTE_GAP_S)  # the keys come on their own, as a person types
            await until(lambda: idle(shell_app), "the shell to settle")
            if capture:
                screens.append(terminal.rows())
            inp.send_text(keys)
            await until(done, what)

        await send(f":record {path}{ENTER}", lambda: shell_app.message.startswith("recording to"), ":record",
                   capture=False)
        await send(f":len 30{ENTER}", lambda: "30 tokens" in shell_app.message, ":len")
        await send("First", lambda: shell_app.buffer.text == "First", "typing")
        await send(ENTER, lambda: shell_app.message.startswith("streamed 30"), "a stream of 30")
        await send(f":len 100000{ENTER}", lambda: "100000" in shell_app.message, ":len")
        await send(" Cit", lambda: shell_app.buffer.text == " Cit", "typing after the stream")
        await send(ENTER, lambda: len(shell_app.stream_text) > 40, "a long stream")
        inp.send_text(CTRL_C)  # mid-stream, wherever it has got to
        await until(lambda: shell_app.streaming is None, "Ctrl-C")
        await send("You", lambda: shell_app.buffer.text == "You", "typing after Ctrl-C")
        await send(CTRL_C, lambda: shell_app.buffer.text == "", "Ctrl-C clearing the line")
        text = shell_app.model_text()
        await send(f":quit{ENTER}", lambda: not shell_app.app.is_running, ":quit")
        return text

    text = run_shell(loaded, script)
    return Recorded(path, screens, text)


def run_shell(loaded, script):
    async def main():
        terminal = Terminal()
        output = Vt100_Output(terminal, lambda: Size(rows=ROWS, columns=COLUMNS), term="xterm")
        with create_pipe_input() as inp, create_app_session(input=inp, output=output):
            shell_app = ShellApp(Shell(Session(loaded, Settings()), load_checkpoint=checkpoint.load), color=True)
            task = asyncio.ensure_future(shell_app.run_async())
            await until(lambda: shell_app.app.is_running, "the app to start")
            result = await script(shell_app, inp, terminal)
            await asyncio.wait_for(task, TIMEOUT)
            return result

    return asyncio.run(main())


def compared(event, previous_t: list[float]) -> bool:
    """The key batches the session sent to an idle shell (not those sent mid-stream)."""
    gap, previous_t[0] = event.t - previous_t[0], event.t
    return event.streamed is None and gap >= PASTE_GAP_S


def test_the_recording_holds_keys_commands_streams_model_and_seed(recorded, tiny_run):
    recording = read_recording(recorded.path)
    header = recording.header
    loaded = checkpoint.load(tiny_run)
    assert header.model.sha256 == loaded.info["files"]["model.safetensors"]["sha256"]
    assert header.model.name == loaded.name and (header.columns, header.rows) == (COLUMNS, ROWS)
    assert isinstance(header.settings["seed"], int)  # an unseeded session was seeded when recording began
    assert "".join(e.keys for e in recording.keys) == (f":len 30{ENTER}First{ENTER}:len 100000{ENTER} Cit{ENTER}"
                                                       f"{CTRL_C}You{CTRL_C}:quit{ENTER}")
    assert [e.command for e in recording.events if e.command] == [":len 30", ":len 100000", ":quit"]
    streams = recording.streams
    assert streams[0].stream == 30 and streams[1].stream > 40
    ctrl_c = next(e for e in recording.keys if e.keys == CTRL_C)
    assert ctrl_c.streamed == streams[1].stream  # the stream stopped where it was when Ctrl-C came
    times = [e.t for e in recording.events]
    assert times == sorted(times)
    lines = recorded.path.read_text("utf-8").splitlines()
    assert json.loads(lines[0])["format_version"] == 1 and json.loads(lines[-1])["end"] is True


def test_a_replay_draws_the_screens_the_session_drew(recorded, tiny_run):
    recording = read_recording(recorded.path)
    terminal, screens, previous = Terminal(), [], [0.0]

    def before_send(event) -> None:
        if compared(event, previous):
            screens.append(terminal.rows())

    app = replay(recording, checkpoint.load(tiny_run), lambda clock: vt100_output(terminal, COLUMNS, ROWS),
                 speed=20, before_send=before_send)
    assert app.model_text() == recorded.text
    assert len(screens) == len(recorded.screens) == 9
    for number, (want, got) in enumerate(zip(recorded.screens, screens)):
        assert got == want, f"screen {number} differs:\n" + "\n".join(got)


def test_the_cast_holds_exactly_the_screens_timed_by_the_recorded_keys(recorded, tiny_run):
    recording = read_recording(recorded.path)
    file, marks, previous, speed = io.StringIO(), [], [0.0], 4.0
    writers: list[CastWriter] = []

    def output(clock):
        writers.append(CastWriter(file, COLUMNS, ROWS, clock))
        return vt100_output(writers[0], COLUMNS, ROWS)

    def before_send(event) -> None:
        marks.append((writers[0].events, event.t / speed, compared(event, previous)))

    replay(recording, checkpoint.load(tiny_run), output, speed=speed, paced=False, before_send=before_send)
    header, events = parse_cast(file.getvalue())
    assert (header["width"], header["height"]) == (COLUMNS, ROWS)
    screens = []
    for count, key_time, is_compared in marks:
        assert all(t <= key_time + 1e-6 for t, _, _ in events[:count])  # drawn before the key: not later than it
        assert all(t >= key_time - 1e-6 for t, _, _ in events[count:])
        if is_compared:
            terminal = Terminal()
            terminal.write("".join(data for _, _, data in events[:count]))
            screens.append(terminal.rows())
    assert screens == recorded.screens


def parse_cast(text: str) -> tuple[dict, list]:
    """asciicast v2: a header object with version 2 and the size, then [time, "o", data] events with
    times that never decrease (https://docs.asciinema.org/manual/asciicast/v2/)."""
    lines = text.splitlines()
    header = json.loads(lines[0])
    assert isinstance(header, dict) and header["version"] == 2
    assert isinstance(header["width"], int) and isinstance(header["height"], int)
    assert isinstance(header.get("timestamp", 0), int) and isinstance(header.get("env", {}), dict)
    events = [json.loads(line) for line in lines[1:]]
    for event in events:
        assert isinstance(event, list) and len(event) == 3
        assert isinstance(event[0], (int, float)) and event[1] == "o" and isinstance(event[2], str)
    times = [event[0] for event in events]
    assert times == sorted(times) and times[0] >= 0
    return header, events


def test_replay_writes_a_cast_without_a_terminal(recorded, tmp_path):
    out = tmp_path / "session.cast"
    result = CliRunner().invoke(cli, ["replay", str(recorded.path), "--cast", str(out), "--size", "80x24",
                                      "--speed", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {out}")
    header, events = parse_cast(out.read_text("utf-8"))
    assert (header["width"], header["height"]) == (80, 24)
    terminal = Terminal(80, 24)
    terminal.write("".join(data for _, _, data in events))
    assert len(events) > 10 and all(len(row) <= 80 for row in terminal.rows())
    assert not list(tmp_path.glob("*.tmp"))


def test_replay_without_a_terminal_prints_the_text_the_session_ended_with(recorded):
    result = CliRunner().invoke(cli, ["replay", str(recorded.path), "--speed", "10"])
    assert result.exit_code == 0, result.output
    assert result.output == recorded.text + "\n"


# ---------------------------------------------------------------- bad files: one line each


def one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_bad_recordings_get_one_line_each(recorded, tmp_path):
    lines = recorded.path.read_text("utf-8").splitlines()
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2], "utf-8")
    assert "truncated (line 4 is cut short)" in one_line_error(["replay", str(cut)])
    unended = tmp_path / "unended.jsonl"
    unended.write_text("\n".join(lines[:-1]) + "\n", "utf-8")
    assert "truncated" in one_line_error(["replay", str(unended)])
    newer = tmp_path / "newer.jsonl"
    newer.write_text("\n".join([json.dumps({**json.loads(lines[0]), "format_version": 9}), *lines[1:]]), "utf-8")
    assert "recording format 9" in one_line_error(["replay", str(newer)])
    other = tmp_path / "other.txt"
    other.write_text("hello\n", "utf-8")
    assert "not an lstm-repl recording" in one_line_error(["replay", str(other)])
    assert "no such recording" in one_line_error(["replay", str(tmp_path / "missing.jsonl")])


def test_another_model_is_refused_unless_named(recorded, tmp_path, tiny_word_run):
    lines = recorded.path.read_text("utf-8").splitlines()
    header = json.loads(lines[0])
    header["model"]["sha256"] = "0" * 64  # the weights there are no longer the ones recorded
    moved = tmp_path / "moved.jsonl"
    moved.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n", "utf-8")
    message = one_line_error(["replay", str(moved)])
    assert "other weights" in message and "--model" in message
    result = CliRunner().invoke(cli, ["replay", str(moved), "--model", str(tiny_word_run), "--speed", "10"])
    assert result.exit_code == 0, result.output
