"""Everything under the input line (stream, rule, panel, status) is written to the terminal outside
prompt_toolkit's screen; these tests run the shell on a real VT100 output feeding a terminal
emulator (pyte) and check what a person would see: those lines in their rows and the input line
intact, after typing, backspacing, streaming (the layout moves), a resize, and a shorter panel."""

from __future__ import annotations

import asyncio
import re

from prompt_toolkit.application import Application, create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.layout import HSplit, Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.output.vt100 import Vt100_Output

from lstm_repl.shell.app import ShellApp
from lstm_repl.shell.headless import Headless, run_headless, shell_on, until as wait_until
from lstm_repl.shell.panel_control import PanelArea, PanelWriter
from pyte_terminal import Terminal

ENTER, BACKSPACE = "\r", "\x7f"
TIMEOUT = 15.0
ESCAPE_CODE = re.compile(r"\x1b\[[0-9;]*m")


def below_input(shell_app: ShellApp) -> list[str]:
    """What the shell writes under the input line (stream, rule, panel, status), as text."""
    width = shell_app.panel_writer.area.place.width
    return [ESCAPE_CODE.sub("", line).rstrip() for line in shell_app.frame.lines_below_input(width)]


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
    """Run script(shell_app, driver, terminal) against the shell on a VT100 output into pyte."""
    terminal = Terminal(columns, rows)
    output = Vt100_Output(terminal, lambda: terminal.size, term="xterm")

    run_headless(shell_on(loaded), lambda d: script(d.shell_app, d, terminal), output, color=True)


async def shows_panel(d: Headless, terminal: Terminal) -> None:
    shell_app = d.shell_app
    try:
        await d.until(lambda: shell_app.settled and panel_mismatch(shell_app, terminal) is None, "the panel",
                      TIMEOUT, at_frame=True)
    except AssertionError:
        raise AssertionError(panel_mismatch(shell_app, terminal) + "\n" + "\n".join(terminal.rows())) from None


def test_typing_and_backspace_show_the_panel_in_its_rows(loaded):
    async def script(shell_app, d, terminal):
        await shows_panel(d, terminal)
        for keys, line in (("the cat", "the cat"), (BACKSPACE * 3, "the "), (" sat on", "the  sat on")):
            d.send(keys)
            await d.until(lambda: shell_app.buffer.text == line, repr(line))
            await shows_panel(d, terminal)
        rows = terminal.rows()
        assert rows[0].startswith("> the  sat on")
        assert_frame_around_panel(shell_app, terminal)

    run(loaded, script)


def test_a_stream_moves_the_panel_down_and_back_without_leftovers(loaded):
    async def script(shell_app, d, terminal):
        d.send(":len 100000" + ENTER)
        await d.until(lambda: "100000" in shell_app.message, "the :len command")
        shown = [0]  # the stream holds (through the shell's hooks) once it shows more than this
        shell_app.hooks.add_callback("stream_at_token", lambda count: len(shell_app.stream.tail()) > shown[0] > 0)
        d.send("the" + ENTER)
        for shown[0] in (20, 150, 350):  # the stream's lines push the panel down, one row at a time
            await d.until(lambda: len(shell_app.stream.tail()) > shown[0], "a longer stream")
            await d.until(lambda: panel_mismatch(shell_app, terminal) is None, "the panel while streaming")
            assert_frame_around_panel(shell_app, terminal)
        shown[0] = 0
        d.send("\x03")  # Ctrl-C: the stream ends, its text goes above, the panel moves up
        await d.until(lambda: shell_app.streaming is None, "the end of the stream")
        await shows_panel(d, terminal)
        assert_frame_around_panel(shell_app, terminal)
        top, lines = expected_panel(shell_app, terminal)
        assert all(row == "" for row in terminal.rows()[top + len(lines) + 1 :])

    run(loaded, script)


def test_a_resize_redraws_the_panel_at_the_new_width(loaded):
    async def script(shell_app, d, terminal):
        d.send("to be")
        await d.until(lambda: shell_app.buffer.text == "to be", "the keys")
        await shows_panel(d, terminal)
        terminal.resize(70, 24)
        shell_app.app._on_resize()  # what SIGWINCH does
        await d.until(lambda: shell_app.panel_writer.area.place is not None
                    and shell_app.panel_writer.area.place.width == 70, "a frame at the new width")
        await shows_panel(d, terminal)
        assert all(len(row) <= 70 for row in terminal.rows())

    run(loaded, script)


def test_a_shorter_panel_leaves_nothing_of_the_longer_one(loaded):
    async def script(shell_app, d, terminal):
        d.send("abc")
        await d.until(lambda: shell_app.buffer.text == "abc", "the keys")
        await shows_panel(d, terminal)
        before = len(expected_panel(shell_app, terminal)[1])
        terminal.resize(100, 16)  # fewer rows: the panel is cut to fit
        shell_app.app._on_resize()
        await d.until(lambda: len(expected_panel(shell_app, terminal)[1]) < before, "a shorter panel")
        await shows_panel(d, terminal)
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
            await wait_until(lambda: terminal.rows()[1].startswith("panel line 0"), "the first frame")
            assert terminal.rows()[:7] == ["top"] + [f"panel line {n} " + "x" * 40 for n in range(5)] + ["status"]
            del panel[2:]
            app.invalidate()
            await wait_until(lambda: terminal.rows()[3] == "status", "the shorter panel")
            assert terminal.rows()[:8] == ["top", "panel line 0 " + "x" * 40, "panel line 1 " + "x" * 40,
                                           "status", "", "", "", ""]
            app.exit()
            await task

    asyncio.run(main())
