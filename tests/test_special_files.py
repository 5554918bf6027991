"""Special files where a regular one is expected (issue 22, point 5): a FIFO, /dev/zero through a
symlink, a folder. Each is named in one line at once, never read: before, weights that were a
FIFO hung `info` and `:load`, a FIFO corpus was "no such file", `lstm-repl < /dev/zero` read forever."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from lstm_repl.model import checkpoint
from lstm_repl.model.checkpoint import WEIGHTS_FILE
from lstm_repl.cli.main import cli
from lstm_repl.errors import CheckpointError, LstmReplError
from lstm_repl.shell.colon_commands import run_command
from lstm_repl.shell.shell_state import Shell
from lstm_repl.session.session import Session

TIMEOUT = 60  # seconds: far more than any of these takes; a hang fails the test instead of the suite


def finishes(work, timeout: float = TIMEOUT):
    """work()'s result, or a failure if it does not return in time (it runs in a daemon thread)."""
    outcome = {}

    def target():
        try:
            outcome["result"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "hung: a special file was read"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def run(*args: str, input: str | bytes | None = None):
    return finishes(lambda: CliRunner().invoke(cli, [str(a) for a in args], input=input))


def one_line_error(result, *words: str) -> str:
    assert result.exit_code not in (0, None), result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


def make_special(path: Path, kind: str) -> None:
    if kind == "FIFO":
        os.mkfifo(path)
    elif kind == "character device":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()


KINDS = ["FIFO", "character device", "folder"]


def files_of(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


@pytest.fixture
def broken_copy(tiny_run, tmp_path):
    """A copy of the tiny run whose file `name` (in best/ or last/) is replaced by a special file."""
    def make(name: str, kind: str, where: str = "best") -> Path:
        run_dir = tmp_path / "run"
        shutil.copytree(tiny_run, run_dir)
        target = run_dir / where / name
        target.unlink()
        make_special(target, kind)
        return run_dir
    return make


@pytest.mark.parametrize("kind", KINDS)
def test_weights_that_are_a_special_file_are_named_by_info(broken_copy, kind):
    run_dir = broken_copy(WEIGHTS_FILE, kind)
    one_line_error(run("info", run_dir), WEIGHTS_FILE, f"is a {kind}", "not a regular file")


@pytest.mark.parametrize("kind", ["FIFO", "character device"])
def test_load_in_the_shell_refuses_weights_that_are_a_special_file(tiny_run, broken_copy, kind):
    run_dir = broken_copy(WEIGHTS_FILE, kind)
    shell = Shell(Session(checkpoint.load(tiny_run)), load_checkpoint=checkpoint.load, writes_files=False)
    with pytest.raises(LstmReplError, match=f"is a {kind}"):
        finishes(lambda: run_command(shell, f":load {run_dir}"))
    assert shell.session.loaded.path == checkpoint.resolve(tiny_run)  # the model loaded before stays


@pytest.mark.parametrize("kind", ["FIFO", "character device"])
def test_resume_tensors_that_are_a_special_file_are_named_and_nothing_is_lost(broken_copy, kind):
    run_dir = broken_copy("resume.safetensors", kind, where="last")
    before = files_of(run_dir)
    one_line_error(run("train", "--resume", run_dir, "--max-steps", "200"), "resume.safetensors", f"is a {kind}")
    assert files_of(run_dir) == before


def test_weights_larger_than_the_model_can_hold_are_not_hashed_or_read(tiny_run, tmp_path):
    """An attacker who appends a gigabyte and recomputes the sha256 in config.json: the size alone refuses it."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    weights = run_dir / "best" / WEIGHTS_FILE
    with open(weights, "ab") as handle:
        handle.truncate(weights.stat().st_size + (1 << 30))  # sparse: costs no disk
    config_path = run_dir / "best" / "config.json"
    config = json.loads(config_path.read_text())
    config["files"][WEIGHTS_FILE] = {"sha256": "0" * 64, "bytes": weights.stat().st_size}
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="more than a safetensors file of this model can be"):
        finishes(lambda: checkpoint.load(run_dir))


@pytest.mark.parametrize("kind", KINDS)
def test_a_corpus_that_is_a_special_file_is_named_not_called_missing(tiny_run, tmp_path, kind):
    corpus = tmp_path / "corpus.txt"
    make_special(corpus, kind)
    if kind == "folder":  # an empty folder is its own case
        one_line_error(run("train", corpus, "--out", tmp_path / "out", "--max-steps", "1"), "holds no files")
        return
    for args in (["train", corpus, "--out", tmp_path / "out", "--max-steps", "1"],
                 ["units", tiny_run, corpus, "--feature", "digit"],
                 ["heatmap", tiny_run, corpus, "--unit", "1:0", "--terminal"],
                 ["eval", tiny_run, corpus]):
        one_line_error(run(*args), str(corpus), f"is a {kind}", "not a regular file")
    assert not (tmp_path / "out" / "best").exists()


def test_special_files_inside_a_corpus_folder_are_skipped(tiny_corpus, tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    shutil.copy(tiny_corpus, folder / "a.txt")
    os.mkfifo(folder / "b.fifo")
    (folder / "c.txt").symlink_to("/dev/zero")
    result = run("train", folder, "--out", tmp_path / "out", "--max-steps", "2", "--hidden", "8", "--embed", "8",
                 "--batch-size", "2", "--seq-len", "8", "--precision", "fp32")
    assert result.exit_code == 0, result.output


def binary_stdin_run(*args: str) -> subprocess.CompletedProcess:
    with open("/dev/zero", "rb") as zero:
        return subprocess.run([sys.executable, "-m", "lstm_repl", *args], stdin=zero, capture_output=True, text=True,
                              timeout=TIMEOUT)


@pytest.mark.slow  # starts a real process
@pytest.mark.parametrize("command", [["repl"], ["generate", "--length", "5"]])
def test_piped_input_from_dev_zero_ends_in_one_line_at_once(tiny_run, command):
    child = binary_stdin_run(command[0], str(tiny_run), *command[1:])
    assert child.returncode == 1, child.stderr
    assert child.stderr.strip() == "error: standard input looks binary (NUL byte at offset 0); pipe in text"
    assert child.stdout == ""


def test_piped_input_names_the_offset_of_its_first_nul(tiny_run):
    text = "All:\nSpeak, speak.\n" * 5000  # several blocks before the NUL
    result = run("repl", tiny_run, "--length", "5", input=text.encode() + b"\x00tail")
    one_line_error(result, f"NUL byte at offset {len(text.encode())}")


def test_generate_reads_at_most_a_megabyte_of_piped_prompt(tiny_run):
    result = run("generate", tiny_run, "--length", "5", input="All speak. " * 100_000)
    one_line_error(result, "more than 1,048,576 bytes", "lstm-repl repl")
    fine = run("generate", tiny_run, "--length", "5", "--seed", "1", input="All speak. " * 1000)
    assert fine.exit_code == 0, fine.output


def test_a_path_too_long_for_the_filesystem_is_one_line(tiny_run, tmp_path):
    """Found by the property test of shell commands: `:load` of a 300-character name was an
    OSError from Path.is_file (ENAMETOOLONG), and so were `info` and `train` of one."""
    long_name = "9" * 300
    one_line_error(run("info", long_name), "not a checkpoint folder", "file name too long")
    one_line_error(run("train", long_name, "--max-steps", "1"), "file name too long")
    shell = Shell(Session(checkpoint.load(tiny_run)), load_checkpoint=checkpoint.load, writes_files=False)
    with pytest.raises(CheckpointError, match="File name too long"):
        run_command(shell, f":load {long_name}")
