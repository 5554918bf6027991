"""bench quality: the project and the plain reference loop, trained alike and scored by the same code."""

from __future__ import annotations

import math

import torch
from click.testing import CliRunner

from lstm_repl.cli import cli
from lstm_repl.config import TrainConfig
from lstm_repl.quality import as_language_model, compare_quality, project_settings
from lstm_repl.reference import Recipe, ReferenceModel
from tests.conftest import TINY_TEXT
from tests.test_cli_errors import one_line_error

TINY_RECIPE = Recipe(embed=8, hidden=16, layers=2, batch_size=4, seq_len=16)


def test_both_sides_train_the_same_steps_and_are_scored_on_the_held_out_text(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TINY_TEXT * 100, "utf-8")
    config = TrainConfig(batch_size=4, seq_len=16, max_steps=6, precision="fp32", eval_interval=3)
    lines = []
    split, project, reference = compare_quality([str(corpus)], config, dict(hidden=16, embed=8), TINY_RECIPE,
                                                6, None, curve_points=2, report=lines.append)
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
    assert model == dict(embed=64, hidden=512, layers=2, dropout=0.2)
    defaults, model = project_settings("defaults", "auto", None, 600.0)
    assert defaults == TrainConfig(time_limit_s=600.0) and model == {}


def test_without_a_corpus_it_asks_for_the_default_one(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTM_REPL_CORPORA", str(tmp_path))
    result = CliRunner().invoke(cli, ["bench", "quality", "--steps", "1"])
    one_line_error(result, "corpus get shakespeare")
