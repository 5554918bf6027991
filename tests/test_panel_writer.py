"""Everything under the input line (stream, rule, panel, status) is written to the terminal outside
prompt_toolkit's screen; these tests run the shell on a real VT100 output feeding a terminal
emulator (pyte) and check what a person would see: those lines in their rows and the input line
intact, after typing, backspacing, streaming (the layout moves), a resize, and a shorter panel."""

from __future__ import annotations

import asyncio
import re
import time

from prompt_toolkit.application import Application, create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.layout import HSplit, Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.output.vt100 import Vt100_Output

from lstm_repl.model import checkpoint
from lstm_repl.shell.app import ShellApp
from lstm_repl.shell.colon_commands import Shell
from lstm_repl.shell.panel_control import PanelArea, PanelWriter
from lstm_repl.session.session import Session, Settings
from pyte_terminal import Terminal

ENTER, BACKSPACE = "\r", "\x7f"
TIMEOUT = 15.0
ESCAPE_CODE = re.compile(r"\x1b\[[0-9;]*m")


def below_input(shell_app: ShellApp) -> list[str]:
    """What the shell writes under the input line (stream, rule, panel, status), as text."""
    width = shell_app.panel_writer.area.place.width
    return [ESCAPE_CODE.sub("", line).rstrip() for line in shell_app.lines_below_input(width)]


def expected_panel(shell_app: ShellApp, terminal: Terminal) -> tuple[int, list[str]]:
    """The terminal row where the panel starts (just below the rule; text printed above the app
    moves it down), and the panel's lines as text (without the status line)."""
    lines = below_input(shell_app)
    rule = next((number for number, row in enumerate(terminal.rows()) if row.startswith("─" * 10)), -1)
    after_rule = next(number for number, line in enumerate(lines) if line.startswith("─" * 10)) + 1
    return rule + 1, lines[after_rule:-1]


def panel_mismatch(shell_app: ShellApp, terminal: Terminal) -> str | None:
    """None when the terminal shows the panel where it belongs, else what differs."""
    if shell_app.panel_writer.area.place is None or shell_app.app.invalidated:
        return "no frame drawn yet"
    top, panel = expected_panel(shell_app, terminal)
    lines = below_input(shell_app)
    first = top - 1 - lines.index(next(line for line in lines if line.startswith("─" * 10)))
    shown = terminal.rows()[first : first + len(lines)]  # the stream's lines, the rule, the panel, the status
    for number, (want, got) in enumerate(zip(lines, shown)):
        if want != got:
            return f"line {number} under the input: want {want!r}, got {got!r}"
    return None


def assert_frame_around_panel(shell_app: ShellApp, terminal: Terminal) -> None:
    """The status line comes just below the panel."""
    top, lines = expected_panel(shell_app, terminal)
    rows = terminal.rows()
    assert " · T " in rows[top + len(lines)], "\n".join(rows) + "\n=====\n" + "\n".join(below_input(shell_app))


def run(loaded, script, columns: int = 100, rows: int = 30):
    async def main():
        terminal = Terminal(columns, rows)
        output = Vt100_Output(terminal, lambda: terminal.size, term="xterm")
        with create_pipe_input() as inp, create_app_session(input=inp, output=output):
            shell_app = ShellApp(Shell(Session(loaded, Settings(seed=1)), load_checkpoint=checkpoint.load), color=True)
            task = asyncio.ensure_future(shell_app.run_async())
            try:
                await until(lambda: shell_app.app.is_running, "the app to start")
                await script(shell_app, inp, terminal)
            finally:
                if shell_app.app.is_running:
                    shell_app.app.exit()
                await asyncio.wait_for(task, TIMEOUT)

    asyncio.run(main())


async def until(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def shows_panel(shell_app: ShellApp, terminal: Terminal) -> None:
    try:
        await until(lambda: shell_app.settled and panel_mismatch(shell_app, terminal) is None, "the panel")
    except AssertionError:
        raise AssertionError(panel_mismatch(shell_app, terminal) + "\n" + "\n".join(terminal.rows())) from None


def test_typing_and_backspace_show_the_panel_in_its_rows(loaded):
    async def script(shell_app, inp, terminal):
        await shows_panel(shell_app, terminal)
        for keys, line in (("the cat", "the cat"), (BACKSPACE * 3, "the "), (" sat on", "the  sat on")):
            inp.send_text(keys)
            await until(lambda: shell_app.buffer.text == line, repr(line))
            await shows_panel(shell_app, terminal)
        rows = terminal.rows()
        assert rows[0].startswith("> the  sat on")
        assert_frame_around_panel(shell_app, terminal)

    run(loaded, script)


def test_a_stream_moves_the_panel_down_and_back_without_leftovers(loaded):
    async def script(shell_app, inp, terminal):
        inp.send_text(":len 100000" + ENTER)
        await until(lambda: "100000" in shell_app.message, "the :len command")
        inp.send_text("the" + ENTER)
        for shown in (20, 150, 350):  # the stream's lines push the panel down, one row at a time
            await until(lambda: len(shell_app.stream_tail()) > shown, "a longer stream")
            await until(lambda: panel_mismatch(shell_app, terminal) is None, "the panel while streaming")
            assert_frame_around_panel(shell_app, terminal)
        inp.send_text("\x03")  # Ctrl-C: the stream ends, its text goes above, the panel moves up
        await until(lambda: shell_app.streaming is None, "the end of the stream")
        await shows_panel(shell_app, terminal)
        assert_frame_around_panel(shell_app, terminal)
        top, lines = expected_panel(shell_app, terminal)
        assert all(row == "" for row in terminal.rows()[top + len(lines) + 1 :])

    run(loaded, script)


def test_a_resize_redraws_the_panel_at_the_new_width(loaded):
    async def script(shell_app, inp, terminal):
        inp.send_text("to be")
        await until(lambda: shell_app.buffer.text == "to be", "the keys")
        await shows_panel(shell_app, terminal)
        terminal.resize(70, 24)
        shell_app.app._on_resize()  # what SIGWINCH does
        await until(lambda: shell_app.panel_writer.area.place is not None
                    and shell_app.panel_writer.area.place.width == 70, "a frame at the new width")
        await shows_panel(shell_app, terminal)
        assert all(len(row) <= 70 for row in terminal.rows())

    run(loaded, script)


def test_a_shorter_panel_leaves_nothing_of_the_longer_one(loaded):
    async def script(shell_app, inp, terminal):
        inp.send_text("abc")
        await until(lambda: shell_app.buffer.text == "abc", "the keys")
        await shows_panel(shell_app, terminal)
        before = len(expected_panel(shell_app, terminal)[1])
        terminal.resize(100, 16)  # fewer rows: the panel is cut to fit
        shell_app.app._on_resize()
        await until(lambda: len(expected_panel(shell_app, terminal)[1]) < before, "a shorter panel")
        await shows_panel(shell_app, terminal)
        top, lines = expected_panel(shell_app, terminal)
        assert top + len(lines) < 16

    run(loaded, script)



def test_a_panel_that_loses_lines_leaves_nothing_below_the_status_line():
    """The writer alone, in a minimal app: lines above, the panel, a status line. The panel goes from
    five lines to two and the status line moves up with no full redraw; the rows it leaves must
    show what prompt_toolkit has there (the status line, then nothing)."""
    panel = [f"\x1b[0;31mpanel line {n} " + "x" * 40 for n in range(5)]

    async def main():
        terminal = Terminal(60, 12)
        output = Vt100_Output(terminal, lambda: terminal.size, term="xterm")
        with create_pipe_input() as inp, create_app_session(input=inp, output=output):
            area = PanelArea(lambda width: panel)
            body = HSplit([Window(FormattedTextControl("top"), height=1), area,
                           Window(FormattedTextControl("status"), height=1)])
            app = Application(layout=Layout(body), full_screen=False)
            PanelWriter(app, area)
            task = asyncio.ensure_future(app.run_async())
            await until(lambda: terminal.rows()[1].startswith("panel line 0"), "the first frame")
            assert terminal.rows()[:7] == ["top"] + [f"panel line {n} " + "x" * 40 for n in range(5)] + ["status"]
            del panel[2:]
            app.invalidate()
            await until(lambda: terminal.rows()[3] == "status", "the shorter panel")
            assert terminal.rows()[:8] == ["top", "panel line 0 " + "x" * 40, "panel line 1 " + "x" * 40,
                                           "status", "", "", "", ""]
            app.exit()
            await task

    asyncio.run(main())
