"""The interactive shell, driven headlessly: keys go in through a pipe, the app draws to a dummy output.

The model is a tiny real one; assertions are on the session, the buffer and the panel's text.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from click.testing import CliRunner
from prompt_toolkit.application import create_app_session
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from prompt_toolkit.utils import get_cwidth

from lstm_repl import checkpoint
from lstm_repl.cli import cli
from lstm_repl.repl.app import ShellApp, history_path
from lstm_repl.repl.commands import Shell
from lstm_repl.session import Session, Settings

ENTER, BACKSPACE, CTRL_C, CTRL_D, TAB = "\r", "\x7f", "\x03", "\x04", "\t"
RIGHT, UP, DOWN = "\x1b[C", "\x1b[A", "\x1b[B"
TIMEOUT = 10.0


class Screen(DummyOutput):
    """A dummy terminal whose size can change and which keeps what is printed above the app."""

    def __init__(self, columns: int = 100, rows: int = 40):
        super().__init__()
        self.size = Size(rows=rows, columns=columns)
        self.printed: list[str] = []

    def get_size(self) -> Size:
        return self.size

    def write(self, data: str) -> None:
        self.printed.append(data)

    def write_raw(self, data: str) -> None:
        self.printed.append(data)

    def text(self) -> str:
        return "".join(self.printed).replace("\r\n", "\n")


class Driver:
    """The running app, its pipe input and its screen, with helpers to type and wait."""

    def __init__(self, shell_app: ShellApp, inp, screen: Screen):
        self.shell_app, self.inp, self.screen = shell_app, inp, screen
        self.session = shell_app.shell.session
        self.buffer = shell_app.buffer

    def send(self, text: str) -> None:
        self.inp.send_text(text)

    async def until(self, condition, what: str = "condition", timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what} (message: {self.shell_app.message!r}, "
                                     f"buffer: {self.buffer.text!r}, position: {self.session.snapshot.position})")
            await asyncio.sleep(0.005)

    async def type(self, text: str) -> None:
        """Type text at the end of the buffer and wait until the model has read it."""
        expected = self.buffer.text + text
        self.send(text)
        await self.until(lambda: self.buffer.text == expected and self.session.text == self.shell_app.model_text(),
                         f"buffer {expected!r}")

    async def command(self, line: str) -> str:
        """Run a colon command; returns the status message it left."""
        self.shell_app.message = ""
        self.send(line + ENTER)
        await self.until(lambda: self.shell_app.message != "" or not self.running, f"the result of {line!r}")
        return self.shell_app.message

    async def clear(self) -> None:
        self.send(CTRL_C)
        await self.until(lambda: self.buffer.text == "", "an empty line")

    async def settle(self) -> None:
        """Let pending redraws happen."""
        await asyncio.sleep(0.1)

    @property
    def shell(self) -> Shell:
        return self.shell_app.shell

    @property
    def running(self) -> bool:
        return self.shell_app.app.is_running


def drive(loaded, script, columns: int = 100, rows: int = 40, settings: Settings | None = None, **shell) -> Driver:
    """Run the shell on `loaded` and the async `script(driver)` against it; the app must end by itself or is
    told to exit afterwards. Returns the driver for assertions after the app ended."""

    async def main() -> Driver:
        with create_pipe_input() as inp:
            screen = Screen(columns, rows)
            with create_app_session(input=inp, output=screen):
                session = Session(loaded, settings or Settings(seed=1))
                shell_app = ShellApp(Shell(session, load_checkpoint=checkpoint.load, **shell), color=False)
                task = asyncio.ensure_future(shell_app.run_async())
                driver = Driver(shell_app, inp, screen)
                try:
                    await driver.until(lambda: driver.running, "the app to start")
                    await script(driver)
                finally:
                    if not task.done() and driver.running:
                        shell_app.app.exit()
                    await asyncio.wait_for(task, TIMEOUT)
                return driver

    return asyncio.run(main())


@pytest.fixture
def loaded(tiny_run):
    return checkpoint.load(tiny_run)


# ---------------------------------------------------------------- typing


def test_typing_updates_the_session_and_backspace_pops(loaded):
    async def script(d: Driver):
        await d.type("Fir")
        assert d.session.snapshot.position == 3 and d.session.snapshot.token == "r"
        before = d.session.snapshot
        await d.type("s")
        assert d.session.snapshot.position == 4
        d.send(BACKSPACE)
        await d.until(lambda: d.session.snapshot.position == 3, "backspace")
        assert d.buffer.text == "Fir"
        assert d.session.snapshot.probability == before.probability
        d.send(BACKSPACE * 3)
        await d.until(lambda: d.session.snapshot.position == 0, "three backspaces")
        assert d.buffer.text == ""

    drive(loaded, script)


def test_ghost_text_right_arrow_and_tab(loaded):
    async def script(d: Driver):
        await d.type("You are")
        pieces = d.session.ghost_pieces()
        assert pieces, "the tiny model should continue 'You are' on the same line"
        assert d.buffer.suggestion is not None and d.buffer.suggestion.text == "".join(pieces)
        assert d.shell_app.ghost_pieces == pieces

        d.send(TAB)  # one token
        await d.until(lambda: d.buffer.text == "You are" + pieces[0], "tab to accept one token")
        assert d.session.text == "You are" + pieces[0]
        rest = d.session.ghost_pieces()
        assert d.buffer.suggestion is not None and d.buffer.suggestion.text == "".join(rest)

        d.send(RIGHT)  # all of it
        expected = "You are" + pieces[0] + "".join(rest)
        await d.until(lambda: d.buffer.text == expected, "right arrow to accept the ghost")
        assert d.session.snapshot.position == len(expected)
        assert d.buffer.cursor_position == len(expected)

        d.send(BACKSPACE)  # the ghost comes back after a backspace, too
        await d.until(lambda: d.buffer.text == expected[:-1], "backspace")
        assert d.buffer.suggestion is not None
        assert d.buffer.suggestion.text == d.session.ghost()

    drive(loaded, script)


def test_no_ghost_for_a_command_line(loaded):
    async def script(d: Driver):
        await d.type(":te")
        assert d.buffer.suggestion is None and d.shell_app.ghost_pieces == []
        assert d.session.snapshot.position == 0  # a command is not read by the model

    drive(loaded, script)


# ---------------------------------------------------------------- streaming


def test_enter_streams_and_commits(loaded):
    async def script(d: Driver):
        assert await d.command(":len 30") == "Enter streams 30 tokens"
        await d.type("First")
        d.send(ENTER)
        await d.until(lambda: d.shell_app.streaming is not None or d.shell.history, "the stream to start")
        await d.until(lambda: d.shell_app.streaming is None and d.shell.history, "the stream to end")
        assert d.shell.history.startswith("First") and len(d.shell.history) == len("First") + 30
        assert d.buffer.text == "" and d.shell_app.stream_text == ""
        assert d.session.text == d.shell.history
        assert d.shell_app.message.startswith("streamed 30 tokens")
        await d.until(lambda: d.shell.history[len("First"):] in d.screen.text(), "the text printed above the prompt")
        # typing goes on after the committed text
        await d.type("x")
        assert d.session.text == d.shell.history + "x"

    drive(loaded, script)


def test_ctrl_c_stops_a_long_stream(loaded):
    async def script(d: Driver):
        await d.command(":len 100000")
        await d.type("All")
        d.send(ENTER)
        await d.until(lambda: len(d.shell_app.stream_text) > 20, "some streamed text")
        assert d.buffer.read_only()
        d.send(CTRL_C)
        await d.until(lambda: d.shell_app.streaming is None, "the stream to stop")
        history = d.shell_app.shell.history
        assert history.startswith("All") and 20 < len(history) - 3 < 100000
        assert d.session.text == history
        assert d.shell_app.message.startswith("stopped after")
        assert d.running
        await d.type("z")  # still alive and reading
        assert d.session.snapshot.position == len(history) + 1

    drive(loaded, script)


def test_keys_are_ignored_while_streaming(loaded):
    async def script(d: Driver):
        await d.command(":len 100000")
        d.send(ENTER)
        await d.until(lambda: len(d.shell_app.stream_text) > 5, "a stream")
        d.send("abc")
        await d.settle()
        assert d.buffer.text == ""
        d.send(CTRL_C)
        await d.until(lambda: d.shell_app.streaming is None, "the stream to stop")

    drive(loaded, script)


# ---------------------------------------------------------------- commands


def test_setting_commands(loaded):
    async def script(d: Driver):
        s = lambda: d.session.settings  # noqa: E731
        assert await d.command(":temp 1.5") == "temperature 1.5" and s().temperature == 1.5
        assert await d.command(":temp 0") == "temperature 0.0" and s().temperature == 0
        assert await d.command(":topk 3") == "top-k 3" and s().top_k == 3
        assert await d.command(":topk 0") == "top-k off" and s().top_k == 0
        assert await d.command(":topp 0.9") == "top-p 0.9" and s().top_p == 0.9
        assert await d.command(":len 50") == "Enter streams 50 tokens" and s().length == 50
        assert await d.command(":layer 1") == "showing layer 1 of 2" and d.shell_app.shell.panel.layer == 0
        assert await d.command(":layer 2") == "showing layer 2 of 2" and d.shell_app.shell.panel.layer == 1
        assert await d.command(":units 1 2 3") == "pinned units 1 2 3" and d.shell_app.shell.panel.units == [1, 2, 3]
        assert await d.command(":units 4,5") == "pinned units 4 5" and d.shell_app.shell.panel.units == [4, 5]
        assert await d.command(":units") == "showing the units that changed most"
        assert d.shell_app.shell.panel.units is None
        assert await d.command(":seed 7") == "seed 7" and s().seed == 7
        assert await d.command(":seed") == "sampler unseeded" and s().seed is None
        assert d.buffer.text == ""  # a command that worked leaves an empty line
        status = "".join(text for _, text in d.shell_app._status_fragments())
        assert "T 0.0" in status and "top-p 0.9" in status and "len 50" in status

    drive(loaded, script)


@pytest.mark.parametrize("line", [
    ":temp abc", ":temp -1", ":temp", ":topk x", ":topk 9999", ":topp 0", ":topp 2", ":len 0", ":len many",
    ":layer 99", ":layer 0", ":units -1", ":units 24", ":units a", ":seed x", ":seed -3", ":load /nonexistent",
    ":load", ":save", ":bogus", ":", ":t",
])
def test_bad_commands_are_one_line_warnings(loaded, line):
    async def script(d: Driver):
        before = d.session.settings
        message = await d.command(line)
        assert message.startswith("⚠") and "\n" not in message, message
        assert d.running
        assert d.session.settings == before
        assert d.buffer.text == line  # kept, to be fixed
        await d.clear()

    drive(loaded, script)


def test_unknown_command_suggests_close_ones(loaded):
    async def script(d: Driver):
        assert "did you mean :temp, :topk, :topp" in await d.command(":t")

    drive(loaded, script)


def test_help_and_info_print_above(loaded):
    async def script(d: Driver):
        assert await d.command(":help") == "commands listed above"
        for name in (":temp", ":topk", ":topp", ":len", ":layer", ":units", ":seed", ":reset", ":load", ":info",
                     ":save", ":quit"):
            assert name in d.screen.text(), name
        assert await d.command(":info") == "model info above"
        assert "parameters" in d.screen.text() and "2 layers x 24 units" in d.screen.text()

    drive(loaded, script)


def test_reset_forgets_the_text(loaded):
    async def script(d: Driver):
        await d.command(":len 10")
        await d.type("First")
        d.send(ENTER)
        await d.until(lambda: d.shell_app.streaming is None and d.shell_app.shell.history, "a stream")
        assert await d.command(":reset") == "forgot everything read so far"
        assert d.shell_app.shell.history == "" and d.session.snapshot.position == 0 and d.session.text == ""
        await d.type("A")
        assert d.session.snapshot.position == 1

    drive(loaded, script)


def test_load_another_checkpoint(loaded, tiny_word_run):
    async def script(d: Driver):
        await d.command(":layer 2")
        await d.command(":units 1 2")
        await d.type("First ")
        assert d.session.vocab.level == "char"
        await d.clear()
        message = await d.command(f":load {tiny_word_run}")
        assert message == "loaded tiny-word/best"
        assert d.session.vocab.level == "word" and d.session.loaded.name == "tiny-word/best"
        assert d.shell_app.shell.panel.units is None
        await d.type("First Cit")
        assert d.session.snapshot.position == 2 and d.session.partial == "Cit"
        assert all(t.startswith("Cit") for t, _ in d.session.snapshot.top)
        status = "".join(text for _, text in d.shell_app._status_fragments())
        assert "tiny-word/best" in status

    drive(loaded, script)


def test_save_writes_the_committed_text(loaded, tmp_path):
    path = tmp_path / "trace.json"

    async def script(d: Driver):
        await d.command(":len 12")
        await d.type("All")
        d.send(ENTER)
        await d.until(lambda: d.shell_app.streaming is None and d.shell_app.shell.history, "a stream")
        history = d.shell_app.shell.history
        message = await d.command(f":save {path}")
        assert message == f"saved {len(history)} tokens with their traces to {path}"
        document = json.loads(path.read_text("utf-8"))
        assert document["text"] == history
        assert len(document["tokens"]) == len(history)
        assert all(t["probability"] is not None for t in document["tokens"])
        assert len(document["tokens"][0]["layers"]) == 2
        bad = await d.command(f":save {tmp_path / 'no' / 'such' / 'dir.json'}")
        assert bad.startswith("⚠ cannot write")

    drive(loaded, script)


def test_quit_ends_the_app(loaded):
    async def script(d: Driver):
        d.send(":quit" + ENTER)
        await d.until(lambda: not d.running, ":quit to end the app")

    drive(loaded, script)


def test_ctrl_d_on_an_empty_line_ends_the_app(loaded):
    async def script(d: Driver):
        await d.type("ab")
        d.send(CTRL_D)  # not on a line with text
        await d.settle()
        assert d.running and d.buffer.text == "ab"
        await d.clear()
        d.send(CTRL_D)
        await d.until(lambda: not d.running, "Ctrl-D to end the app")

    drive(loaded, script)


def test_ctrl_c_clears_the_line(loaded):
    async def script(d: Driver):
        await d.type("Fir")
        d.send(CTRL_C)
        await d.until(lambda: d.buffer.text == "" and d.session.snapshot.position == 0, "Ctrl-C")
        assert d.running and "line cleared" in d.shell_app.message

    drive(loaded, script)


# ---------------------------------------------------------------- history


def test_up_arrow_recalls_history(loaded):
    async def script(d: Driver):
        await d.command(":len 4")
        await d.type("To be")
        d.send(ENTER)
        await d.until(lambda: d.shell_app.streaming is None and d.shell_app.shell.history, "a stream")
        await d.until(lambda: "To be" in d.buffer._working_lines, "the history to load")
        d.send(UP)
        await d.until(lambda: d.buffer.text == "To be", "Up to recall the last line")
        assert d.session.text == d.shell_app.shell.history + "To be"
        assert d.buffer.suggestion is not None and d.buffer.suggestion.text == d.session.ghost()
        d.send(UP)
        await d.until(lambda: d.buffer.text == ":len 4", "Up again")
        d.send(DOWN)
        await d.until(lambda: d.buffer.text == "To be", "Down")

    drive(loaded, script)
    lines = history_path().read_text("utf-8")
    assert "+To be" in lines and "+:len 4" in lines


# ---------------------------------------------------------------- the panel


def panel_text(shell_app: ShellApp) -> str:
    return "".join(text for _, text in shell_app._panel_fragments())


def assert_fits(text: str, width: int) -> None:
    for line in text.split("\n"):
        assert get_cwidth(line) <= width, f"{get_cwidth(line)} > {width}: {line!r}"


def test_panel_text(loaded):
    async def script(d: Driver):
        await d.type("Fir")
        text = panel_text(d.shell_app)
        for label in ("forget f", "input i", "output o", "candidate g", "cell c", "hidden h"):
            assert label in text, label
        assert "read r" in text and "next token" in text
        top_token = d.session.snapshot.top[0][0]
        assert re.search(rf"^\s+{re.escape(top_token)}\s", text, re.M)
        assert "\x1b" not in text

    drive(loaded, script)


@pytest.mark.parametrize("columns", [60, 80, 140])
def test_resize_relays_the_panel(loaded, columns):
    async def script(d: Driver):
        await d.type("First Citizen")
        wide = panel_text(d.shell_app)
        assert_fits(wide, 100)
        d.screen.size = Size(rows=40, columns=columns)
        d.shell_app.app.invalidate()
        await d.settle()
        assert d.running
        text = panel_text(d.shell_app)
        assert_fits(text, columns)
        assert (text != wide) == (columns != 100)
        assert "forget f" in text
        await d.type("s")  # and typing still works at the new size
        assert_fits(panel_text(d.shell_app), columns)

    drive(loaded, script)


def test_panel_after_reset_is_not_stale(loaded):
    """The panel caches on the session's version: a reset must not make an old version look current."""

    async def script(d: Driver):
        await d.type("F")
        after_f = panel_text(d.shell_app)
        await d.clear()
        d.session.reset()
        d.session.set_text("x")
        assert panel_text(d.shell_app) != after_f
        assert "read x" in panel_text(d.shell_app)

    drive(loaded, script)


def test_layer_and_units_change_the_panel(loaded):
    async def script(d: Driver):
        await d.type("Fir")
        first_layer = panel_text(d.shell_app)
        assert "layer 1 of 2" in first_layer  # the layer nearest the input, by default
        await d.clear()
        await d.command(":layer 2")
        await d.type("Fir")
        assert "layer 2 of 2" in panel_text(d.shell_app) and panel_text(d.shell_app) != first_layer
        await d.clear()
        await d.command(":units 3 7")
        assert re.search(r"#3\s+#7", panel_text(d.shell_app))

    drive(loaded, script)


# ---------------------------------------------------------------- not a terminal


def test_plain_mode_for_pipes(tiny_run):
    result = CliRunner().invoke(cli, ["repl", str(tiny_run), "--length", "20", "--seed", "1"], input="To be\nor not\n")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    # one continuation per input line, each 20 characters (they may hold newlines of their own)
    session = Session(checkpoint.load(tiny_run), Settings(length=20, seed=1))
    expected = ""
    for line in ("To be", "or not"):
        session.reset()
        session.set_text(line)
        expected += "".join(session.stream()) + "\n"
    assert result.output == expected
    assert len(result.output) == 2 * 21


def test_plain_mode_skips_blank_lines(tiny_run):
    result = CliRunner().invoke(cli, ["repl", str(tiny_run), "--length", "5", "--seed", "1"], input="\n  \nAll\n")
    assert result.exit_code == 0 and len(result.output) == 6
