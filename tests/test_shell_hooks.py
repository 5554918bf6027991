"""The shell's hooks, its settled signal and its injected times, through the headless driver on
a tiny real model. Tests wait on the shell's events, never on how fast this machine is."""

from __future__ import annotations

import pytest

from lstm_repl.config import SampleConfig
from lstm_repl.session.session import Settings
from lstm_repl.shell.headless import Headless, ShellTiming, drive
from lstm_repl.shell.hooks import EVENTS, ShellHooks

ENTER = "\r"


def test_hooks_call_back_in_order_and_refuse_an_unknown_event():
    hooks, calls = ShellHooks(), []
    hooks.add_callback("status_extra", lambda: calls.append("first") or "a")
    hooks.add_callback("status_extra", lambda: calls.append("second") or None)
    assert hooks.fire("status_extra") == ["a", None] and calls == ["first", "second"]
    with pytest.raises(ValueError, match="no shell event 'status_extras'.*stream_at_token"):
        hooks.add_callback("status_extras", print)
    assert set(EVENTS) >= {"keys_read", "stream_at_token", "stream_ended", "frame_drawn"}


def test_a_stream_that_ends_before_any_look_is_seen_through_its_events(loaded):
    """200 tokens may all come between two looks on a fast CPU: the test counts them as they come."""
    tokens, ended = [], []

    async def script(d: Headless):
        d.shell_app.hooks.add_callback("stream_at_token", lambda count: tokens.append(count) and False)
        d.shell_app.hooks.add_callback("stream_ended", lambda count, rate: ended.append(count))
        await d.type("First Citizen")
        d.send(ENTER)
        await d.until(lambda: ended, "the stream's end")
        await d.settle()

    d = drive(loaded, script, settings=Settings(SampleConfig(seed=1, length=200)))
    assert ended == [200] and tokens == list(range(201))
    assert d.shell.history.startswith("First Citizen") and d.session.text == d.shell.history


def test_a_command_on_a_line_with_text_runs_on_an_empty_line(loaded):
    """The adaptive-softmax failure: ':len 100000' typed after 'First Citizen' was text, and its
    Enter streamed 200 tokens. The driver's command() clears the line first."""

    async def script(d: Headless):
        await d.type("First Citizen")
        assert await d.command(":len 100000") == "Enter streams 100000 tokens"
        assert d.session.settings.sampling.length == 100000 and d.buffer.text == ""

    drive(loaded, script)


def test_the_paste_gap_is_the_shells_setting(loaded):
    """With a minute's gap an Enter that ends a batch stays undecided (the shell is not settled)
    until the next key says what it was; keys with a text right behind make it a newline."""

    async def script(d: Headless):
        await d.deliver("To" + ENTER)
        assert d.shell_app.enter_keys.waiting and not d.settled() and d.shell_app.streaming is None
        d.send(" be")
        await d.until(lambda: d.session.text == "To\n be" and d.settled(), "the pasted newline")

    drive(loaded, script, timing=ShellTiming(paste_gap_s=60))


def test_the_ghost_delay_is_the_shells_setting(loaded):
    async def script(d: Headless):
        await d.deliver("First")
        await d.until(lambda: d.session.text == "First", "the keys read")
        assert d.shell_app.typing.ghost_scheduled and not d.shell_app.ghost_pieces and not d.settled()

    drive(loaded, script, timing=ShellTiming(ghost_delay_s=60))


def test_the_shell_works_with_each_model_step_slowed(loaded):
    """The test-only delay (LSTM_REPL_TEST_STEP_DELAY_S runs every shell test so) slows the
    session's steps: typing, the ghost text and a stream still end where they should."""
    from lstm_repl.shell.headless import slow_steps

    async def script(d: Headless):
        slow_steps(d.shell_app, 0.01)
        await d.type("First")
        assert d.shell_app.ghost_pieces
        d.send(ENTER)
        await d.until(lambda: d.shell_app.streaming is None and d.shell.history, "a slow stream")
        await d.settle()

    d = drive(loaded, script, settings=Settings(SampleConfig(seed=1, length=20)))
    assert d.session.text == d.shell.history and len(d.shell.history) > len("First")


@pytest.mark.parametrize("value", ["abc", "nan", "-1", "1e9"])
def test_a_bad_test_step_delay_is_one_line_from_the_cli(value, tmp_path, monkeypatch):
    """The test-only delay is read wherever the shell runs headless (replay and demo too): a bad
    value is refused in one line, not a traceback."""
    from click.testing import CliRunner

    from lstm_repl.cli.main import cli
    from lstm_repl.shell.headless import STEP_DELAY_ENV

    monkeypatch.setenv(STEP_DELAY_ENV, value)
    result = CliRunner().invoke(cli, ["demo", "--cast", str(tmp_path / "t.cast"), "--model", "shakespeare-char"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert STEP_DELAY_ENV in result.output and "unset it" in result.output
    assert not (tmp_path / "t.cast").exists()
