"""The Python API (lstm_repl.load -> Model): the same figures and text as the CLI commands that go
through it, numpy traces, a heatmap for notebooks with its text escaped, typed errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import lstm_repl
from lstm_repl.cli.main import cli
from lstm_repl.errors import CheckpointError, ConfigError, CorpusError

from helpers import TINY_TEXT

QUOTED = 'He said "speak" and "hear me" then "all".\n' * 6


def ok(*args) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def model(tiny_run):
    return lstm_repl.load(tiny_run)


@pytest.mark.slow  # starts a real process
def test_importing_lstm_repl_loads_no_torch_until_load_is_used(tiny_run):
    code = ("import sys, lstm_repl; print('torch' in sys.modules); "
            f"m = lstm_repl.load({str(tiny_run)!r}); print('torch' in sys.modules, m.name)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "True", f"{tiny_run.name}/best"], result.stderr


def test_generate_is_the_text_the_generate_command_writes(model, tiny_run):
    settings = dict(length=60, temperature=0.8, seed=3, precision="fp32")
    pieces = model.generate("First", **settings)
    assert not isinstance(pieces, (str, list))  # an iterator: pieces come as they are chosen
    text = "".join(pieces)
    cli_text = ok("generate", tiny_run, "--prompt", "First", "--length", 60, "--temperature", 0.8, "--seed", 3,
                  "--precision", "fp32", "--no-echo", "--raw")
    assert text and cli_text == text + "\n"


def test_sampling_settings_are_sample_configs_checked_before_the_first_token(model):
    base = lstm_repl.SampleConfig(temperature=0, length=20)
    assert "".join(model.generate("First", base)) == "".join(model.generate("First", temperature=0, length=20))
    overridden = "".join(model.generate("First", base, length=5))  # settings override the config's
    assert overridden == "".join(model.generate("First", base))[: len(overridden)] and len(overridden) == 5
    with pytest.raises(ConfigError, match="temperature"):
        model.generate("First", temperature=-1)  # raised here, not at the first next()
    with pytest.raises(ConfigError, match="unknown sampling setting colour"):
        model.generate("First", colour=1)


def test_a_trace_is_every_gate_of_the_gate_path_as_numpy(model):
    text = "First Citizen:"
    trace = model.trace(text)
    network = model.network
    layers, hidden = network.config.layers, network.config.hidden
    assert "".join(trace.tokens) == text and len(trace) == len(text)
    for symbol in "ifgoch":
        assert trace[symbol].shape == (layers, len(text), hidden) and trace[symbol].dtype == np.float32
    state = None
    with torch.inference_mode():
        for t, token in enumerate(model.vocab.encode(text)):
            _, state, gates = network.step(torch.tensor([token]), state)
            for k in range(layers):
                for symbol, value in gates[k].items():
                    np.testing.assert_allclose(trace.layers[k][symbol][t], value[0].numpy(), atol=1e-6)
    assert np.isnan(trace.probabilities[0]) and ((trace.probabilities[1:] > 0) & (trace.probabilities[1:] <= 1)).all()
    assert len(trace.top[0]) == 5 and all(isinstance(t, str) for t, _ in trace.top[0])


def test_trace_json_is_the_documented_one_the_trace_command_prints(model, tiny_run):
    document = model.trace("Speak, speak.").to_json()
    printed = json.loads(ok("trace", tiny_run, "Speak, speak.", "--json"))
    assert printed == json.loads(json.dumps(document))


def test_score_is_evals_bits_per_character(model, tiny_run, tmp_path):
    text = TINY_TEXT * 3
    (tmp_path / "held.txt").write_text(text, "utf-8")
    figures = json.loads(ok("eval", tiny_run, tmp_path / "held.txt", "--json"))
    assert model.score(text) == pytest.approx(figures["bits_per_character"], rel=1e-9)
    assert 0 < model.score(text) < 8


def test_units_are_ranked_as_the_units_command_ranks_them(model, tiny_run, tmp_path):
    (tmp_path / "quoted.txt").write_text(QUOTED, "utf-8")
    ranking = model.units(QUOTED, "in-quotes")
    assert [s.score for s in ranking] == sorted((s.score for s in ranking), reverse=True)
    ok("units", tiny_run, tmp_path / "quoted.txt", "--feature", "in-quotes", "--json", tmp_path / "scores.json")
    written = json.loads((tmp_path / "scores.json").read_text("utf-8"))
    for score in ranking[:20]:
        assert written["layers"][score.layer][score.quantity][score.unit] == pytest.approx(score.raw, abs=1e-5)


def test_a_trace_shows_as_a_heatmap_in_a_notebook_its_text_escaped(model):
    trace = model.trace('<script>alert("x")</script> & First')
    page = trace._repr_html_()
    assert page.startswith("<div") and "<table" in page
    assert "<script>" not in page and "&lt;" in page and "&amp;" in page
    assert page.count("<tr>") == 1 + min(24, model.network.config.hidden)
    chosen = trace.heatmap("f", layer=0, units=[0, 3])
    assert chosen._repr_html_().count("<tr>") == 3 and "forget gate f" in chosen.html


def test_the_api_raises_typed_errors_and_prints_nothing(model, tmp_path, capsys):
    with pytest.raises(CheckpointError):
        lstm_repl.load(tmp_path / "nothing-here")
    with pytest.raises(ConfigError, match="empty"):
        model.trace("")
    with pytest.raises(CorpusError):
        model.score("F")
    with pytest.raises(ConfigError, match="unknown feature"):
        model.units(QUOTED, "no-such-feature")
    with pytest.raises(ConfigError, match="nothing to score"):
        model.units("no quotes here at all", "in-quotes")
    with pytest.raises(ConfigError):
        model.trace("First").heatmap("z")
    with pytest.raises(AttributeError):
        lstm_repl.no_such_name  # noqa: B018
    assert capsys.readouterr() == ("", "")
