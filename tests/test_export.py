"""`lstm-repl export` never deletes or overwrites anything it did not write: every refused DEST
is one line, exit 1, and the whole tree around it (a file of the user's in each case) unchanged;
a folder holding exactly an earlier export is replaced atomically."""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lstm_repl.model import checkpoint
from lstm_repl.cli.main import cli


def _export(run, dest, command: str = "lstm-repl train tiny.txt"):
    return CliRunner().invoke(cli, ["export", str(run), str(dest), "--command", command])


def _tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under root: a file's bytes, a link's target, a folder's mark."""
    found: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = "-> " + os.readlink(path)
            elif path.is_dir():
                found[key] = "folder"
            elif path.is_file():
                found[key] = path.read_bytes()
            else:
                found[key] = "special"
    return found


@pytest.fixture
def work(tiny_run, tmp_path, monkeypatch) -> Path:
    """tmp_path/work, the working folder: runs/x (a copy of a trained run), mine/notes.txt and
    notes.txt of the user's."""
    work = tmp_path / "work"
    shutil.copytree(tiny_run, work / "runs" / "x")
    (work / "mine").mkdir()
    (work / "mine" / "notes.txt").write_text("the user's")
    (work / "notes.txt").write_text("the user's")
    monkeypatch.chdir(work)
    return work


def _refused(result, *words: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output, result.output
    for word in words:
        assert word in lines[0], lines[0]


def _earlier_export(work: Path, name: str = "model") -> Path:
    result = _export("runs/x", name, "the earlier command")
    assert result.exit_code == 0, result.output
    return work / name


REFUSED = {
    "a folder of the user's": (lambda work: "mine", ["mine", "notes.txt"]),
    "the run itself": (lambda work: "runs/x", ["is the run"]),
    "a checkpoint inside the run": (lambda work: "runs/x/best", ["inside it"]),
    "a new folder inside the run": (lambda work: "runs/x/model", ["inside it"]),
    "the run's parent": (lambda work: "runs", ["holds the run"]),
    "the working folder, holding the run": (lambda work: ".", ["holds the run"]),
    "a file": (lambda work: "notes.txt", ["is a file"]),
    "a FIFO": (lambda work: os.mkfifo(work / "fifo") or "fifo", ["FIFO"]),
    "a symlink to the run": (lambda work: _link(work, "runs/x"), ["symbolic link"]),
    "a symlink to a folder of the user's": (lambda work: _link(work, "mine"), ["symbolic link"]),
    "a new folder through a symlink into the run": (lambda work: f"{_link(work, 'runs/x')}/model", ["inside it"]),
    "an earlier export plus a file of the user's": (lambda work: _with_file(_earlier_export(work)), ["mine.txt"]),
    "an export's three files, config.json not a checkpoint's": (lambda work: _foreign_config(work), ["config.json"]),
    "a folder of the user's where the earlier export is set aside": (lambda work: _in_the_way(work), [".model.old"]),
}


def _link(work: Path, target: str) -> str:
    (work / "link").symlink_to(work / target, target_is_directory=True)
    return "link"


def _with_file(folder: Path) -> str:
    (folder / "mine.txt").write_text("the user's")
    return folder.name


def _foreign_config(work: Path) -> str:
    folder = _earlier_export(work)
    (folder / "config.json").write_text('{"format": "someone-else"}')
    return folder.name


def _in_the_way(work: Path) -> str:
    _earlier_export(work)
    aside = work / ".model.old"
    aside.mkdir()
    (aside / "notes.txt").write_text("the user's")
    return "model"


@pytest.mark.parametrize("case", REFUSED)
def test_a_destination_export_did_not_write_is_refused_and_nothing_is_touched(work, case):
    make, words = REFUSED[case]
    dest = make(work)
    before = _tree(work.parent)
    _refused(_export("runs/x", dest), *words)
    assert _tree(work.parent) == before


@pytest.mark.parametrize("dest", [".", "..", "../.."])
def test_the_working_folder_and_its_ancestors_are_refused(work, monkeypatch, dest):
    deeper = work.parent / "home" / "a" / "b"
    deeper.mkdir(parents=True)
    (deeper / "notes.txt").write_text("the user's")
    monkeypatch.chdir(deeper)
    before = _tree(work.parent)
    _refused(_export(work / "runs" / "x", dest), "working folder")
    assert _tree(work.parent) == before


def test_a_new_or_empty_folder_gets_the_export_and_an_earlier_export_is_replaced(work):
    (work / "empty").mkdir()
    for dest in ("new/model", "empty"):
        result = _export("runs/x", dest)
        assert result.exit_code == 0, result.output
        assert sorted(os.listdir(dest)) == ["README.md", "config.json", "model.safetensors"]
        assert checkpoint.load(dest).vocab.level == "char"
    earlier = _earlier_export(work)
    assert "the earlier command" in (earlier / "README.md").read_text()
    around = {k: v for k, v in _tree(work.parent).items() if not k.startswith("work/model")}
    result = _export("runs/x", "model", "the later command")
    assert result.exit_code == 0, result.output
    assert "the later command" in (earlier / "README.md").read_text()
    assert sorted(os.listdir(earlier)) == ["README.md", "config.json", "model.safetensors"]
    assert {k: v for k, v in _tree(work.parent).items() if not k.startswith("work/model")} == around


def test_a_folder_of_the_users_named_like_the_temporary_one_survives(work):
    (work / ".model.export").mkdir()
    (work / ".model.export" / "notes.txt").write_text("the user's")
    assert _export("runs/x", "model").exit_code == 0
    assert (work / ".model.export" / "notes.txt").read_text() == "the user's"


@pytest.mark.slow  # starts a real process
def test_a_write_that_fails_leaves_the_earlier_export_whole(work):
    earlier = _tree(_earlier_export(work))
    weights = (work / "runs" / "x" / "best" / "model.safetensors").stat().st_size
    limit = weights // 2  # the copy of the weights fails part way (EFBIG, as a full disk would)

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run([sys.executable, "-m", "lstm_repl", "export", "runs/x", "model", "--command", "c"],
                            preexec_fn=small_files, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "untouched" in result.stderr, result.stderr
    assert _tree(work / "model") == earlier
    assert sorted(os.listdir(work)) == ["mine", "model", "notes.txt", "runs"]  # no temporary folder left


def test_a_bpe_run_exports_with_its_tokenizer_and_an_exact_figure_on_its_card(tiny_bpe_run, tmp_path):
    dest = tmp_path / "bpe-export"
    result = _export(tiny_bpe_run, dest, "lstm-repl train tiny.txt --level bpe")
    assert result.exit_code == 0, result.output
    best = checkpoint.resolve(tiny_bpe_run)
    assert (dest / checkpoint.TOKENIZER_FILE).read_bytes() == (best / checkpoint.TOKENIZER_FILE).read_bytes()
    exported = checkpoint.load(dest)
    assert exported.vocab.level == "bpe" and exported.vocab.decode(exported.vocab.encode("Citizen €")) == "Citizen €"
    card = (dest / "README.md").read_text("utf-8")
    assert "A bpe-level LSTM" in card and "spaces counted" not in card
    best = re.search(r"\| best validation \| ([0-9.]+) nats per token, ([0-9.]+) bits per character \|", card)
    assert best, card  # the figure the log holds at the best validation, not NaN
    info = CliRunner().invoke(cli, ["info", str(dest)])
    assert info.exit_code == 0 and "spaces counted" not in info.output, info.output
