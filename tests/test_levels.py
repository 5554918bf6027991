"""bench levels: char, word and BPE cells trained for real (tiny models, a few steps), their rows,
a run taken up where it stopped, and the README's table."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from click.testing import CliRunner

from helpers import TINY_TEXT, one_line_error
from lstm_repl.bench import levels
from lstm_repl.bench.results import append_row
from lstm_repl.cli.main import cli

# Words the training part never has, spelled with its characters: a word model reads them as
# <unk>, a char model knows every character
UNSEEN_WORDS = "Citizens famished hearers resolute speakers "
STEPS = 3
ROW_FIELDS = {"cell", "corpus", "level", "vocab_size", "budget", "minutes", "steps", "passes", "bpc",
              "unknown_fraction", "bpc_is_lower_bound", "machine", "when", "commit"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    assert set(UNSEEN_WORDS) <= set(TINY_TEXT)
    path = tmp_path_factory.mktemp("levels") / "corpus.txt"
    path.write_text(TINY_TEXT * 70 + UNSEEN_WORDS * 10, "utf-8")
    return path


def tiny_row(cell: levels.LevelCell, corpus) -> dict:
    """The cell as bench levels runs it, but 2 x 16 for a few steps, and no sample drawn."""
    config, model_args = levels.cell_settings(cell, None, STEPS)
    config = dataclasses.replace(config, batch_size=4, seq_len=16, precision="fp32", eval_interval=STEPS,
                                 sample_length=0)
    return levels.run_cell(cell, [str(corpus)], None, config, {**model_args, "hidden": 16, "embed": 8},
                           report=lambda line: None)


@pytest.fixture(scope="module")
def rows(corpus) -> dict[str, dict]:
    return {level: tiny_row(levels.LevelCell("shakespeare", level), corpus) for level in ("char", "word", "bpe-512")}


def test_a_cell_row_has_every_figure_and_word_level_is_a_lower_bound(rows):
    for level, row in rows.items():
        assert ROW_FIELDS <= set(row), level
        assert row["cell"] == f"shakespeare/{level}" and row["level"] == level
        assert (row["budget"], row["minutes"], row["steps"]) == (f"{STEPS} steps", None, STEPS)
        assert math.isfinite(row["bpc"]) and 0 < row["bpc"] < 8
        assert row["passes"] > 0 and row["split"]["held_out_chars"] > 1_000
        assert json.loads(json.dumps(row)) == row
    assert rows["word"]["unknown_fraction"] > 0 and rows["word"]["bpc_is_lower_bound"]
    for exact in ("char", "bpe-512"):
        assert rows[exact]["unknown_fraction"] == 0 and not rows[exact]["bpc_is_lower_bound"]
    assert 257 < rows["bpe-512"]["vocab_size"] <= 512
    assert rows["char"]["vocab_size"] == len(set(TINY_TEXT)) + 1  # and <unk>


def test_a_stopped_run_takes_up_the_cells_it_has_not_measured(rows, tmp_path, monkeypatch):
    results = tmp_path / "levels.jsonl"
    append_row(results, rows["char"])
    with results.open("a", encoding="utf-8") as f:
        f.write('{"cell": "shakespeare/word", "bu')  # the line a killed run was writing
    done = levels.read_results(results)
    cells = levels.select(levels.all_cells(), ["shakespeare/char", "shakespeare/word"])
    assert [c.name for c in levels.pending(cells, done, f"{STEPS} steps")] == ["shakespeare/word"]
    assert len(levels.pending(cells, done, "10 min")) == 2

    monkeypatch.setenv("LSTM_REPL_CORPORA", str(tmp_path))  # no corpus: a cell that trained would stop
    args = ["bench", "levels", "shakespeare/char", "--steps", str(STEPS), "--results", str(results)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "shakespeare/char: measured at 3 steps already (--again to train it again)" in result.output
    one_line_error(CliRunner().invoke(cli, [*args, "--again"]), "corpus get shakespeare")


def test_every_corpus_is_found_before_any_cell_trains(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("LSTM_REPL_CORPORA", str(tmp_path))
    results = tmp_path / "levels.jsonl"
    result = CliRunner().invoke(cli, ["bench", "levels", "*/char", "--steps", "1", "--results", str(results),
                                      "--corpus", f"shakespeare={corpus}"])
    one_line_error(result, "wikitext-2/char", "--corpus wikitext-2=PATH")
    assert not results.exists()


def test_the_table_marks_the_best_the_distance_of_the_others_and_the_lower_bounds(tmp_path):
    def row(corpus, level, bpc, unknown=0.0):
        return {"cell": f"{corpus}/{level}", "corpus": corpus, "level": level, "budget": "10 min", "bpc": bpc,
                "unknown_fraction": unknown, "bpc_is_lower_bound": unknown > 0}

    results = tmp_path / "levels.jsonl"
    for made in (row("wikitext-2", "char", 2.5), row("shakespeare", "char", 2.2), row("shakespeare", "bpe-512", 2.1),
                 row("shakespeare", "word", 1.9, 0.027), row("shakespeare", "bpe-2048", 1.95),
                 row("shakespeare", "bpe-2048", 2.05)):  # measured again: the newest counts
        append_row(results, made)
    result = CliRunner().invoke(cli, ["bench", "levels", "--table", "--results", str(results)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "| corpus | budget | char | word | bpe-512 | bpe-2048 |",
        "| --- | --- | --- | --- | --- | --- |",
        "| shakespeare | 10 min | 2.200 (+0.150) | 1.900 (-0.150; lower bound, 2.7% unk) | 2.100 (+0.050) "
        "| **2.050** |",
        "| wikitext-2 | 10 min | **2.500** | – | – | – |",
    ]


def test_the_table_of_measured_rows_says_which_are_lower_bounds(rows):
    lines = levels.table(list(rows.values())).splitlines()
    assert lines[0] == "| corpus | budget | char | word | bpe-512 |"
    assert lines[2].startswith(f"| shakespeare | {STEPS} steps | ") and "lower bound" in lines[2]
    assert lines[2].count("**") == 2 and "lower bound" not in lines[2].split("|")[3]  # char's is exact


def test_cells_are_chosen_by_pattern_and_the_sizes_between_only_when_named():
    cells = levels.all_cells()
    assert [c.level for c in levels.select(cells, []) if c.corpus == "wikitext-2"] == list(levels.FIRST_RUN)
    assert {c.level for c in levels.select(cells, ["*/bpe-*"])} == {f"bpe-{n}" for n in (512, 1024, 2048, 4096, 8192)}
    assert {c.corpus for c in cells} == {"shakespeare", "wikitext-2"}
    config, _ = levels.cell_settings(levels.LevelCell("wikitext-2", "bpe-8192"), 10.0, None)
    assert (config.level, config.vocab_size, config.time_limit_s, config.max_steps) == ("bpe", 8192, 600.0, None)
    result = CliRunner().invoke(cli, ["bench", "levels", "--list", "shakespeare/bpe-4*"])
    assert result.output == "shakespeare/bpe-4096\n"
    one_line_error(CliRunner().invoke(cli, ["bench", "levels", "--list", "nowhere/*"]), "nowhere/*", "--list")
