"""Issue 27 in the shell: multi-line input (Alt-Enter, triple-quote blocks), :open and
--prompt-file, the persistent history with Ctrl-R, min-p / repeat penalty / stop strings, :set,
:show, :regen, :undo, and sessions saved and restored."""

from __future__ import annotations

import json
import os
import threading

import pytest
from click.testing import CliRunner

from lstm_repl.cli.main import cli
from lstm_repl.config import SampleConfig
from lstm_repl.model import checkpoint
from lstm_repl.session.session import Session, Settings
from lstm_repl.shell.colon_commands import CommandError, run_command
from lstm_repl.shell.headless import Headless as Driver, drive, shell_on
from lstm_repl.shell.history import HISTORY_READ, PersistentHistory, entries, history_path

ENTER, ALT_ENTER, CTRL_R, CTRL_G = "\r", "\x1b\r", "\x12", "\x07"


async def stream_ended(d: Driver) -> None:
    await d.until(lambda: d.shell_app.streaming is None and d.shell_app.settled, "the stream to end")


async def enter_streams(d: Driver) -> None:
    """Enter, and the stream it starts run to its end."""
    before = len(d.shell.streams)
    d.send(ENTER)
    await d.until(lambda: len(d.shell.streams) > before, "a stream to start and end")
    await stream_ended(d)


# ---------------------------------------------------------------- multi-line input


def test_alt_enter_starts_a_new_line_without_streaming(loaded):
    async def script(d: Driver):
        await d.type("First line")
        d.send(ALT_ENTER)
        await d.until(lambda: d.shell.history == "First line\n" and d.shell_app.settled, "a new line")
        await d.type("second")
        assert d.shell_app.streaming is None and d.session.text == "First line\nsecond"
        assert "First line" in d.screen.text()

    drive(loaded, script)


def test_a_triple_quote_block_takes_enter_as_a_newline_until_it_closes(loaded):
    async def script(d: Driver):
        await d.command(":len 5")
        await d.type('"""')
        d.send(ENTER)
        await d.until(lambda: d.shell_app.in_block and d.buffer.text == "" and d.shell_app.settled, "the block")
        for line in ("To be,", "or not"):
            await d.type(line)
            d.send(ENTER)
            await d.until(lambda: d.buffer.text == "" and d.shell_app.settled, "a line of the block")
        assert d.shell.history == "To be,\nor not\n" and d.shell_app.streaming is None
        await d.type('to be"""')
        await enter_streams(d)
        assert not d.shell_app.in_block
        assert d.shell.history.startswith("To be,\nor not\nto be") and len(d.shell.history) == len(
            "To be,\nor not\nto be") + 5

    drive(loaded, script)


# ---------------------------------------------------------------- :open and --prompt-file


def test_open_reads_a_file_in_as_a_paste(loaded, tmp_path):
    path = tmp_path / "prompt.txt"
    path.write_text("To be, or not\nto bé ✓", encoding="utf-8")  # é and ✓ are not in the tiny vocabulary

    async def script(d: Driver):
        message = await d.command(f":open {path}")
        assert message == f"read {path} in"
        await d.until(lambda: d.shell_app.settled, "the paste to be read")
        assert d.shell.history == "To be, or not\n" and d.buffer.text == "to bé ✓"
        assert d.session.text == "To be, or not\nto bé ✓"

    drive(loaded, script)


@pytest.mark.parametrize("content, expected", [
    (b"\xff\xfe not utf-8", "not UTF-8"),
    (None, "no such"),
    ("folder", "is a folder"),
    ("fifo", "FIFO"),
])
def test_open_of_a_bad_file_is_one_line(loaded, tmp_path, content, expected):
    path = tmp_path / "bad"
    if content == "folder":
        path.mkdir()
    elif content == "fifo":
        os.mkfifo(path)
    elif content is not None:
        path.write_bytes(content)
    shell = shell_on(loaded)
    with pytest.raises(Exception) as raised:
        run_command(shell, f":open {path}")
    assert expected in str(raised.value) and "\n" not in str(raised.value)


def test_open_of_a_huge_file_is_refused_before_reading(loaded, tmp_path):
    path = tmp_path / "huge.txt"
    with open(path, "wb") as f:
        f.truncate(17 << 20)  # sparse: nothing is written
    with pytest.raises(CommandError, match="bytes, more than"):
        run_command(shell_on(loaded), f":open {path}")


def test_the_piped_shell_ends_at_a_stop_string_and_takes_the_penalty(tiny_run):
    args = ["repl", str(tiny_run), "--length", "300", "--seed", "1", "--temperature", "1"]
    free = CliRunner().invoke(cli, args, input="To be\n").output
    stop = free[40:42]
    stopped = CliRunner().invoke(cli, [*args, "--stop", stop, "--repeat-penalty", "1", "--min-p", "0"],
                                 input="To be\n")
    assert stopped.exit_code == 0 and stopped.output == free[: free.find(stop) + len(stop)] + "\n"
    penalised = CliRunner().invoke(cli, [*args, "--repeat-penalty", "50", "--repeat-last-n", "8"], input="To be\n")
    assert penalised.exit_code == 0 and penalised.output != free
    bad = CliRunner().invoke(cli, [*args, "--repeat-penalty", "0.5"], input="To be\n")
    assert bad.exit_code != 0 and bad.output.count("\n") == 1


def test_prompt_file_in_the_piped_shell_is_read_before_the_input(tiny_run, tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("To be\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["repl", str(tiny_run), "--prompt-file", str(path), "--length", "20",
                                      "--seed", "1"], input="or not\n")
    assert result.exit_code == 0, result.output
    session = Session(checkpoint.load(tiny_run), Settings(SampleConfig(length=20, seed=1)))
    session.set_text("To be\nor not\n")
    assert result.output == "".join(session.stream()) + "\n"
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    bad = CliRunner().invoke(cli, ["repl", str(tiny_run), "--prompt-file", str(tmp_path / "latin1.txt")], input="x")
    assert bad.exit_code != 0 and bad.output.count("\n") == 1 and "not UTF-8" in bad.output


# ---------------------------------------------------------------- history


def test_history_lives_in_the_data_folder_or_where_the_variable_says(tmp_path, monkeypatch):
    monkeypatch.delenv("LSTM_REPL_HISTORY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert history_path() == tmp_path / "data" / "lstm-repl" / "history"
    monkeypatch.setenv("LSTM_REPL_HISTORY", str(tmp_path / "h"))
    assert history_path() == tmp_path / "h"


def test_history_persists_across_shells_and_ctrl_r_finds_a_line(loaded, tmp_path, monkeypatch):
    monkeypatch.setenv("LSTM_REPL_HISTORY", str(tmp_path / "history"))

    async def first(d: Driver):
        for line in (":temp 0.5", ":topk 7", ":len 3"):
            await d.command(line)

    async def second(d: Driver):
        await d.until(lambda: ":topk 7" in d.buffer._working_lines, "the history to load")
        d.send(CTRL_R)
        await d.until(lambda: d.shell_app.search.control.buffer is not None and d.shell_app.app.layout
                      .search_target_buffer_control is not None, "the search to open")
        d.send("topk")
        await d.until(lambda: d.shell_app.search.control.buffer.text == "topk", "the query")
        d.send(ENTER)  # accepts the line found
        await d.until(lambda: d.buffer.text == ":topk 7" and d.shell_app.settled, "the line found")
        d.send(ENTER)  # and runs it
        await d.until(lambda: d.session.settings.sampling.top_k == 7, "the command to run")

    drive(loaded, first)
    assert [e for e in entries((tmp_path / "history").read_text("utf-8"))] == [":temp 0.5", ":topk 7", ":len 3"]
    drive(loaded, second, settings=Settings(SampleConfig(seed=1)))


@pytest.mark.parametrize("content", [
    b"\xff\xfe\x00garbage\n+\x1b[31mred\n# x\n+ok line\n",
    b"+" + b"x" * (HISTORY_READ * 2) + b"\n+last\n",  # larger than what is read: its tail is
    b"",
])
def test_a_hostile_or_huge_history_file_is_read_safely(tmp_path, content):
    path = tmp_path / "history"
    path.write_bytes(content)
    lines = list(PersistentHistory(path).load_history_strings())
    assert all(len(line) <= 4000 for line in lines)
    if content:
        assert lines[0] in ("ok line", "last")


def test_a_history_that_is_a_fifo_or_a_folder_or_unwritable_never_stops_the_shell(loaded, tmp_path, monkeypatch):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert list(PersistentHistory(fifo).load_history_strings()) == []
    history = PersistentHistory(fifo)
    history.store_string("x")  # not a regular file: never written, never blocks
    assert not history.writable
    blocked = tmp_path / "a-file"  # a folder cannot be made under a file (as root, a mode 500 folder would be written)
    blocked.write_text("x")
    monkeypatch.setenv("LSTM_REPL_HISTORY", str(blocked / "sub" / "history"))

    async def script(d: Driver):
        await d.command(":len 3")
        await d.command(":topk 2")
        d.send("\x1b[A")  # Up recalls the line kept in memory
        await d.until(lambda: d.buffer.text == ":topk 2", "Up")

    drive(loaded, script)
    assert blocked.read_text() == "x"


def test_two_shells_writing_history_at_once_keep_every_line(tmp_path):
    path = tmp_path / "history"
    a, b = PersistentHistory(path), PersistentHistory(path)

    def write(history, name):
        for i in range(300):
            history.store_string(f"{name} {i}")

    threads = [threading.Thread(target=write, args=(h, n)) for h, n in ((a, "a"), (b, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kept = entries(path.read_text("utf-8"))
    assert sorted(kept) == sorted([f"a {i}" for i in range(300)] + [f"b {i}" for i in range(300)])


# ---------------------------------------------------------------- sampling in the shell


def test_set_show_and_the_short_commands_share_one_table(loaded):
    shell = shell_on(loaded)
    assert run_command(shell, ":set minp 0.1").message == "min-p 0.1"
    assert run_command(shell, ":minp 0.2").message == "min-p 0.2"
    assert run_command(shell, ":set repeat-penalty 1.3").message == "repeat penalty 1.3"
    assert run_command(shell, ":set repeat-window 32").message == "repeat window 32 tokens"
    assert run_command(shell, ":set temp 0.5").message == "temperature 0.5"
    assert run_command(shell, ":set len 9").message == "Enter streams 9 tokens"
    assert run_command(shell, ":set seed 4").message == "seed 4"
    assert run_command(shell, ":stop \\n\\n").message == "streams stop at '\\n\\n'"
    assert run_command(shell, ":set stop END").message == "streams stop at '\\n\\n' 'END'"
    s = shell.session.settings.sampling
    assert (s.min_p, s.repeat_penalty, s.repeat_window, s.temperature, s.length, s.seed, s.stop) == (
        0.2, 1.3, 32, 0.5, 9, 4, ("\n\n", "END"))
    shown = run_command(shell, ":show").output
    for part in ("model:", "settings:", "minp", "0.2", "repeat-penalty", "'END'", "layer 1 of", "interventions:"):
        assert part in shown
    assert run_command(shell, ":stop").message == "no stop strings"
    for bad, says in ((":set minp 2", "min-p must be from 0"), (":set repeat-penalty 0.5", "repeat penalty"),
                      (":set colour red", "the settings are temp"), (":set topk 100000", "topk must be"),
                      (":set temp nan", "finite number")):
        with pytest.raises(CommandError, match=says) as raised:
            run_command(shell, bad)
        assert "\n" not in str(raised.value)


def test_the_status_line_shows_the_settings_that_are_on(loaded):
    async def script(d: Driver):
        status = lambda: "".join(text for _, text in d.shell_app.frame.status_fragments())  # noqa: E731
        assert "min-p" not in status() and "rep" not in status()
        for line in (":minp 0.05", ":set repeat-penalty 1.2", ":stop \\n"):
            await d.command(line)
        assert "min-p 0.05" in status() and "rep ×1.2/64" in status() and "stop '\\n'" in status()

    drive(loaded, script)


def test_a_stream_in_the_shell_ends_at_a_stop_string(loaded):
    free = Session(loaded, Settings(SampleConfig(seed=2, length=200, temperature=1.0)))
    text = "".join(free.stream())
    stop = text[30:32]

    async def script(d: Driver):
        await d.command(":len 200")
        await d.command(":set temp 1.0")
        await d.command(f":stop {stop}")
        await d.command(":seed 2")
        await enter_streams(d)
        assert d.shell.history == text[: text.find(stop) + len(stop)]
        assert d.session.text == d.shell.history

    drive(loaded, script)


def test_a_word_stream_cut_by_a_stop_string_is_read_again_cut(word_loaded):
    session = Session(word_loaded, Settings(SampleConfig(seed=3, length=60, temperature=1.0)))
    text = "".join(session.stream())
    long_words = [w for w in text.split() if len(w) >= 4]
    stop = long_words[0][:2]  # ends inside a word token
    cut = Session(word_loaded, Settings(SampleConfig(seed=3, length=60, temperature=1.0, stop=stop)))
    written = "".join(cut.stream())
    assert written == text[: text.find(stop) + len(stop)] and cut.text == written


def test_undo_and_regen_take_the_last_stream_back(loaded):
    async def script(d: Driver):
        await d.command(":len 20")
        await d.type("To be")
        await enter_streams(d)
        first = d.shell.history
        await d.command(":regen")
        await stream_ended(d)
        assert "⟲ :regen sampling the last stream again with seed" in d.screen.text()
        assert d.shell.history.startswith("To be") and len(d.shell.history) == len(first)
        assert d.shell.history != first and d.session.text == d.shell.history
        assert (await d.command(":undo")).startswith("took back the last stream (20 characters)")
        await d.until(lambda: d.session.text == "To be" and d.shell_app.settled, "the text before the stream")
        assert d.shell.history == "To be"
        assert "no stream to take back" in await d.command(":undo")

    drive(loaded, script)


def test_regen_is_the_same_in_a_replay_of_a_seeded_session(loaded):
    async def script(d: Driver):
        await d.command(":len 15")
        await d.command(":seed 8")
        await enter_streams(d)
        await d.command(":regen")
        await stream_ended(d)
        return d.shell.history

    first, second = (drive(loaded, script).shell.history for _ in range(2))
    assert first == second


# ---------------------------------------------------------------- sessions saved and restored


def _frame(d: Driver) -> tuple[list[str], str]:
    """The panel and the status line's settings (its message aside)."""
    columns = d.shell_app.app.output.get_size().columns
    status = d.shell_app.frame.status_fragments()
    return d.shell_app.frame.panel_lines(columns), "".join(text for style, text in status if "message" not in style)


def test_a_saved_session_is_restored_with_the_same_screen(loaded, tmp_path):
    path = tmp_path / "session.json"
    saved = {}

    async def save(d: Driver):
        for line in (":len 25", ":temp 0.6", ":minp 0.05", ":stop zz"):
            await d.command(line)
        await d.type("To be")
        await enter_streams(d)
        await d.command(":clamp 1:3=0.5")
        await d.type("or not")
        for line in (":layer 2", ":units 1 4 6", f":save {path}"):
            await d.command(line)
        saved["frame"], saved["text"] = _frame(d), d.session.text

    async def restore(d: Driver):
        message = await d.command(f":open {path}")
        assert message.startswith(f"restored {path}")
        await d.until(lambda: d.shell_app.settled, "the restored session")
        assert d.session.text == saved["text"] and _frame(d) == saved["frame"]
        assert (await d.command(":undo")).startswith("took back the last stream")  # its streams came back too

    drive(loaded, save)
    document = json.loads(path.read_text("utf-8"))
    assert document["format"] == "lstm-repl-trace" and document["session"]["settings"]["min_p"] == 0.05
    drive(loaded, restore)


def test_repl_session_restores_at_start(loaded, tmp_path, tiny_run):
    path = tmp_path / "s.json"
    shell = shell_on(loaded, prefix="To be or")
    run_command(shell, ":layer 2")
    run_command(shell, ":minp 0.1")
    run_command(shell, f":save {path}")
    from lstm_repl.shell.session_file import read_session, restore

    fresh = shell_on(checkpoint.load(tiny_run))
    restore(fresh, read_session(path))
    assert fresh.history == "To be or" and fresh.panel.layer == 1
    assert fresh.session.settings.sampling.min_p == 0.1 and fresh.session.text == "To be or"


def test_a_session_of_another_model_is_refused_in_one_line(loaded, word_loaded, tmp_path):
    path = tmp_path / "s.json"
    run_command(shell_on(word_loaded, prefix="the king"), f":save {path}")
    with pytest.raises(Exception, match="was saved with the model") as raised:
        run_command(shell_on(loaded), f":open {path}")
    assert "\n" not in str(raised.value)


def _saved(loaded, tmp_path) -> tuple:
    path = tmp_path / "s.json"
    run_command(shell_on(loaded, prefix="To be"), f":save {path}")
    text = path.read_text("utf-8")
    return path, text, json.loads(text)


def _rewrite(path, document) -> None:
    session = document.pop("session")
    path.write_text(json.dumps({"session": session, **document}), encoding="utf-8")


@pytest.mark.parametrize("change, says", [
    (lambda d: d["session"].update(extra=1), "unknown field 'extra'"),
    (lambda d: d["session"].update(layer=-1), "below 0"),
    (lambda d: d["session"].update(layer=99), "beyond the model"),
    (lambda d: d["session"].update(units=[1, 100000]), "beyond the model"),
    (lambda d: d["session"].update(text=5), "'text' should be a string"),
    (lambda d: d["session"]["settings"].update(temperature=-3), "temperature"),
    (lambda d: d["session"]["settings"].update(stop=[1]), "stop"),
    (lambda d: d["session"].update(interventions=[":quit"]), "not an intervention"),
    (lambda d: d["session"].update(interventions=[":clamp 9:1=1"]), "does not fit"),
    (lambda d: d["session"].update(streams=[10**6]), "outside its text"),
    (lambda d: d["session"].update(version=7), "upgrade lstm-repl"),
    (lambda d: d["session"]["model"].update(sha256="0" * 64), "was saved with the model"),
])
def test_a_hostile_session_file_is_one_line(loaded, tmp_path, change, says):
    path, _, document = _saved(loaded, tmp_path)
    change(document)
    _rewrite(path, document)
    shell = shell_on(loaded)
    with pytest.raises(Exception, match=says) as raised:
        run_command(shell, f":open {path}")
    assert "\n" not in str(raised.value) and shell.history == ""


@pytest.mark.parametrize("content, says", [
    ('{"session": {"a": [[[[' + "[" * 100000, "nested too deeply|not valid JSON"),
    ('{"session": NaN}', "not valid JSON"),
    ('{"session": {"text": "\\ud800', "not valid JSON"),
])
def test_a_broken_session_file_is_one_line(loaded, tmp_path, content, says):
    path = tmp_path / "s.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(Exception, match=says) as raised:
        run_command(shell_on(loaded), f":open {path}")
    assert "\n" not in str(raised.value)


def test_repl_session_of_a_broken_file_is_one_line_on_stderr(tiny_run, tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"session": {"format": "lstm-repl-session"}}', encoding="utf-8")
    result = CliRunner().invoke(cli, ["repl", str(tiny_run), "--session", str(path)])
    assert result.exit_code != 0 and result.output.count("\n") == 1 and "is missing" in result.output
