"""Recording a session and replaying it: the shell runs on a real VT100 output into a terminal
emulator (pyte) while a session is typed and recorded with :record; the replay, on the same
kind of terminal, must show the same screens at the same moments and end with the same text,
and its asciicast must hold exactly those screens, timed by the recorded key times."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from prompt_toolkit.application import create_app_session
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output.vt100 import Vt100_Output

from lstm_repl.model import checkpoint
from lstm_repl.shell.cast import CastWriter
from lstm_repl.cli.main import cli
from lstm_repl.shell.recording import read_recording
from lstm_repl.shell.headless import PASTE_GAP_S, Headless, run_headless, shell_on
from lstm_repl.shell.playback import replay, vt100_output
from lstm_repl.session.session import Settings
from pyte_terminal import Terminal

COLUMNS, ROWS = 100, 30
ENTER, CTRL_C = "\r", "\x03"
TIMEOUT = 20.0


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

    async def script(d: Headless, terminal: Terminal) -> str:
        shell_app, send = d.shell_app, sender(d, terminal, screens)
        await send(f":record {path}{ENTER}", lambda: shell_app.message.startswith("recording to"), ":record",
                   capture=False)
        await send(f":len 30{ENTER}", lambda: "30 tokens" in shell_app.message, ":len")
        await send("First", lambda: shell_app.buffer.text == "First", "typing")
        await send(ENTER, lambda: shell_app.message.startswith("streamed 30"), "a stream of 30")
        await send(f":len 100000{ENTER}", lambda: "100000" in shell_app.message, ":len")
        await send(" Cit", lambda: shell_app.buffer.text == " Cit", "typing after the stream")
        await send(ENTER, lambda: len(shell_app.stream_text) > 40, "a long stream")
        d.send(CTRL_C)  # mid-stream, wherever it has got to
        await d.until(lambda: shell_app.streaming is None, "Ctrl-C", TIMEOUT)
        await send("You", lambda: shell_app.buffer.text == "You", "typing after Ctrl-C")
        await send(CTRL_C, lambda: shell_app.buffer.text == "", "Ctrl-C clearing the line")
        text = shell_app.model_text()
        await send(f":quit{ENTER}", lambda: not shell_app.app.is_running, ":quit")
        return text

    text = run_shell(loaded, script)
    return Recorded(path, screens, text)


def sender(d: Headless, terminal: Terminal, screens: list[list[str]]):
    """send(keys, done, what): the screen kept (unless capture=False), then the keys, then a wait
    until `done` holds."""

    async def send(keys: str, done, what: str, capture: bool = True) -> None:
        await asyncio.sleep(3 * PASTE_GAP_S)  # the recorded gap: keys that came on their own, as a person types
        await d.settle(TIMEOUT)
        if capture:
            screens.append(terminal.rows())
        d.send(keys)
        await d.until(done, what, TIMEOUT)

    return send


def run_shell(loaded, script):
    terminal = Terminal()
    output = Vt100_Output(terminal, lambda: Size(rows=ROWS, columns=COLUMNS), term="xterm")
    return run_headless(shell_on(loaded, Settings()), lambda d: script(d, terminal), output, color=True)


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
    assert not list(tmp_path.glob(".*.tmp-*"))


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


# ---------------------------------------------------------------- hostile recordings: a strict schema


def write_recording(path: Path, header: dict, events: list, end: float | None) -> Path:
    lines = [json.dumps(header), *(e if isinstance(e, str) else json.dumps(e) for e in events)]
    if end is not None:
        lines.append(json.dumps({"t": end, "end": True}))
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def header_of(recorded: Recorded, **changes) -> dict:
    header = json.loads(recorded.path.read_text("utf-8").split("\n", 1)[0])
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            header[section][name] = value
        else:
            header[section] = value
    return header


TYPED = [{"t": 0.1, "keys": "Fi"}, {"t": 0.2, "keys": ENTER}, {"t": 0.9, "stream": 5, "rate": 50.0}]

# id, header changes, events, end time, words the one line holds
HOSTILE_RECORDINGS = [
    ("a million-column terminal", {"columns": 1_000_000, "rows": 1_000_000}, TYPED, 1.0, ["1000000x1000000"]),
    ("no columns", {"columns": 0}, TYPED, 1.0, ["0x30"]),
    ("columns a string", {"columns": "wide"}, TYPED, 1.0, ["'columns' should be an integer"]),
    ("rows a float", {"rows": 30.5}, TYPED, 1.0, ["'rows' should be an integer"]),
    ("model a list", {"model": ["x"]}, TYPED, 1.0, ["'model' should be an object"]),
    ("sha256 a number", {"model__sha256": 5}, TYPED, 1.0, ["'sha256' should be a string"]),
    ("an unknown header field", {"extra": 1}, TYPED, 1.0, ["unknown field 'extra'"]),
    ("temperature a string", {"settings__temperature": "hot"}, TYPED, 1.0, ["'temperature' should be a number"]),
    ("temperature below 0", {"settings__temperature": -1}, TYPED, 1.0, ["temperature", "-1"]),
    ("top_p of 0", {"settings__top_p": 0}, TYPED, 1.0, ["top-p"]),
    ("length below 0", {"settings__length": -1}, TYPED, 1.0, ["length"]),
    ("seed a float", {"settings__seed": 1.5}, TYPED, 1.0, ["'seed' should be an integer or null"]),
    ("a setting the CLI has not", {"settings__shown": 3}, TYPED, 1.0, ["unknown field 'shown'"]),
    ("min_p above 1", {"settings__min_p": 2.0}, TYPED, 1.0, ["min-p must be from 0"]),
    ("a repeat penalty below 1", {"settings__repeat_penalty": 0.5}, TYPED, 1.0, ["repeat penalty"]),
    ("a repeat window a string", {"settings__repeat_window": "x"}, TYPED, 1.0, ["'repeat_window' should be"]),
    ("a stop list of numbers", {"settings__stop": [1]}, TYPED, 1.0, ["'stop[0]' should be a string"]),
    ("an empty stop string", {"settings__stop": [""]}, TYPED, 1.0, ["stop string must have"]),
    ("transcript a number", {"start__transcript": 5}, TYPED, 1.0, ["'transcript' should be a string"]),
    ("layer a string", {"start__layer": "2"}, TYPED, 1.0, ["'layer' should be an integer"]),
    ("units of strings", {"start__units": ["a"]}, TYPED, 1.0, ["'units[0]' should be an integer"]),
    ("a negative unit", {"start__units": [-1]}, TYPED, 1.0, ["below 0"]),
    (":load in the start", {"start__interventions": [":load /etc"]}, TYPED, 1.0, ["':load /etc' is not an"]),
    (":find in the start", {"start__interventions": [":find /(a+)+b/"]}, TYPED, 1.0, ["not an intervention"]),
    ("a time of a string", {}, [{"t": "soon", "keys": "F"}], 1.0, ["'t' should be a number"]),
    ("a negative time", {}, [{"t": -5, "keys": "F"}], 1.0, ["comes before 0 s"]),
    ("times going back", {}, [{"t": 2, "keys": "F"}, {"t": 1, "keys": "i"}], 3.0, ["line 3", "comes before 2 s"]),
    ("an end before the last event", {}, [{"t": 2, "keys": "F"}], 1.0, ["comes before 2 s"]),
    ("a time of 1e999", {}, ['{"t": 1e999, "keys": "F"}'], 1.0, ["too large"]),
    ("a time of NaN", {}, ['{"t": NaN, "keys": "F"}'], 1.0, ["NaN is not a number"]),
    ("nested 200,000 deep", {}, ["[" * 200_000 + "]" * 200_000], 1.0, ["nested too deeply"]),
    ("keys a list", {}, [{"t": 0.1, "keys": ["F"]}], 1.0, ["'keys' should be a string"]),
    ("an unknown event field", {}, [{"t": 0.1, "keys": "F", "run": "sh"}], 1.0, ["unknown field 'run'"]),
    ("an event of two kinds", {}, [{"t": 0.1, "keys": "F", "command": ":q"}], 1.0, ["keys and command"]),
    ("an event of no kind", {}, [{"t": 0.1}], 1.0, ["not none"]),
    ("streamed without keys", {}, [{"t": 0.1, "command": ":q", "streamed": 3}], 1.0, ["'streamed' goes with keys"]),
    ("a negative stream", {}, [{"t": 0.1, "stream": -4, "rate": 1.0}], 1.0, ["below 0"]),
    ("a rate of a string", {}, [{"t": 0.1, "stream": 4, "rate": "fast"}], 1.0, ["'rate' should be a number"]),
]


@pytest.mark.parametrize("changes, events, end, words", [row[1:] for row in HOSTILE_RECORDINGS],
                         ids=[row[0] for row in HOSTILE_RECORDINGS])
def test_every_line_of_a_recording_is_checked_against_its_schema(recorded, tmp_path, changes, events, end, words):
    path = write_recording(tmp_path / "hostile.jsonl", header_of(recorded, **changes), events, end)
    for args in ([], ["--cast", str(tmp_path / "out.cast")]):
        message = one_line_error(["replay", str(path), *args])
        assert all(word in message for word in words), message
    assert not (tmp_path / "out.cast").exists()


def test_a_recording_must_be_a_regular_file_of_bounded_size(recorded, tmp_path, monkeypatch):
    import os
    import threading

    from lstm_repl.shell import recording

    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    messages: list[str] = []
    reader = threading.Thread(target=lambda: messages.append(one_line_error(["replay", str(fifo)])), daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert messages and "a FIFO" in messages[0], "reading a FIFO hung or did not refuse it"
    assert "is a directory" in one_line_error(["replay", str(tmp_path)])
    monkeypatch.setattr(recording, "RECORDING_LIMIT", 1000)
    assert "more than a recording can be" in one_line_error(["replay", str(recorded.path)])


def test_the_start_restores_interventions_through_their_parser_and_runs_no_command(recorded, tmp_path, tiny_run):
    from lstm_repl.shell.playback import build_shell

    loaded = checkpoint.load(tiny_run)
    header = header_of(recorded, start__interventions=[":clamp 1:3=0.5", ":force 2 f=1", ":clamp 1:3=0.25"])
    recording = read_recording(write_recording(tmp_path / "edits.jsonl", header, TYPED, 1.0))
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=vt100_output(io.StringIO(), 80, 24)):
        app = build_shell(recording, loaded)
    assert [str(item) for item in app.shell.session.interventions.items] == ["force 2 f=1", "clamp 1:3=0.25"]
    header = header_of(recorded, start__interventions=[":clamp 3:1=0.5"])
    path = write_recording(tmp_path / "other-model.jsonl", header, TYPED, 1.0)
    message = one_line_error(["replay", str(path)])
    assert "does not fit this model" in message and "layers 1-2" in message


def test_keys_holding_line_separators_other_than_newline_read_back_whole(recorded, tmp_path):
    from lstm_repl.shell.recording import Event, RecordingWriter

    keys = "a\u2028b\x85c\x1cd\u2029"  # str.splitlines breaks at each of them; a JSON line may hold them raw
    writer = RecordingWriter(tmp_path / "separators.jsonl", read_recording(recorded.path).header)
    writer.event(Event(0.1, keys=keys))
    writer.end(0.2)
    assert "\u2028" in writer.path.read_text("utf-8")
    assert [e.keys for e in read_recording(writer.path).keys] == [keys]


def test_size_beyond_any_terminal_is_refused(recorded):
    assert "at most 1000x500" in one_line_error(["replay", str(recorded.path), "--size", "100000x100000"])
    assert "at most 1000x500" in one_line_error(["demo", "--cast", "x.cast", "--size", "1001x40"])


# ---------------------------------------------------------------- idle time, as asciinema's idle_time_limit


def test_pauses_longer_than_the_limit_are_cut_to_it():
    from lstm_repl.shell.recording import Event, Header, ModelId, Recording

    header = Header(ModelId("m", "p", "0" * 64), {}, 80, 24)
    events = [Event(5.0, keys="a"), Event(5.5, keys="b"), Event(65.5, keys="c"), Event(66.0, command=":q")]
    cut = Recording(Path("r"), header, events, end=1e300).with_idle_limit(2.0)
    assert [e.t for e in cut.events] == [2.0, 2.5, 4.5, 5.0] and cut.end == 7.0
    assert [(e.keys, e.command) for e in cut.events] == [(e.keys, e.command) for e in events]
    assert Recording(Path("r"), header, events).with_idle_limit(2.0).end is None


def test_replay_cuts_idle_time_unless_told_to_keep_it(recorded, tmp_path):
    events = [{"t": 0.1, "keys": "F"}, {"t": 1e300, "keys": "i"}]
    path = write_recording(tmp_path / "idle.jsonl", header_of(recorded), events, 1e300)
    out = tmp_path / "idle.cast"
    result = CliRunner().invoke(cli, ["replay", str(path), "--cast", str(out)])
    assert result.exit_code == 0, result.output
    _, cast_events = parse_cast(out.read_text("utf-8"))
    assert cast_events[-1][0] <= 0.1 + 2.0 + 2.0  # the first key, the pause before the second, before the end
    result = CliRunner().invoke(cli, ["replay", str(path), "--cast", str(out), "--idle-limit", "0.5"])
    assert parse_cast(out.read_text("utf-8"))[1][-1][0] <= 0.1 + 0.5 + 0.5
    result = CliRunner().invoke(cli, ["replay", str(path), "--cast", str(out), "--keep-pauses"])
    assert result.exit_code == 0, result.output
    assert parse_cast(out.read_text("utf-8"))[1][-1][0] >= 1e300


def test_a_stream_at_a_crawling_recorded_rate_draws_nothing_after_the_end(recorded, tmp_path):
    events = [{"t": 0.1, "keys": "F"}, {"t": 0.2, "keys": ENTER}, {"t": 0.5, "stream": 30, "rate": 1e-9}]
    path = write_recording(tmp_path / "crawl.jsonl", header_of(recorded, settings__length=30), events, 0.6)
    out = tmp_path / "crawl.cast"
    result = CliRunner().invoke(cli, ["replay", str(path), "--cast", str(out)])
    assert result.exit_code == 0, result.output
    assert max(t for t, _, _ in parse_cast(out.read_text("utf-8"))[1]) <= 0.6


@pytest.mark.slow  # starts a real process
def test_the_largest_terminal_casts_within_a_memory_cap(recorded, tmp_path):
    """A 1000x500 terminal (the bound) replayed into a cast by a process capped at 1.5 GB of
    address space (torch alone reserves most of it): a million-column one took 6.5 GB."""
    import resource
    import subprocess
    import sys

    path = write_recording(tmp_path / "large.jsonl", header_of(recorded, columns=1000, rows=500), TYPED, 1.0)
    cap = 1536 << 20

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    out = tmp_path / "large.cast"
    result = subprocess.run([sys.executable, "-m", "lstm_repl", "replay", str(path), "--cast", str(out)],
                            capture_output=True, text=True, timeout=120, preexec_fn=limit)
    assert result.returncode == 0, result.stderr
    header, events = parse_cast(out.read_text("utf-8"))
    assert (header["width"], header["height"]) == (1000, 500) and events


def test_a_recording_keeps_min_p_the_penalty_and_stops_and_one_without_them_still_reads(recorded, tmp_path):
    from lstm_repl.config import SampleConfig
    from lstm_repl.shell.recording import SETTINGS_FIELDS

    def sampling(path: Path) -> SampleConfig:  # as playback.build_shell makes it
        settings = read_recording(path).header.settings
        return SampleConfig(**{name: settings[name] for name in SETTINGS_FIELDS if name in settings})

    recorded_settings = json.loads(recorded.path.read_text("utf-8").split("\n", 1)[0])["settings"]
    assert {"min_p", "repeat_penalty", "repeat_window", "stop"} <= set(recorded_settings)
    header = header_of(recorded, settings__min_p=0.1, settings__repeat_penalty=1.5, settings__repeat_window=8,
                       settings__stop=["\n\n", "END"])
    new = sampling(write_recording(tmp_path / "new.jsonl", header, TYPED, 1.0))
    assert (new.min_p, new.repeat_penalty, new.repeat_window, new.stop) == (0.1, 1.5, 8, ("\n\n", "END"))
    old = header_of(recorded)
    for name in ("min_p", "repeat_penalty", "repeat_window", "stop"):
        old["settings"].pop(name)
    assert sampling(write_recording(tmp_path / "old.jsonl", old, TYPED, 1.0)) == SampleConfig(
        **{name: old["settings"][name] for name in ("temperature", "top_k", "top_p", "length", "seed")})


# ---------------------------------------------------------------- byte-level BPE: boundaries that move


def test_a_bpe_session_replays_its_screens_and_text(tiny_bpe_run, tmp_path):
    """Typed a piece at a time, the last token's boundary moves under the keys; the replay must
    still draw the same screens and end having read the same tokens."""
    path, screens = tmp_path / "bpe.jsonl", []
    loaded = checkpoint.load(tiny_bpe_run)

    async def script(d: Headless, terminal: Terminal) -> str:
        shell_app, send = d.shell_app, sender(d, terminal, screens)
        await send(f":record {path}{ENTER}", lambda: shell_app.message.startswith("recording to"), ":record",
                   capture=False)
        await send(f":len 25{ENTER}", lambda: "25 tokens" in shell_app.message, ":len")
        for typed in ("Fi", "Fir", "First", "First Ci", "First Citiz"):
            await send(typed[len(shell_app.buffer.text):], lambda t=typed: shell_app.buffer.text == t, "typing")
        await send("\x7f", lambda: shell_app.buffer.text == "First Citi", "a backspace")
        await send(ENTER, lambda: shell_app.message.startswith("streamed 25"), "a stream of 25")
        await send("é!", lambda: shell_app.buffer.text == "é!", "bytes of one character")
        text = shell_app.model_text()
        await send(CTRL_C, lambda: shell_app.buffer.text == "", "Ctrl-C clearing the line")
        await send(f":quit{ENTER}", lambda: not shell_app.app.is_running, ":quit")
        return text

    text = run_shell(loaded, script)
    recording = read_recording(path)
    terminal, replayed, previous = Terminal(), [], [0.0]

    def before_send(event) -> None:
        if compared(event, previous):
            replayed.append(terminal.rows())

    app = replay(recording, checkpoint.load(tiny_bpe_run), lambda clock: vt100_output(terminal, COLUMNS, ROWS),
                 speed=20, before_send=before_send)
    assert text.startswith("First Citi") and text.endswith("é!")
    assert app.shell.history == text[:-len("é!")]  # Ctrl-C took the last line back, in the replay too
    assert len(replayed) == len(screens) == 11
    for number, (want, got) in enumerate(zip(screens, replayed)):
        assert got == want, f"screen {number} differs:\n" + "\n".join(got)
