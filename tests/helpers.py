"""What several test modules use that is not a fixture: the tiny corpus text, training a tiny
model through the real CLI, the one-line error check, a fake source distribution. (Fixtures are in
conftest.py; test modules import from here, never from each other.)"""

from __future__ import annotations

import io
import json
import signal
import tarfile
from pathlib import Path

TINY_TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
    "All:\nResolved. resolved.\n\n"
)


def train_tiny(corpus: Path, out: Path, *extra: str, steps: int = 150) -> Path:
    """Train a tiny char model through the real CLI; returns the run folder."""
    from click.testing import CliRunner

    from lstm_repl.cli.main import cli

    args = ["train", str(corpus), "--out", str(out), "--hidden", "24", "--embed", "12", "--layers", "2",
            "--batch-size", "8", "--seq-len", "32", "--max-steps", str(steps), "--eval-interval", "50",
            "--log-interval", "10", "--precision", "fp32", "--lr", "0.01", *_unplanned(extra), *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out


def _unplanned(extra: tuple[str, ...]) -> list[str]:
    """The settings train would plan, fixed, so the fixtures stay the models they were (dropout
    as the level's default; AdamW, at the helper's lr 0.01, where word level now takes SGD); a
    test that gives one of them keeps its own."""
    word = "word" in extra
    fixed = {"--dropout": "0.2" if word else "0", "--input-dropout": "0", "--output-dropout": "0",
             "--embed-dropout": "0", "--weight-drop": "0", "--weight-decay": "0", "--optimizer": "adam",
             "--grad-clip": "5"}
    return [item for flag, value in fixed.items() if flag not in extra for item in (flag, value)]


def one_line_error(result, *words: str) -> str:
    output = result.output
    assert result.exit_code != 0, output
    assert "Traceback" not in output, output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    line = lines[0]
    assert line.startswith("error:"), output
    for word in words:
        assert word.lower() in line.lower(), line
    return line


def fake_sdist(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def fake_catalogue(tmp_path: Path, **entry) -> Path:
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps({"format": 1, "corpora": [entry]}), encoding="utf-8")
    return path


def default_sigint() -> None:
    """For Popen's preexec_fn: the child takes Ctrl-C as a terminal's process would, even when the
    tests run as a background job (the shell starts those with SIGINT ignored, and Python then
    installs no KeyboardInterrupt handler in the child)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
