"""Finding what units do: features of a text, unit scores, saturation and heatmaps, on tiny real models."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lstm_repl.model import checkpoint
from lstm_repl.cli.main import cli
from lstm_repl.analysis.features import FEATURES, find_feature, in_quotes, indent, line_position, word_start
from lstm_repl.analysis.unit_labels import read_labels
from lstm_repl.analysis.unit_scores import AurocAccumulator, CorrelationAccumulator
from lstm_repl.analysis.unit_search import score_units, tokenize
from lstm_repl.analysis.unit_trace import trace_units
from helpers import TINY_TEXT


def marks(text: str, mask: np.ndarray) -> str:
    return "".join("^" if m else " " for m in mask)


# ---------------------------------------------------------------- features


def test_in_quotes_covers_strings_from_the_opening_quote_and_not_apostrophes():
    text = "x = \"a(b)\" + 'c'  # don't\ny = '''two\nlines''' + 1"
    inside = in_quotes(text)
    assert marks(text, inside) == marks(text, [
        4 <= i < 9 or 13 <= i < 15 or 30 <= i < 42 for i in range(len(text))])


def test_an_unclosed_quote_ends_with_its_line():
    text = "print('oops\nx = 1"
    assert not in_quotes(text)[text.index("x")]


def test_brackets_count_outside_strings_only():
    depth = FEATURES["bracket-depth"]("f(a, [b], '(')\nx")
    assert depth.tolist() == [0, 1, 1, 1, 1, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    assert FEATURES["in-brackets"]("(a)b").tolist() == [True, True, False, False]


def test_line_position_indent_word_start_and_a_regex():
    text = "ab\n  cd ef"
    assert line_position(text).tolist() == [1, 2, 0, 1, 2, 3, 4, 5, 6, 7]
    assert indent(text).tolist() == [0, 0, 0, 1, 2, 2, 2, 2, 2, 2]
    assert marks(text, word_start(text)) == "^    ^  ^ "
    assert marks(text, find_feature("/c.+e/")(text)) == "     ^^^^ "


def test_an_unknown_feature_or_a_broken_regex_is_one_line(tiny_run, tiny_corpus):
    for args in (["--feature", "sarcasm"], ["--regex", "(unclosed"], []):
        result = CliRunner().invoke(cli, ["units", str(tiny_run), str(tiny_corpus), *args])
        assert result.exit_code != 0 and "Traceback" not in result.output
        assert result.output.strip().count("\n") == 0, result.output


# ---------------------------------------------------------------- scores


def test_auroc_from_histograms_matches_the_exact_rank_statistic():
    generator = torch.Generator().manual_seed(0)
    labels = torch.rand(5000, generator=generator) < 0.3
    values = torch.randn(5000, 6, generator=generator) * 2 + labels[:, None] * torch.tensor([0, .1, .5, 1, 2, -1])
    accumulator = AurocAccumulator(6)
    for start in range(0, 5000, 1000):
        accumulator.add(values[start : start + 1000], labels[start : start + 1000])
    ranks = values.argsort(0).argsort(0).double() + 1
    positives, negatives = int(labels.sum()), int((~labels).sum())
    exact = (ranks[labels].sum(0) - positives * (positives + 1) / 2) / (positives * negatives)
    assert np.allclose(accumulator.scores(), exact.numpy(), atol=0.003)


def test_correlation_streams_to_pearsons_r():
    generator = torch.Generator().manual_seed(1)
    target = torch.randn(3000, generator=generator)
    values = torch.stack([target * 2 + torch.randn(3000, generator=generator), -target, torch.ones(3000)], 1)
    accumulator = CorrelationAccumulator(3)
    accumulator.add(values[:1000], target[:1000])
    accumulator.add(values[1000:], target[1000:])
    r = accumulator.scores()
    assert r[0] == pytest.approx(np.corrcoef(values[:, 0], target)[0, 1], abs=1e-6)
    assert r[1] == pytest.approx(-1.0) and np.isnan(r[2])


def test_one_stream_reads_exactly_the_gate_path(loaded):
    ids = tokenize(loaded.vocab, TINY_TEXT[:300]).ids
    chunks = list(trace_units(loaded.model, ids, streams=1, burn_in=0, steps_per_chunk=64))
    positions = np.concatenate([c.positions for c in chunks])
    assert positions.tolist() == list(range(len(ids)))
    with torch.inference_mode():
        _, _, gates = loaded.model.step_sequence(torch.tensor([ids.tolist()]))
    for layer in range(loaded.model.config.layers):
        traced = torch.cat([c.values[(layer, "c")] for c in chunks])
        stepped = torch.stack([g[layer]["c"][0] for g in gates])
        assert torch.allclose(traced, stepped, atol=1e-5)


def test_many_streams_cover_every_token_once_and_the_first_stream_exactly(loaded):
    ids = tokenize(loaded.vocab, TINY_TEXT * 8).ids
    chunks = list(trace_units(loaded.model, ids, streams=4, burn_in=32, steps_per_chunk=16))
    positions = np.concatenate([c.positions for c in chunks])
    assert sorted(positions.tolist()) == list(range(len(ids)))
    one = list(trace_units(loaded.model, ids, streams=1, burn_in=0))
    exact = torch.cat([c.values[(1, "h")] for c in one])
    traced = torch.cat([c.values[(1, "h")] for c in chunks])
    first_stream = positions < len(ids) // 4
    assert torch.allclose(traced[torch.from_numpy(first_stream)], exact[positions[first_stream]], atol=1e-5)


def test_a_trained_model_has_a_unit_for_a_feature_of_its_input(loaded):
    result = score_units(loaded.model, loaded.vocab, TINY_TEXT * 20, FEATURES["uppercase"])
    best = result.ranked()[0]
    assert best.score > 0.9 and result.positives == sum(c.isupper() for c in TINY_TEXT * 20)
    assert result.scores[(0, "i")].shape == (loaded.model.config.hidden,)


# ---------------------------------------------------------------- the commands


def test_units_lists_the_best_writes_every_score_and_saves_labels(tiny_run, tiny_corpus, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "best", run)
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(cli, ["units", str(run), str(tiny_corpus), "--feature", "newline", "--top", "4",
                                      "--json", str(out), "--save"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if re.match(r"\s+\d+\s+\d:\d+", line)]
    assert len(rows) == 4
    document = json.loads(out.read_text("utf-8"))
    assert document["metric"] == "auroc" and len(document["layers"]) == 2
    assert set(document["layers"][0]) == {"f", "i", "o", "g", "c", "h"}
    assert all(len(units) == 24 for units in document["layers"][1].values())
    labels = read_labels(run)
    layer, unit = rows[0].split()[1].split(":")
    assert labels[(int(layer) - 1, int(unit))].startswith("newline ")


GOOD_LABEL = {"feature": "newline", "layer": 1, "unit": 3, "score": 0.91}


@pytest.mark.parametrize("text", [
    "[" * 200_000,
    '{"labels": [{"feature": "x", "layer": 1, "unit": 2, "score": 1e999}]}',
    '{"labels": [{"feature": "x", "layer": 1, "unit": 2, "score": NaN}]}',
    '{"labels": [{"feature": "x", "layer": 1, "unit": 1' + "0" * 40 + ', "score": 0.5}]}',
    '{"labels": 7}',
])
def test_a_units_json_no_parser_should_take_means_no_labels(tmp_path, text):
    (tmp_path / "units.json").write_text(text, "utf-8")
    assert read_labels(tmp_path) == {}


def test_a_units_json_that_is_not_utf8_or_a_folder_means_no_labels(tmp_path):
    (tmp_path / "units.json").write_bytes(b'{"labels": "\xff\xfe"}')
    assert read_labels(tmp_path) == {}
    (tmp_path / "units.json").unlink()
    (tmp_path / "units.json").mkdir()
    assert read_labels(tmp_path) == {}


def test_units_json_entries_of_the_wrong_types_are_left_out(tmp_path):
    wrong = [7, "x", {**GOOD_LABEL, "feature": 7}, {**GOOD_LABEL, "layer": "1"}, {**GOOD_LABEL, "unit": 2.5},
             {**GOOD_LABEL, "score": "high"}, {**GOOD_LABEL, "layer": True}, {"feature": "x", "layer": 1}]
    document = {"format": "lstm-repl-units", "format_version": 1, "labels": [*wrong, GOOD_LABEL]}
    (tmp_path / "units.json").write_text(json.dumps(document), "utf-8")
    assert read_labels(tmp_path) == {(0, 3): "newline 0.91"}


def test_saturation_plots_each_gate_and_writes_fractions(tiny_run, tiny_corpus, tmp_path):
    out = tmp_path / "saturation.json"
    result = CliRunner().invoke(cli, ["saturation", str(tiny_run), str(tiny_corpus), "--json", str(out)])
    assert result.exit_code == 0, result.output
    for gate in ("forget gate f", "input gate i", "output gate o"):
        assert gate in result.output
    assert "left-saturated (< 0.1)" in result.output and "right-saturated (> 0.9)" in result.output
    layers = json.loads(out.read_text("utf-8"))["layers"]
    left, right = np.array(layers[0]["f"]["left"]), np.array(layers[0]["f"]["right"])
    assert len(left) == 24 and ((left >= 0) & (left + right <= 1 + 1e-9)).all()


def test_heatmap_writes_a_self_contained_page_and_draws_in_the_terminal(tiny_run, tiny_corpus, tmp_path):
    page = tmp_path / "page.html"
    result = CliRunner().invoke(cli, ["heatmap", str(tiny_run), str(tiny_corpus), "--unit", "1:3", "--unit", "2:5",
                                      "--out", str(page), "--terminal", "--limit", "200"])
    assert result.exit_code == 0, result.output
    html = page.read_text("utf-8")
    assert html.count("<h2>") == 2 and "layer 2 unit 5" in html and "background:rgb(" in html
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")
    assert "layer 1 unit 3" in result.output
    bad = CliRunner().invoke(cli, ["heatmap", str(tiny_run), str(tiny_corpus), "--unit", "9:3", "--terminal"])
    assert bad.exit_code == 2 and bad.output.strip().count("\n") == 0


@pytest.mark.slow  # starts a real process
@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="no chromium here")
def test_the_heatmap_page_renders_in_a_real_browser(tiny_run, tiny_corpus, tmp_path):
    page, png = tmp_path / "page.html", tmp_path / "page.png"
    CliRunner().invoke(cli, ["heatmap", str(tiny_run), str(tiny_corpus), "--unit", "1:3", "--out", str(page)])
    done = subprocess.run(["bash", "scripts/heatmap-screenshot", str(page), str(png)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    pixels = png_pixels(png.read_bytes())
    assert len(set(pixels)) > 20  # text on coloured backgrounds, not a blank page


def png_pixels(data: bytes) -> bytes:
    """The decompressed image data of a PNG (filter bytes included), read by hand."""
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"IDAT":
            chunks.append(data[offset + 8 : offset + 8 + length])
        offset += 12 + length
    return zlib.decompress(b"".join(chunks))


# ---------------------------------------------------------------- in the shell


def test_find_ranks_units_on_the_text_so_far_pins_the_best_and_labels_them(loaded):
    from lstm_repl.shell.colon_commands import run_command
    from lstm_repl.shell.shell_state import Shell
    from lstm_repl.shell.fragments import to_text
    from lstm_repl.shell.views import render_panel
    from lstm_repl.session.session import Session

    shell = Shell(Session(loaded))
    shell.session.set_text(TINY_TEXT * 3)
    message = run_command(shell, ":find uppercase").message
    assert message.startswith("uppercase on ") and "pinned" in message
    best = score_units(loaded.model, loaded.vocab, shell.session.text, FEATURES["uppercase"]).ranked()[0]
    assert f"layer {best.layer + 1} #{best.unit} {best.quantity} {best.score:.2f}" in message
    assert shell.panel.units[0] == best.unit
    assert len(shell.panel.units) == 6 and all((shell.panel.layer, u) in shell.panel.labels for u in shell.panel.units)
    panel = to_text(render_panel(shell.session.snapshot, shell.panel, 120), 120)
    assert "tracks" in panel and "uppercase 0." in panel and f"#{shell.panel.units[0]}" in panel


def test_find_refuses_without_text_or_without_the_feature_in_it(loaded):
    from lstm_repl.shell.colon_commands import CommandError, run_command
    from lstm_repl.shell.shell_state import Shell
    from lstm_repl.session.session import Session

    shell = Shell(Session(loaded))
    with pytest.raises(CommandError, match="type or stream some first"):
        run_command(shell, ":find in-quotes")
    shell.session.set_text("all lower case words and nothing else here")
    with pytest.raises(CommandError, match="no token of the text so far is inside it"):
        run_command(shell, ":find uppercase")
    with pytest.raises(CommandError, match="unknown feature"):
        run_command(shell, ":find sarcasm")


def test_the_shell_labels_units_saved_beside_the_checkpoint(tiny_run, tiny_corpus, tmp_path):
    from lstm_repl.shell.shell_state import Shell
    from lstm_repl.session.session import Session

    run = tmp_path / "run"
    shutil.copytree(tiny_run / "best", run)
    CliRunner().invoke(cli, ["units", str(run), str(tiny_corpus), "--feature", "uppercase", "--save"])
    shell = Shell(Session(checkpoint.load(run)))
    assert shell.panel.labels and all(text.startswith("uppercase ") for text in shell.panel.labels.values())


def test_large_cell_states_stay_apart_in_the_histograms():
    labels = torch.tensor([True] * 50 + [False] * 50)
    values = torch.where(labels, 10.0, 8.0)[:, None] + torch.linspace(0, 0.1, 100)[:, None]
    unbounded = AurocAccumulator(1)
    unbounded.add(values, labels)
    gates = AurocAccumulator(1, (0.0, 1.0))
    gates.add(torch.where(labels, 0.9995, 0.95)[:, None], labels)
    assert unbounded.scores()[0] == pytest.approx(1.0) and gates.scores()[0] == pytest.approx(1.0)


def test_units_and_heatmap_work_at_word_level(tiny_word_run, tiny_corpus, tmp_path):
    result = CliRunner().invoke(cli, ["units", str(tiny_word_run), str(tiny_corpus), "--feature", "newline",
                                      "--top", "3"])
    assert result.exit_code == 0, result.output
    assert re.search(r"\(\d[\d,]* tokens\): newline", result.output)
    tokens = tokenize(checkpoint.load(tiny_word_run).vocab, TINY_TEXT)
    assert tokens.ends[-1] == len(TINY_TEXT) and len(tokens.ids) < len(TINY_TEXT)  # words, covering the text
    page = tmp_path / "page.html"
    drawn = CliRunner().invoke(cli, ["heatmap", str(tiny_word_run), str(tiny_corpus), "--unit", "1:2", "--out",
                                     str(page), "--limit", "300"])
    assert drawn.exit_code == 0, drawn.output
    html = page.read_text("utf-8")
    assert html.count("<span") >= 10 and "Citizen" in html


# ---------------------------------------------------------------- --limit reads only what it needs (issue 22, point 9)


@pytest.mark.parametrize("command", [
    ["heatmap", "CKPT", "FILE", "--unit", "1:3", "--terminal", "--limit", "300"],
    ["units", "CKPT", "FILE", "--feature", "newline", "--limit", "300"],
    ["saturation", "CKPT", "FILE", "--limit", "300"],
])
def test_limit_reads_only_the_head_of_a_huge_file(tiny_run, tmp_path, command):
    """A text head, then a gigabyte of NUL bytes (sparse: no disk used). Reading the whole file
    first (850 MB resident for 300 MB) would have met the NUL and refused the file; the head alone
    gives exactly what a file holding only the head gives."""
    head = TINY_TEXT * 400  # 70 kB: more than the first read (64 KiB)
    huge, small = tmp_path / "huge.txt", tmp_path / "small.txt"
    huge.write_text(head, "utf-8")
    with open(huge, "ab") as handle:
        handle.truncate(len(head.encode()) + (1 << 30))
    small.write_text(head, "utf-8")
    outputs = []
    for path in (huge, small):
        args = [{"CKPT": str(tiny_run), "FILE": str(path)}.get(a, a) for a in command]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert outputs[0] == outputs[1]


def test_the_head_read_is_the_start_of_the_whole_text(tmp_path):
    from lstm_repl.data.corpus import read_corpus, read_head

    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("ünïcödé ✓ " * 20_000, "utf-8")  # over 64 KiB: several chunks, characters across borders
    second.write_text("second file, no newline at its end", "utf-8")
    whole = read_corpus([first, second]).text
    for limit in (1, 7, 65_536, 65_537, len(whole) - 5, len(whole), len(whole) + 100):
        assert read_head([first, second], limit) == whole[:limit]
    assert read_head([first, second], 0) == whole
    blank = tmp_path / "blank.txt"
    blank.write_text(" " * 100 + "text", "utf-8")
    from lstm_repl.errors import CorpusError

    with pytest.raises(CorpusError, match="first 50 characters are blank"):
        read_head([blank], 50)
