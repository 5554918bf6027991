"""bench quality: the project and the plain reference loop, trained alike and scored by the same code."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from click.testing import CliRunner

from lstm_repl.cli.main import cli
from lstm_repl.config import BPE_DEFAULTS, WORD_DEFAULTS, TrainConfig
from lstm_repl.bench.quality import as_language_model, compare_quality, project_settings
from lstm_repl.bench.reference import EXAMPLES_WORD, Recipe, ReferenceModel, recipe_for, train_reference
from helpers import TINY_TEXT
from helpers import one_line_error

TINY_RECIPE = Recipe(embed=8, hidden=16, layers=2, batch_size=4, seq_len=16)


def test_both_sides_train_the_same_steps_and_are_scored_on_the_held_out_text(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT * 100, "utf-8")
    config = TrainConfig(batch_size=4, seq_len=16, max_steps=6, precision="fp32", eval_interval=3)
    lines = []
    split, sides = compare_quality([str(corpus)], config, dict(hidden=16, embed=8), TINY_RECIPE,
                                   6, None, curve_points=2, report=lines.append)
    project, reference = sides["lstm-repl"], sides["reference"]
    assert len(split.held_out) == len(TINY_TEXT * 100) - len(split.train_text) > 1000
    assert project.steps == reference.steps == 6
    assert [point[0] for point in project.curve] == [point[0] for point in reference.curve] == [3, 6]
    assert all(math.isfinite(side.bpc) and 0 < side.bpc < 8 for side in (project, reference))
    assert any(line.startswith("  reference  step      6") for line in lines)


def test_the_reference_is_scored_through_the_same_model_code_as_the_project():
    torch.manual_seed(0)
    reference = ReferenceModel(20, TINY_RECIPE).eval()
    tokens = torch.randint(0, 20, (2, 9))
    with torch.no_grad():
        own, _ = reference(tokens)
        ours, _ = as_language_model(reference, 20, TINY_RECIPE)(tokens)
    assert torch.equal(own, ours)


def test_the_reference_recipe_for_the_project_states_every_choice_the_recipe_makes():
    config, model = project_settings("reference", "fp32", 300, None)
    assert (config.lr, config.schedule, config.warmup, config.grad_clip, config.weight_decay) == \
        (2e-3, "constant", 0, 5.0, 0.0)
    assert (config.batch_size, config.seq_len, config.max_steps) == (64, 100, 300)
    assert model == dict(embed=64, hidden=512, layers=2, dropout=0.2, softmax="full")
    defaults, model = project_settings("defaults", "auto", None, 600.0)
    assert defaults == TrainConfig(time_limit_s=600.0) and model == {}


def test_word_level_defaults_are_what_train_uses_at_word_level():
    config, model = project_settings("defaults", "auto", None, 180.0, level="word")
    assert config == TrainConfig(level="word", time_limit_s=180.0, batch_size=WORD_DEFAULTS["batch_size"],
                                 seq_len=WORD_DEFAULTS["seq_len"], optimizer="sgd", lr=WORD_DEFAULTS["lr"],
                                 grad_clip=WORD_DEFAULTS["grad_clip"])
    assert model == {k: WORD_DEFAULTS[k] for k in ("hidden", "embed", "dropout")}


def test_bpe_level_defaults_size_the_vocabulary_the_trainer_builds():
    config, model = project_settings("defaults", "auto", None, 180.0, level="bpe")
    assert config == TrainConfig(level="bpe", time_limit_s=180.0, vocab_size=BPE_DEFAULTS["vocab_size"])
    assert model == {}  # the model's vocabulary is the one built, whatever size it came to


def test_the_word_reference_is_pytorch_examples_recipe_and_anneals_when_validation_stalls():
    assert recipe_for("word") == EXAMPLES_WORD
    assert (EXAMPLES_WORD.optimizer, EXAMPLES_WORD.lr, EXAMPLES_WORD.grad_clip, EXAMPLES_WORD.anneal) == \
        ("sgd", 20.0, 0.25, 4.0)
    assert (EXAMPLES_WORD.hidden, EXAMPLES_WORD.embed, EXAMPLES_WORD.batch_size, EXAMPLES_WORD.seq_len) == \
        (200, 200, 20, 35)
    tiny = dataclasses.replace(EXAMPLES_WORD, embed=8, hidden=16, batch_size=2, seq_len=8)
    ids = np.arange(200) % 17
    lrs = []

    def validate(model) -> float:
        lrs.append(None)
        return 1.0  # never improves after the first epoch

    model = train_reference(ids, 17, tiny, max_steps=40, validate=validate)
    assert len(lrs) >= 3  # an epoch is 12 chunks here
    assert isinstance(model.rnn, torch.nn.LSTM) and model.drop.p == 0.2


def test_word_level_sides_share_the_vocabulary_and_train_the_same_steps(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT * 100, "utf-8")
    config = TrainConfig(level="word", batch_size=4, seq_len=16, max_steps=6, precision="fp32", eval_interval=3)
    recipe = dataclasses.replace(EXAMPLES_WORD, embed=8, hidden=16, batch_size=4, seq_len=16)
    split, sides = compare_quality([str(corpus)], config, dict(hidden=16, embed=8), recipe, 6, None)
    project, reference = sides["lstm-repl"], sides["reference"]
    assert project.steps == reference.steps == 6
    assert all(math.isfinite(side.bpc) and 0 < side.bpc < 8 for side in (project, reference))
    _, only = compare_quality([str(corpus)], dataclasses.replace(config, max_steps=2), dict(hidden=16, embed=8),
                              recipe, 2, None, sides=("lstm-repl",))
    assert list(only) == ["lstm-repl"] and only["lstm-repl"].steps == 2


def test_without_a_corpus_it_asks_for_the_default_one(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTM_REPL_CORPORA", str(tmp_path))
    result = CliRunner().invoke(cli, ["bench", "quality", "--steps", "1"])
    one_line_error(result, "corpus get shakespeare")


def test_the_gpt_scores_every_held_out_character_once_with_half_a_block_of_context():
    from lstm_repl.bench.gpt import CharGPT, GPTRecipe, held_out_bits

    recipe = GPTRecipe(layers=1, heads=2, width=16, block=8)
    model = CharGPT(5, recipe).eval()
    for length in (2, 8, 9, 13, 100):
        ids = np.arange(length) % 5
        bits, scored = held_out_bits(model, ids, recipe.block, batch=3)
        assert scored == length - 1 and bits > 0


def test_the_gpt_trains_beside_the_lstm_on_the_same_split(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT * 100, "utf-8")
    config = TrainConfig(batch_size=4, seq_len=16, max_steps=3, precision="fp32", eval_interval=3)
    _, sides = compare_quality([str(corpus)], config, dict(hidden=16, embed=8), TINY_RECIPE, 3, None,
                               sides=("lstm-repl", "gpt"))
    assert sides["gpt"].steps == 3 and 0 < sides["gpt"].bpc < 8 and "reference" not in sides


def test_the_matrix_table_shows_every_cell_losses_included(tmp_path):
    from lstm_repl.bench import matrix
    from lstm_repl.bench.results import append_row

    def row(cell, ours, ref, gpt=None):
        corpus, level, minutes = cell.split("/")
        sides = {"lstm-repl": {"bpc": ours, "plan": {"passes": 3.2}}, "reference": {"bpc": ref}}
        if gpt:
            sides["gpt"] = {"bpc": gpt}
        return {"cell": cell, "corpus": corpus, "level": level, "minutes": float(minutes[:-1]), "sides": sides}

    results = tmp_path / "r.jsonl"
    append_row(results, row("shakespeare/char/10m", 2.0, 2.2, 2.1))
    append_row(results, row("python/char/10m", 2.0, 1.98))
    append_row(results, row("python/char/10m", 2.0, 2.01))  # run again: the newest counts
    results.open("a").write("not json\n")
    table = matrix.table(matrix.read_results(results)).splitlines()
    assert len(table) == 4
    assert "| shakespeare | char | 10 min | 3.2 | 2.000 | 2.200 | 2.100 | **+0.100** |" in table
    assert "| python | char | 10 min | 3.2 | 2.000 | 2.010 | – | +0.010 |" in table


def test_a_cell_measured_on_another_cpu_is_a_table_of_its_own(tmp_path):
    from lstm_repl.bench import matrix
    from lstm_repl.bench.results import append_row

    results = tmp_path / "r.jsonl"
    for machine, ours in (("CPU A", 2.0), ("CPU B", 1.9), ("CPU A", 1.8)):
        append_row(results, {"cell": "shakespeare/char/10m", "corpus": "shakespeare", "level": "char",
                             "minutes": 10.0, "machine": machine,
                             "sides": {"lstm-repl": {"bpc": ours}, "reference": {"bpc": 2.2}}})
    text = matrix.table(matrix.read_results(results))
    first, second = text.split("On CPU B:")
    assert first.startswith("On CPU A:") and "| 1.800 |" in first and "| 2.000 |" not in first
    assert "| 1.900 |" in second and "**+0.300**" in second


def test_matrix_cells_are_chosen_by_pattern_and_the_hour_only_when_named():
    from lstm_repl.bench import matrix

    cells = matrix.default_cells()
    assert all(c.minutes < 60 for c in matrix.select(cells, []))
    assert [c.name for c in matrix.select(cells, ["wikitext-2/word/60m"])] == ["wikitext-2/word/60m"]
    assert {c.level for c in matrix.select(cells, ["*/word/*"])} == {"word"}
    assert {c.corpus for c in cells} >= {"shakespeare", "wikitext-2", "python", "paradise-lost"}
    assert {m for c in cells for m in [c.minutes]} >= {2.0, 10.0}
    assert all("gpt" in c.sides for c in cells if c.corpus in ("shakespeare", "python") and c.level == "char")


def test_a_matrix_cell_without_its_corpus_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTM_REPL_CORPORA", str(tmp_path))
    result = CliRunner().invoke(cli, ["bench", "matrix", "wikitext-2/char/2m", "--results", str(tmp_path / "r")])
    one_line_error(result, "wikitext-2", "--corpus wikitext-2=PATH")
    result = CliRunner().invoke(cli, ["bench", "matrix", "shakespeare/char/2m", "--results", str(tmp_path / "r")])
    one_line_error(result, "corpus get shakespeare")


def test_a_stopped_matrix_takes_up_the_cells_it_has_not_measured(tmp_path, monkeypatch):
    from lstm_repl.bench import matrix
    from lstm_repl.bench.results import append_row, machine

    results = tmp_path / "r.jsonl"
    append_row(results, {"cell": "shakespeare/char/2m", "corpus": "shakespeare", "level": "char", "minutes": 2.0,
                         "sides": {"lstm-repl": {"bpc": 2.0}}, "machine": machine()})
    results.open("a").write('{"cell": "python/char/2m", "si')  # the line a killed run was writing
    cells = matrix.select(matrix.default_cells(), ["shakespeare/char/2m", "python/char/2m"])
    rows = matrix.read_results(results)
    assert [c.name for c in matrix.pending(cells, rows, machine())] == ["python/char/2m"]
    assert [c.name for c in matrix.pending(cells, rows, "another CPU")] == ["shakespeare/char/2m", "python/char/2m"]

    monkeypatch.setenv("LSTM_REPL_CORPORA", str(tmp_path))  # no corpus: a cell that trained would stop
    args = ["bench", "matrix", "shakespeare/char/2m", "--results", str(results)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "shakespeare/char/2m: measured already (--again to train it again)" in result.output
    one_line_error(CliRunner().invoke(cli, [*args, "--again"]), "corpus get shakespeare")


def test_every_matrix_corpus_is_found_before_any_cell_trains(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("LSTM_REPL_CORPORA", str(tmp_path))
    results = tmp_path / "r.jsonl"
    result = CliRunner().invoke(cli, ["bench", "matrix", "*/char/2m", "--results", str(results),
                                      "--corpus", f"shakespeare={tiny_corpus}"])
    one_line_error(result, "python/char/2m", "corpus get python")
    assert not results.exists()


def test_a_matrix_side_trained_again_keeps_the_others_only_from_this_machine(tmp_path):
    from lstm_repl.bench import matrix
    from lstm_repl.bench.results import machine

    earlier = {"cell": "tiny/char/0.01m", "machine": machine(), "when": "2026-01-02", "commit": "abc1234",
               "sides": {"lstm-repl": {"bpc": 9.0}, "reference": {"bpc": 3.5, "steps": 7}}}
    assert matrix.kept_sides({**earlier, "machine": "another CPU"}, ("lstm-repl",), machine()) is None
    assert matrix.kept_sides(earlier, ("lstm-repl", "reference"), machine()) is None
    assert matrix.kept_sides(earlier, (), machine()) is None  # --again, or a cell not measured: every side trains
    kept = matrix.kept_sides(earlier, ("lstm-repl",), machine())

    cell = matrix.Cell("tiny", "char", 0.01, ("lstm-repl", "reference"))
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT * 100, "utf-8")
    row = matrix.run_cell(cell, [str(corpus)], None, lambda line: None, kept)
    assert row["sides"]["reference"] == {"bpc": 3.5, "steps": 7}
    assert row["kept"] == {"reference": {"when": "2026-01-02", "commit": "abc1234"}}
    assert row["sides"]["lstm-repl"]["steps"] > 0 and row["sides"]["lstm-repl"]["bpc"] < 9.0
