"""The interactive shell, driven headlessly: keys go in through a pipe, the app draws to a dummy output.

The model is a tiny real one; assertions are on the session, the buffer and the panel's text.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import re

import pytest
from click.testing import CliRunner
from prompt_toolkit.data_structures import Size
from prompt_toolkit.utils import get_cwidth

from lstm_repl.config import SampleConfig
from lstm_repl.model import checkpoint
from lstm_repl.cli.main import cli
from lstm_repl.session.ghost import ghost, ghost_pieces
from lstm_repl.shell.app import ShellApp
from lstm_repl.shell.headless import Headless as Driver, ShellTiming, drive
from lstm_repl.shell.history import history_path
from lstm_repl.session.read_ahead import FUSED_CHUNK
from lstm_repl.session.session import Session, Settings

ENTER, BACKSPACE, CTRL_C, CTRL_D, TAB = "\r", "\x7f", "\x03", "\x04", "\t"
RIGHT, UP, DOWN = "\x1b[C", "\x1b[A", "\x1b[B"
ESCAPE_CODE = re.compile(r"\x1b\[[0-9;]*m")


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
        pieces = ghost_pieces(d.session)
        assert pieces, "the tiny model should continue 'You are' on the same line"
        assert d.buffer.suggestion is not None and d.buffer.suggestion.text == "".join(pieces)
        assert d.shell_app.ghost_pieces == pieces

        d.send(TAB)  # one token
        await d.until(lambda: d.buffer.text == "You are" + pieces[0] and d.shell_app.settled, "tab to accept a token")
        assert d.session.text == "You are" + pieces[0]
        rest = ghost_pieces(d.session)
        assert d.buffer.suggestion is not None and d.buffer.suggestion.text == "".join(rest)

        d.send(RIGHT)  # all of it
        expected = "You are" + pieces[0] + "".join(rest)
        await d.until(lambda: d.buffer.text == expected and d.shell_app.settled, "right arrow to accept the ghost")
        assert d.session.snapshot.position == len(expected)
        assert d.buffer.cursor_position == len(expected)

        d.send(BACKSPACE)  # the ghost comes back after a backspace, too
        await d.until(lambda: d.buffer.text == expected[:-1] and d.shell_app.settled, "backspace")
        assert d.buffer.suggestion is not None
        assert d.buffer.suggestion.text == ghost(d.session)

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
        await d.long_stream(5)
        d.send("abc" + CTRL_C)  # keys are handled in order: the letters come to the line before Ctrl-C stops
        await d.until(lambda: d.shell_app.streaming is None, "the stream to stop")
        stopped = re.fullmatch(r"stopped after (\d+) tokens", d.shell_app.message)
        assert stopped, d.shell_app.message
        streamed = int(stopped.group(1))
        history = d.shell.history  # what was typed when the stream ended, then what it produced
        assert len(history) == streamed > 5 and not history.startswith("abc")
        assert d.buffer.text == "" and d.session.text == history

    drive(loaded, script)


# ---------------------------------------------------------------- commands


def test_setting_commands(loaded):
    async def script(d: Driver):
        s = lambda: d.session.settings.sampling  # noqa: E731
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
        status = "".join(text for _, text in d.shell_app.frame.status_fragments())
        assert "T 0.0" in status and "top-p 0.9" in status and "len 50" in status

    drive(loaded, script)


@pytest.mark.parametrize("line", [
    ":temp abc", ":temp -1", ":temp", ":topk x", ":topk 9999", ":topp 0", ":topp 2", ":len 0", ":len many",
    ":layer 99", ":layer 0", ":units -1", ":units 24", ":units a", ":seed x", ":seed -3", ":load /nonexistent",
    ":load", ":save", ":bogus", ":", ":t",
    # numbers (issue 22): a traceback at Enter, or an overflow (test_numbers.py: thousands of digits)
    ":temp nan", ":temp inf", ":topp nan", ":topp -inf", ":seed 18446744073709551616", ":clamp 1:0=1e999",
    ":clamp 1:0=1e39", ":find /a{4294967296}/",
])
def test_bad_commands_are_one_line_warnings(loaded, line):
    async def script(d: Driver):
        before = d.session.settings
        message = await d.command(line)
        assert message.startswith("⚠") and "\n" not in message and len(message) < 200, message
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
        # printing above the app is queued on the event loop: wait for the text, not for the message
        assert await d.command(":help") == "commands listed above"
        await d.until(lambda: "this list" in d.screen.text(), "the command list printed above the prompt")
        for name in (":temp", ":topk", ":topp", ":len", ":layer", ":units", ":seed", ":reset", ":load", ":info",
                     ":save", ":quit"):
            assert name in d.screen.text(), name
        assert await d.command(":info") == "model info above"
        await d.until(lambda: "2 layers x 24 units" in d.screen.text(), "the model info printed above the prompt")
        assert "parameters" in d.screen.text()

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
        status = "".join(text for _, text in d.shell_app.frame.status_fragments())
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
        assert message == f"saved the session, {len(history)} tokens with their traces, to {path}"
        document = json.loads(path.read_text("utf-8"))
        assert document["text"] == history
        assert len(document["tokens"]) == len(history)
        assert all(t["probability"] is not None for t in document["tokens"])
        assert len(document["tokens"][0]["layers"]) == 2
        bad = await d.command(f":save {tmp_path / 'no' / 'such' / 'dir.json'}")
        assert bad.startswith("⚠ cannot write")
        assert not list(tmp_path.glob("**/.*.tmp-*"))

    drive(loaded, script)


def test_save_of_a_long_session_keeps_gates_for_its_end(loaded, tmp_path, monkeypatch):
    from lstm_repl.shell import colon_commands

    monkeypatch.setattr(colon_commands, "SAVED_GATES", 50)
    path = tmp_path / "long.json"

    async def script(d: Driver):
        await d.command(":len 300")
        d.send(ENTER)
        await d.until(lambda: d.shell_app.streaming is None and d.shell.history, "a stream")
        message = await d.command(f":save {path}")
        assert message == f"saved the session, 300 tokens with their traces, gates for the last 50, to {path}"
        document = json.loads(path.read_text("utf-8"))
        assert document["gates_from"] == 250 and len(document["tokens"]) == 300
        assert [t["layers"] is None for t in document["tokens"]] == [True] * 250 + [False] * 50
        assert all(t["probability"] is not None and t["top"] for t in document["tokens"])

    drive(loaded, script)


def test_quit_ends_the_app(loaded):
    async def script(d: Driver):
        d.send(":quit" + ENTER)
        await d.until(lambda: not d.running, ":quit to end the app")

    drive(loaded, script)


def test_ctrl_d_on_an_empty_line_ends_the_app(loaded):
    async def script(d: Driver):
        await d.type("ab")
        d.send(CTRL_D + "c")  # not on a line with text; the "c" is read after the Ctrl-D
        await d.until(lambda: d.buffer.text == "abc" or not d.running, "the key after Ctrl-D")
        assert d.running and d.buffer.text == "abc"
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
        await d.until(lambda: d.buffer.text == "To be" and d.shell_app.settled, "Up to recall the last line")
        assert d.session.text == d.shell_app.shell.history + "To be"
        assert d.buffer.suggestion is not None and d.buffer.suggestion.text == ghost(d.session)
        d.send(UP)
        await d.until(lambda: d.buffer.text == ":len 4", "Up again")
        d.send(DOWN)
        await d.until(lambda: d.buffer.text == "To be", "Down")

    drive(loaded, script)
    lines = history_path().read_text("utf-8")
    assert "+To be" in lines and "+:len 4" in lines


# ---------------------------------------------------------------- the panel


def panel_text(shell_app: ShellApp) -> str:
    lines = shell_app.frame.panel_lines(shell_app.app.output.get_size().columns)
    return "\n".join(ESCAPE_CODE.sub("", line) for line in lines)


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
        renders = d.shell_app.app.render_counter
        d.shell_app.app.invalidate()
        await d.until(lambda: d.shell_app.app.render_counter > renders or not d.running, "a redraw at the new size")
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


# ---------------------------------------------------------------- pastes and any input


def _count_calls(obj, name: str) -> list[int]:
    """Wrap obj.name (an instance attribute from now on) to count its calls; returns the counter."""
    count, real = [0], getattr(obj, name)

    def counted(*args, **kwargs):
        count[0] += 1
        return real(*args, **kwargs)

    setattr(obj, name, counted)
    return count


def test_a_paste_arriving_as_keystrokes_is_read_in_one_batch(loaded):
    """As tmux paste-buffer or ssh deliver it: newlines as Enter, all in one write. No stream
    starts, every line reaches the transcript, and the model reads the run through the fused path."""
    lines = [f"line {n}: " + "the quick brown fox " * 8 for n in range(20)]
    text = "\n".join(lines)

    async def script(d: Driver):
        syncs = _count_calls(d.shell_app.typing, "sync")
        forward = _count_calls(d.session.model, "forward")
        d.send(text.replace("\n", ENTER))
        await d.until(lambda: d.session.text_length() == len(text) and d.settled(), "the paste read")
        assert d.shell_app.streaming is None and not d.shell_app.stream_text
        assert d.session.text == text
        assert d.shell.history == text[: text.rindex("\n") + 1] and d.buffer.text == lines[-1]
        assert syncs[0] <= 4  # one per batch of keys the app read, not one per key
        assert forward[0] <= math.ceil(len(text) / FUSED_CHUNK) + 4
        await d.until(lambda: lines[0] in d.screen.text(), "the pasted lines printed above the prompt")

    drive(loaded, script)


def test_a_bracketed_paste_with_newlines_goes_through_the_same_path(loaded):
    async def script(d: Driver):
        forward = _count_calls(d.session.model, "forward")
        d.send("\x1b[200~" + "To be, or not to be\r\nthat is the question\nWhether 'tis nobler" * 5 + "\x1b[201~")
        expected = "To be, or not to be\nthat is the question\nWhether 'tis nobler" * 5
        await d.until(lambda: d.session.text_length() == len(expected) and d.settled(), "the paste read")
        assert d.session.text == expected and d.shell_app.streaming is None
        assert forward[0] <= 6
        d.send(ENTER)  # a typed Enter after it still streams
        await d.until(lambda: d.shell_app.streaming is not None or d.shell_app.message.startswith("streamed"),
                      "a stream")

    drive(loaded, script)


def test_one_very_long_line_keeps_the_input_line_bounded(loaded):
    from lstm_repl.shell.reading import LINE_LIMIT

    text = ("abcdefghij" * 1000)[:10_000]

    async def script(d: Driver):
        d.send(text)
        await d.until(lambda: d.session.text_length() == len(text) and d.settled(), "the line read")
        assert len(d.buffer.text) <= LINE_LIMIT
        assert d.shell.history + d.buffer.text == text == d.session.text
        await d.type("k")  # typing and backspace go on at the end
        d.send(BACKSPACE)
        await d.until(lambda: d.session.text == text and d.settled(), "the backspace read")
        assert_fits(panel_text(d.shell_app), 100)

    drive(loaded, script)


def test_typing_keeps_no_undo_copies_of_the_line(loaded):
    async def script(d: Driver):
        for _ in range(30):
            d.send("abcdefghij")
            await asyncio.sleep(0.001)
        await d.until(lambda: d.session.text_length() == 300 and d.settled(), "the keys read")
        assert len(d.buffer._undo_stack) <= 2  # each saved copy is the whole line

    drive(loaded, script)


def test_a_pasted_line_that_starts_with_a_colon_is_text(loaded):
    async def script(d: Driver):
        d.send("x" + ENTER + ":len 5" + ENTER + "more text")
        expected = "x\n:len 5\nmore text"
        await d.until(lambda: d.session.text_length() == len(expected) and d.settled(), "the paste read")
        assert d.session.text == expected and d.session.settings.sampling.length != 5

    drive(loaded, script)


def test_two_enters_split_across_batches_are_two_newlines(loaded):
    async def script(d: Driver):
        await d.deliver("a" + ENTER)  # read, as one batch
        d.send(ENTER + "b")  # the next part of the paste, within the paste gap (a minute here)
        await d.until(lambda: d.session.text_length() == 4 and d.settled(), "the paste read")
        assert d.session.text == "a\n\nb" and d.shell_app.streaming is None

    drive(loaded, script, timing=ShellTiming(paste_gap_s=60))


def test_enter_then_ctrl_c_at_once_starts_the_stream_and_stops_it(loaded):
    async def script(d: Driver):
        await d.command(":len 100000")
        await d.type("All")
        d.send(ENTER + CTRL_C)
        await d.until(lambda: d.shell_app.message.startswith("stopped after"), "the stream stopped")
        await d.until(d.settled, "idle")
        assert d.shell.history.startswith("All") and d.session.text == d.shell.history

    drive(loaded, script)


def test_a_bracketed_paste_with_a_very_long_last_line_keeps_the_input_line_bounded(loaded):
    from lstm_repl.shell.reading import LINE_LIMIT

    text = "first line\n" + "y" * 10_000

    async def script(d: Driver):
        d.send("\x1b[200~" + text + "\x1b[201~")
        await d.until(lambda: d.session.text_length() == len(text) and d.settled(), "the paste read")
        assert len(d.buffer.text) <= LINE_LIMIT and d.session.text == text

    drive(loaded, script)


ANY_INPUT = {
    "control characters": "a\x02b\x07c\x0bd",
    "a lone Esc": "ab\x1b",
    "NUL": "a\x00b",
    "tabs": "a\tb\t",
    "CRLF": "one\r\ntwo",
    "right-to-left": "שלום עולם مرحبا",
    "combining marks": "e\u0301a\u0308o\u0302",
    "ZWJ emoji": "👩\u200d👩\u200d👧 ok",
    "outside the vocabulary": "€∑漢字",
}


@pytest.mark.parametrize("columns, rows", [(100, 40), (20, 6)])
@pytest.mark.parametrize("name", list(ANY_INPUT))
def test_any_input_is_safe(loaded, name, columns, rows):
    async def script(d: Driver):
        for key in ANY_INPUT[name]:  # typed one key at a time
            d.send(key)
            await asyncio.sleep(0.002)
        await d.until(lambda: d.settled() and d.shell_app.app.render_counter > 1, "the keys handled", timeout=20)
        d.send(ANY_INPUT[name])  # and the same again as one burst, as a paste arrives
        await d.until(d.settled, "the burst handled", timeout=20)
        assert d.running and d.shell_app.streaming is None
        assert d.session.text == d.shell.history + d.buffer.text
        text = panel_text(d.shell_app)
        assert_fits(text, columns)
        if d.session.ids and d.session.ids[-1] == 0 and columns >= 60:
            assert "as the unknown token" in text and re.search(r"surprisal \d+\.\d\d bits", text)

    drive(loaded, script, columns=columns, rows=rows)


def test_an_unknown_character_is_shown_as_such_with_its_surprisal(loaded):
    async def script(d: Driver):
        await d.type("ab€")
        text = panel_text(d.shell_app)
        assert "read € as the unknown token" in text
        assert re.search(r"surprisal \d+\.\d\d bits", text)

    drive(loaded, script)


def test_resizing_while_streaming(loaded):
    async def script(d: Driver):
        await d.long_stream(10)
        for columns, rows in [(40, 10), (20, 6), (140, 50), (1, 1), (80, 24)]:
            d.screen.size = Size(rows=rows, columns=columns)
            renders = d.shell_app.app.render_counter
            d.shell_app.app.invalidate()
            await d.until(lambda: d.shell_app.app.render_counter > renders, f"a redraw at {columns} x {rows}")
            assert_fits(panel_text(d.shell_app), max(columns, 1))
        d.send(CTRL_C)
        await d.until(lambda: d.shell_app.streaming is None, "the stream to stop")
        assert d.running and d.session.text == d.shell.history

    drive(loaded, script)


# ---------------------------------------------------------------- the cycle collector


def test_collections_wait_for_frames_and_idle_time_and_everything_is_put_back(loaded):
    thresholds = gc.get_threshold()

    async def script(d: Driver):
        assert gc.get_freeze_count() > 0  # what start-up made is out of the collector's sight
        assert not gc.isenabled()  # nothing collects in the middle of a key's frame
        young: list[int] = []

        def seen(phase, info) -> None:
            if phase == "start":
                young.append(info["generation"])

        gc.callbacks.append(seen)
        try:
            await d.type("To be, or not to be, that is the question")
        finally:
            gc.callbacks.remove(seen)
        assert 0 in young and gc.get_count()[0] < 2 * 700  # young collections ran, after frames
        collections = d.shell_app.collector.collections
        await d.until(lambda: d.shell_app.collector.collections > collections, "a collection while idle", 10)

    drive(loaded, script)
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0 and gc.isenabled()


# ---------------------------------------------------------------- not a terminal


def test_plain_mode_for_pipes(tiny_run):
    result = CliRunner().invoke(cli, ["repl", str(tiny_run), "--length", "20", "--seed", "1"], input="To be\nor not\n")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    # the model reads all of the input, then writes one continuation of it, 20 characters long
    session = Session(checkpoint.load(tiny_run), Settings(SampleConfig(length=20, seed=1)))
    session.set_text("To be\nor not\n")
    assert result.output == "".join(session.stream()) + "\n"
    assert len(result.output) == 21


@pytest.mark.slow  # starts a real process
def test_plain_mode_reads_a_megabyte_in_bounded_memory(tiny_run, tmp_path):
    """Through the real command and a real pipe: 1 MB in, one continuation out, the process's peak
    memory about what an empty input costs (nothing is kept per token)."""
    import subprocess
    import sys

    big = tmp_path / "big.txt"
    big.write_text(("To be, or not to be, that is the question.\n" * 25_000)[:1_000_000], "utf-8")

    def peak_kib(source) -> int:
        code = ("import resource, sys; from lstm_repl.cli.main import main; sys.argv = ['lstm-repl', 'repl', "
                f"{str(tiny_run)!r}, '--length', '10', '--seed', '1']\n"
                "try:\n    main()\nfinally:\n"
                "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
        done = subprocess.run([sys.executable, "-c", code], stdin=source, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert len(done.stdout) == 11
        return int(done.stderr.strip().splitlines()[-1])

    with open(big, "rb") as source:
        big_peak = peak_kib(source)
    small = tmp_path / "small.txt"
    small.write_text("To be\n", "utf-8")
    with open(small, "rb") as source:
        small_peak = peak_kib(source)
    assert big_peak - small_peak < 64 * 1024, (big_peak, small_peak)  # KiB; a kept state per token would be ~1 GB


def test_plain_mode_skips_blank_lines(tiny_run):
    result = CliRunner().invoke(cli, ["repl", str(tiny_run), "--length", "5", "--seed", "1"], input="\n  \nAll\n")
    assert result.exit_code == 0 and len(result.output) == 6


def test_runs_of_typed_characters_reach_the_shell_as_one_paste():
    from prompt_toolkit.key_binding import KeyPress
    from prompt_toolkit.keys import Keys

    from lstm_repl.shell.keys import runs_of_text

    keys = [KeyPress(c, c) for c in "to be"] + [KeyPress(Keys.ControlM, "\r"), KeyPress("o", "o"),
                                              KeyPress(Keys.ControlI, "\t")] + [KeyPress(c, c) for c in "é漢"]
    merged = runs_of_text(keys)
    assert [(k.key, k.data) for k in merged] == [
        (Keys.BracketedPaste, "to be"), (Keys.ControlM, "\r"), ("o", "o"), (Keys.ControlI, "\t"),
        (Keys.BracketedPaste, "é漢")]
