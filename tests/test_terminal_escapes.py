"""Nothing derived from data acts on the terminal (issue 22, point 2).

A tiny real word model is trained on a coloured log and then edited as an attacker would: its
vocabulary made to hold every C0 and C1 control, DEL, ESC sequences (OSC 0 retitles the window,
OSC 52 writes the clipboard, CSI 8 resizes it), C1 sequences and rich markup ([/], [bold]), those
tokens made the likeliest, the weights' sha256 recomputed. It lies in a folder named like markup
and an OSC sequence, its corpus file too, and its units.json labels a unit with both. Every path
that shows data runs on it: generate (and --raw, exact), the piped shell, the interactive shell's
screen (stream tail, text printed above, panel, labels, status line, :info, an error), replay's
transcript and cast, one-line errors, info, trace, heatmap --terminal, units and saturation. None
writes a character that acts on a terminal, and none ends in a traceback.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from prompt_toolkit.output.vt100 import Vt100_Output
from rich.console import Console
from safetensors.torch import load_file, save_file

from lstm_repl.config import SampleConfig
from lstm_repl.model import checkpoint
from lstm_repl.cli.main import cli
from lstm_repl.training.events import Event
from lstm_repl.cli.progress import PlainReporter, RichReporter
from lstm_repl.shell.headless import PASTE_GAP_S, Headless, run_headless, shell_on
from lstm_repl.session.session import Settings
from lstm_repl.terminal_text import terminal_safe
from pyte_terminal import Terminal

TITLE = "\x1b]0;pwned\x07"  # OSC 0: sets the window title
CLIPBOARD = "\x1b]52;c;cHduZWQ=\x07"  # OSC 52: writes "pwned" to the clipboard
RESIZE = "\x1b[8;5;20t"  # CSI 8: resizes the window; a program never writes it to style text
HOSTILE = {  # placeholder word in the corpus -> the token an attacker puts in its place
    "alpha": TITLE, "beta": CLIPBOARD, "gamma": RESIZE, "delta": "[/]", "epsilon": "[bold]",
    "zeta": "\x9b2J", "eta": "\x9d0;c1\x9c", "theta": "\x00",
}
EVERY_CONTROL = "".join(map(chr, range(1, 0x20))) + "\x7f" + "".join(map(chr, range(0x80, 0xA0)))
LOG_LINE = ("\x1b[31mERROR\x1b[0m alpha [/] beta [bold]gamma[/bold] delta\n"
            "\x1b]0;title\x07 epsilon \x1b]52;c;Y2xpcA==\x07 zeta eta theta\n")
MODEL_FOLDER = Path("runs", "[", "x]" + TITLE + "[bold]")  # runs/[/x]...: markup, and an OSC sequence
CORPUS_FILE = Path("[", "log]" + TITLE + "[bold].txt")  # [/log]: markup again
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
PROGRAM_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")  # CSI sequences and \r, as a program places its text
ENTER = "\r"
TIMEOUT = 20.0


class Hostile:
    def __init__(self, folder: Path, corpus: Path):
        self.folder, self.corpus = folder, corpus

    @property
    def spec(self) -> str:
        return str(self.folder)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Hostile:
    """The edited model, its corpus, and a units.json labelling units 0 and 1."""
    root = tmp_path_factory.mktemp("hostile")
    corpus = root / CORPUS_FILE
    corpus.parent.mkdir()
    corpus.write_text((LOG_LINE * 20 + EVERY_CONTROL + "\n") * 10, encoding="utf-8")
    args = ["train", str(corpus), "--out", str(root / "run"), "--level", "word", "--hidden", "16", "--embed", "8",
            "--layers", "1", "--batch-size", "8", "--seq-len", "32", "--max-steps", "40", "--eval-interval", "20",
            "--precision", "fp32"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    folder = root / MODEL_FOLDER
    shutil.copytree(root / "run" / "best", folder)
    _edit_as_an_attacker(folder)
    labels = [{"feature": TITLE + "[/]" + CLIPBOARD, "layer": 1, "unit": unit, "quantity": "c", "score": 0.9,
               "metric": "auroc", "direction": "high inside", "measured_on": "x"} for unit in (0, 1)]
    (folder / "units.json").write_text(json.dumps({"format": "lstm-repl-units", "format_version": 1,
                                                   "labels": labels}), "utf-8")
    return Hostile(folder, corpus)


def _edit_as_an_attacker(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text("utf-8"))
    tokens = config["vocab"]["tokens"]
    weights = load_file(str(folder / "model.safetensors"))
    for placeholder, token in HOSTILE.items():
        index = tokens.index(placeholder)
        tokens[index] = token
        weights["decoder.bias"][index + 1] += 4.0  # id 0 is the unknown token
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "lstm-repl-checkpoint"})
    data = (folder / "model.safetensors").read_bytes()
    config["files"]["model.safetensors"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (folder / "config.json").write_text(json.dumps(config), "utf-8")


def assert_safe(text: str, program_codes: bool = False) -> None:
    """No character of `text` acts on a terminal. With program_codes, the CSI sequences and carriage
    returns a program writes to style and place its own text are allowed, but nothing else: no
    OSC or DCS, no BEL, no C1 control, and none of the vocabulary's own CSI (RESIZE)."""
    assert RESIZE not in text and TITLE not in text and CLIPBOARD not in text
    rest = PROGRAM_CODES.sub("", text) if program_codes else text
    found = UNSAFE.search(rest)
    assert found is None, f"{found.group()!r} at {found.start()}: {rest[max(0, found.start() - 40):found.end() + 40]!r}"


def run_cli(args: list[str], env: dict | None = None, **kwargs):
    """The command, as a terminal would get it: stdout and stderr as UTF-8 (a lone surrogate would fail here)."""
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "160", **(env or {})}, **kwargs)
    stdout, stderr = result.stdout_bytes.decode("utf-8"), result.stderr_bytes.decode("utf-8")
    assert "Traceback" not in stdout + stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, stdout, stderr


# ---------------------------------------------------------------- the vocabulary itself


def test_the_vocabulary_holds_every_control_escape_sequences_and_markup(hostile):
    vocab = checkpoint.load(hostile.folder).vocab
    held = "".join(vocab.tokens)
    assert all(ch in held for ch in EVERY_CONTROL + "\x00")
    assert all(token in vocab.ids for token in HOSTILE.values())


def test_a_vocabulary_with_a_lone_surrogate_is_one_line_not_an_encoding_error(hostile, tmp_path):
    folder = tmp_path / "surrogate"
    shutil.copytree(hostile.folder, folder)
    config = json.loads((folder / "config.json").read_text("utf-8"))
    config["vocab"]["tokens"][0] = "\ud800"
    (folder / "config.json").write_text(json.dumps(config), "utf-8")  # json writes it as \ud800
    code, stdout, stderr = run_cli(["generate", str(folder), "--length", "5"])
    assert code == 1 and stdout == ""
    assert stderr.count("\n") == 1 and "lone surrogate (U+D800)" in stderr


# ---------------------------------------------------------------- commands


def test_generate_shows_controls_visibly_and_raw_writes_the_exact_text(hostile):
    args = ["generate", hostile.spec, "--prompt", "alpha" + TITLE, "--length", "300", "--temperature", "2",
            "--seed", "1", "--precision", "fp32"]
    code, shown, _ = run_cli(args)
    assert code == 0
    assert_safe(shown)
    assert "\\x1b]0;pwned\\x07" in shown and "\\x1b]52;c;cHduZWQ=\\x07" in shown and "[/]" in shown
    result = CliRunner().invoke(cli, [*args, "--raw"])
    raw = result.stdout_bytes
    assert result.exit_code == 0 and TITLE.encode() in raw and CLIPBOARD.encode() in raw and b"\x00" in raw
    assert terminal_safe(raw.decode("utf-8")) == shown  # the same text, shown safely or exactly


def test_generate_raw_gives_back_the_bytes_of_a_prompt_that_is_not_utf8(hostile):
    prompt = b"\xff\xfe ok".decode("utf-8", "surrogateescape")  # as Python hands over such an argument
    result = CliRunner().invoke(cli, ["generate", hostile.spec, "--prompt", prompt, "--length", "0", "--raw"])
    assert result.exit_code == 0 and result.stdout_bytes == b"\xff\xfe ok\n"
    code, shown, _ = run_cli(["generate", hostile.spec, "--prompt", prompt, "--length", "0"])
    assert shown == "‹ff›‹fe› ok\n"  # each byte that is no UTF-8 character, shown as such


def test_the_piped_shell(hostile):
    code, stdout, stderr = run_cli(["repl", hostile.spec, "--length", "300", "--temperature", "2", "--seed", "1"],
                                   input="alpha beta")
    assert code == 0 and "\\x1b]0;pwned\\x07" in stdout
    assert_safe(stdout + stderr)


def test_info_and_info_json(hostile):
    code, table, _ = run_cli(["info", hostile.spec])
    assert code == 0 and "[/]" in table and "x]\\x1b]0;pwned\\x07[bold]" in table
    assert_safe(table)
    code, document, _ = run_cli(["info", hostile.spec, "--json"])
    assert code == 0
    assert_safe(document)
    assert json.loads(document)["checkpoint"] == str(hostile.folder)  # exact: its escapes decode to the data


def test_trace_table_and_json(hostile):
    text = "alpha [/] beta " + TITLE
    code, table, _ = run_cli(["trace", hostile.spec, text, "--units", "0-2"])
    assert code == 0 and "[/]" in table and "\\x1b[8;5;20t" in table  # predicted tokens, shown
    assert_safe(table)
    code, document, _ = run_cli(["trace", hostile.spec, text, "--json"])
    assert code == 0
    assert_safe(document)
    assert "".join(token["text"] for token in json.loads(document)["tokens"]) == text


def test_heatmap_in_the_terminal(hostile):
    args = ["heatmap", hostile.spec, str(hostile.corpus), "--unit", "1:0", "--unit", "1:1", "--terminal",
            "--limit", "400"]
    code, drawn, _ = run_cli(args, env={"FORCE_COLOR": "1"})  # in colour, as on a terminal
    assert code == 0 and "\\x1b]0;pwned\\x07[/]" in drawn  # the units.json label, shown
    assert_safe(drawn, program_codes=True)


def test_units_and_saturation(hostile):
    code, ranking, _ = run_cli(["units", hostile.spec, str(hostile.corpus), "--regex", "ERROR", "--top", "3"])
    assert code == 0 and "x]\\x1b]0;pwned\\x07[bold]" in ranking
    assert_safe(ranking)
    code, plots, _ = run_cli(["saturation", hostile.spec, str(hostile.corpus), "--limit", "2000"])
    assert code == 0
    assert_safe(plots)


@pytest.mark.parametrize("args", [
    ["info", "{folder}/missing"],
    ["generate", "{folder}/missing"],
    ["heatmap", "{folder}", "{corpus}.missing", "--unit", "1:0", "--terminal"],
    ["units", "{folder}", "{corpus}", "--feature", TITLE + "[/]"],
    ["replay", "{corpus}.missing"],
])
def test_one_line_errors_naming_such_files(hostile, args):
    args = [a.format(folder=hostile.folder, corpus=hostile.corpus) for a in args]
    code, stdout, stderr = run_cli(args)
    assert code != 0 and stderr.startswith("error: ") and stderr.count("\n") == 1
    assert "\\x1b]0;pwned\\x07" in stderr
    assert_safe(stdout + stderr)


def test_training_shows_a_run_folder_named_like_markup(tmp_path):
    start = {"parameters": 10, "device_name": "cpu" + TITLE, "precision": "fp32", "train_tokens": 1,
             "val_tokens": 1, "vocab_size": 3, "out_dir": "runs/[/x]" + TITLE}
    stream = io.StringIO()
    reporter = RichReporter(Console(file=stream, force_terminal=True, width=200))
    reporter(Event("start", 0, start))
    reporter(Event("warning", 1, {"message": "[bold]" + CLIPBOARD}))
    reporter.close()
    assert "runs/[/x]\\x1b]0;pwned\\x07" in stream.getvalue()
    assert_safe(stream.getvalue(), program_codes=True)
    plain = io.StringIO()
    PlainReporter(plain)(Event("start", 0, start))
    assert_safe(plain.getvalue())


def test_corpus_list_in_a_corpora_folder_named_like_markup(tmp_path):
    folder = tmp_path / "[" / ("x]" + TITLE)
    folder.mkdir(parents=True)
    code, table, _ = run_cli(["corpus", "list"], env={"LSTM_REPL_CORPORA": str(folder)})
    assert code == 0 and "[/x]\\x1b]0;pwned\\x07" in table.replace("\n", "")
    assert_safe(table)


# ---------------------------------------------------------------- the interactive shell, recorded, replayed


class RecordingTerminal(Terminal):
    """A pyte terminal that also keeps every character written to it."""

    def __init__(self, columns: int = 120, rows: int = 40):
        super().__init__(columns, rows)
        self.written: list[str] = []

    def write(self, data: str) -> None:
        self.written.append(data)
        super().write(data)


@pytest.fixture(scope="module")
def shell_session(hostile, tmp_path_factory):
    """The shell on the hostile model, on a VT100 terminal, recorded: units pinned (their labels
    shown), a stream, :info, a :load naming a missing hostile folder, then :quit."""
    recording = tmp_path_factory.mktemp("recording") / "session.jsonl"
    terminal = RecordingTerminal()
    loaded = checkpoint.load(hostile.folder)
    seen: dict[str, list[str]] = {}

    async def script(d: Headless) -> None:
        shell_app = d.shell_app

        async def until(condition, what: str) -> None:
            await d.until(condition, what, TIMEOUT)

        async def send(keys: str, done, what: str) -> None:
            await asyncio.sleep(3 * PASTE_GAP_S)  # the recorded gap: keys that came on their own
            await d.settle(TIMEOUT)
            d.send(keys)
            await until(done, what)

        await send(f":record {recording}{ENTER}", lambda: shell_app.message.startswith("recording"), ":record")
        await send(f":units 0 1 2{ENTER}", lambda: "pinned" in shell_app.message, ":units")
        await send("alpha", lambda: shell_app.buffer.text == "alpha", "typing")
        await send(ENTER, lambda: shell_app.message.startswith("streamed"), "a stream")
        await until(d.settled, "the stream's text printed")
        seen["after stream"] = terminal.rows()
        await send(f":info{ENTER}", lambda: shell_app.message == "model info above", ":info")
        await send(f":load {hostile.folder}/missing{ENTER}", lambda: shell_app.message.startswith("⚠"), ":load")
        await until(d.settled, "the error shown")
        seen["after error"] = terminal.rows()
        await send("\x03", lambda: shell_app.buffer.text == "", "Ctrl-C clearing the line")
        await send(f":quit{ENTER}", lambda: not shell_app.app.is_running, ":quit")

    output = Vt100_Output(terminal, lambda: terminal.size, term="xterm")
    settings = Settings(SampleConfig(seed=1, temperature=2.0, length=200))
    run_headless(shell_on(loaded, settings), script, output, color=True)
    return terminal, seen, recording


def test_the_interactive_shell_shows_everything_safely(shell_session):
    terminal, seen, _ = shell_session
    assert_safe("".join(terminal.written), program_codes=True)
    assert terminal.screen.title == ""  # no OSC 0 took effect
    after_stream = "\n".join(seen["after stream"])
    assert "\\x1b]0;pwned\\x07" in after_stream  # the stream's text, shown
    labels = next(row for row in seen["after stream"] if row.startswith("tracks"))
    assert "\\x1b]0;pwned" in labels  # the units.json label, shown (cut to its column)
    assert "x]\\x1b]0;pwned\\x07[bold]" in "\n".join(seen["after error"])  # the model's name and the error


def test_replay_transcript_and_cast(shell_session, hostile, tmp_path):
    _, _, recording = shell_session
    code, transcript, stderr = run_cli(["replay", str(recording)])
    assert code == 0 and "\\x1b]0;pwned\\x07" in transcript
    assert_safe(transcript + stderr)
    cast = tmp_path / ("cast" + TITLE + ".cast")
    code, stdout, _ = run_cli(["replay", str(recording), "--cast", str(cast), "--size", "120x40"])
    assert code == 0
    assert_safe(stdout)
    lines = cast.read_text("utf-8").splitlines()
    header, events = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    assert_safe(header.get("title", ""))
    played = Terminal(120, 40)
    for _, _, data in events:
        assert_safe(data, program_codes=True)
        played.write(data)
    assert played.screen.title == "" and "\\x1b]0;pwned\\x07" in "\n".join(played.rows())
