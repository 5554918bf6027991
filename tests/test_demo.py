"""lstm-repl demo: the scripted tour, written as a cast (no terminal needed), on a tiny model
whose units.json labels a unit: the tour types, streams and pins the labelled units by itself."""

from __future__ import annotations

import json
import shutil

import pyte
from click.testing import CliRunner

from lstm_repl.cli.main import cli
from lstm_repl.shell.tour import LINE, MORE


def test_the_demo_tours_the_shell_by_itself(tiny_run, tmp_path):
    model = tmp_path / "labelled"
    shutil.copytree(tiny_run / "best", model)
    labels = [{"feature": "in-quotes", "layer": 2, "unit": 5, "quantity": "c", "score": 0.91},
              {"feature": "newline", "layer": 2, "unit": 7, "quantity": "c", "score": 0.88}]
    (model / "units.json").write_text(json.dumps({"format": "lstm-repl-units", "format_version": 1,
                                                  "labels": labels}), "utf-8")
    out = tmp_path / "tour.cast"
    result = CliRunner().invoke(cli, ["demo", "--model", str(model), "--cast", str(out), "--size", "100x30",
                                      "--speed", "8"])
    assert result.exit_code == 0, result.output
    lines = out.read_text("utf-8").splitlines()
    header, events = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    assert header["version"] == 2 and (header["width"], header["height"]) == (100, 30)
    screen = pyte.Screen(100, 30)
    stream = pyte.Stream(screen)
    shown = []
    for _, _, data in events:
        stream.feed(data)
        shown.append("\n".join(screen.display))
    assert any(f"> {LINE}." in s for s in shown)  # typed, with its full stop
    assert any("streamed 120 tokens" in s for s in shown)
    assert any("pinned units 5 7" in s and "in-quotes 0.91" in s for s in shown)  # labelled, on layer 2
    assert any(MORE.strip() in s for s in shown)


def test_the_demo_without_a_terminal_says_how_to_write_it(tiny_run):
    result = CliRunner().invoke(cli, ["demo", "--model", str(tiny_run)])
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1
    assert "--cast" in result.output
