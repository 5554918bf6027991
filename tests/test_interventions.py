"""Interventions (clamp a unit's cell state, ablate a unit, force a gate of a layer), recomputed
from the equations, in every cell kind, and where a user meets them: generate, trace, the shell."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from lstm_repl.cells import cell_kinds
from lstm_repl.cli.main import cli
from lstm_repl.config import ModelConfig
from lstm_repl.errors import ConfigError
from lstm_repl.session.ghost import ghost
from lstm_repl.model.interventions import Interventions
from lstm_repl.session.intervention_parser import parse, parse_layer_unit, parse_unit_list
from lstm_repl.model import LanguageModel
from lstm_repl.model.base import layer_weight_names
from lstm_repl.shell.colon_commands import CommandError, run_command
from lstm_repl.shell.shell_state import Shell
from lstm_repl.session.session import Session
from lstm_repl.session.session_trace import trace_document

GATES = {"lstm": ("i", "f", "g", "o"), "peephole": ("i", "f", "g", "o"), "coupled": ("f", "o", "g"),
         "gru": ("r", "z", "n"), "rnn": ()}


def _model(kind: str = "lstm") -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(ModelConfig(vocab_size=30, cell=kind, layers=2, hidden=8, embed=6, dropout=0.0)).eval()


def _edits(model: LanguageModel, *specs: tuple[str, str]) -> Interventions:
    config = model.config
    gates = GATES[config.cell]
    return Interventions([parse(kind, spec, config.layers, config.hidden, gates) for kind, spec in specs])


def _lstm_by_hand(model, token: int, state, clamp=None, force=None, ablate=None):
    """The LSTM equations in float64, written out, with the interventions where the docs put them."""
    x = model.embedding.weight[token].double()
    h_prev, c_prev = (s.double()[:, 0] for s in state)
    H, out = model.config.hidden, []
    for k in range(model.config.layers):
        w_ih, w_hh, b_ih, b_hh = (getattr(model.rnn, n).double() for n in layer_weight_names(k))
        z = w_ih @ x + b_ih + w_hh @ h_prev[k] + b_hh
        i, f, g, o = z[:H].sigmoid(), z[H : 2 * H].sigmoid(), z[2 * H : 3 * H].tanh(), z[3 * H :].sigmoid()
        if force and force[0] == k:
            f = torch.full_like(f, force[1])
        c = f * c_prev[k] + i * g
        if clamp and clamp[0] == k:
            c[clamp[1]] = clamp[2]
        h = o * c.tanh()
        if ablate and ablate[0] == k:
            h[ablate[1]] = 0
            c[ablate[1]] = 0
        out.append((f, c, h))
        x = h
    return out


@pytest.mark.parametrize("case", [
    {"specs": [("clamp", "1:3=0.5")], "clamp": (0, 3, 0.5)},
    {"specs": [("clamp", "2:7=-2")], "clamp": (1, 7, -2.0)},
    {"specs": [("force", "1 f=1")], "force": (0, 1.0)},
    {"specs": [("force", "2:f=0")], "force": (1, 0.0)},
    {"specs": [("ablate", "1:5")], "ablate": (0, 5)},
], ids=lambda case: " ".join(spec for _, spec in case["specs"]))
def test_an_intervened_lstm_step_is_the_equations_with_the_intervention(case):
    model = _model()
    torch.manual_seed(1)
    state = tuple(torch.randn(2, 1, 8) for _ in range(2))
    with torch.inference_mode():
        _, new_state, gates = model.step(torch.tensor([7]), state, edits=_edits(model, *case["specs"]))
    expected = _lstm_by_hand(model, 7, state, case.get("clamp"), case.get("force"), case.get("ablate"))
    for k, (f, c, h) in enumerate(expected):
        assert torch.allclose(gates[k]["f"][0].double(), f, atol=1e-6)
        assert torch.allclose(gates[k]["c"][0].double(), c, atol=1e-6)
        assert torch.allclose(gates[k]["h"][0].double(), h, atol=1e-6)
        assert torch.allclose(new_state[1][k, 0].double(), c, atol=1e-6)


@pytest.mark.parametrize("kind", cell_kinds())
def test_every_cell_kind_takes_interventions_and_is_unchanged_without_them(kind):
    model = _model(kind)
    state = model.zero_state(1)
    with torch.inference_mode():
        plain = model.step(torch.tensor([3]), state)
        again = model.step(torch.tensor([3]), state, edits=Interventions())
        forced = [("force", f"2 {GATES[kind][0]}=1")] if GATES[kind] else []
        specs = [("clamp", "1:2=0.75"), ("ablate", "2:4"), *forced]
        _, _, gates = model.step(torch.tensor([3]), state, edits=_edits(model, *specs))
    assert torch.equal(plain[0], again[0])
    memory = "c" if "c" in gates[0] else "h"
    assert gates[0][memory][0, 2] == pytest.approx(0.75)
    assert gates[1]["h"][0, 4] == 0
    if GATES[kind]:
        assert torch.all(gates[1][GATES[kind][0]] == 1)


def test_bad_interventions_are_one_line():
    for kind, spec, message in [("clamp", "1:3", "write LAYER:UNIT=VALUE"), ("clamp", "3:1=0", "layers 1-2"),
                                ("ablate", "1:99", "units are 0-7"), ("force", "1 q=1", "gates are i, f, g, o"),
                                ("clamp", "1:1=nan", "from -1000 to 1000")]:
        with pytest.raises(ConfigError, match=message):
            parse(kind, spec, 2, 8, GATES["lstm"])


def test_layer_unit_is_read_one_way_by_interventions_and_the_heatmap(tiny_run, tiny_corpus):
    assert parse_layer_unit(" 2 : 7 ", 2, 8) == (1, 7)
    for spec, message in [("2", "write LAYER:UNIT"), ("0:1", "layers 1-2"), ("1:8", "units are 0-7"),
                          ("1:" + "9" * 5000, "units are 0-7")]:
        with pytest.raises(ConfigError, match=message):
            parse_layer_unit(spec, 2, 8)
        with pytest.raises(ConfigError, match=message):
            parse("ablate", spec, 2, 8, GATES["lstm"])
    result = CliRunner().invoke(cli, ["heatmap", str(tiny_run), str(tiny_corpus), "--unit", "3:1", "--terminal"])
    assert result.exit_code == 2 and "the model has layers 1-2" in result.output


def test_unit_lists_are_read_one_way_by_the_shell_and_trace(tiny_run, loaded):
    assert parse_unit_list("0-2, 5 7", 24) == [0, 1, 2, 5, 7] and parse_unit_list("  ", 24) == []
    for text, message in [("a", "not a unit number or range"), ("-1", "not a unit number or range"),
                          ("3-1", "units are 0-23"), ("24", "units are 0-23"), ("0-999999999", "units are 0-23"),
                          ("0-20 0-20", "more units than the layer's 24"), ("9" * 5000, "units are 0-23")]:
        with pytest.raises(ConfigError, match=message):
            parse_unit_list(text, 24)
        with pytest.raises(CommandError, match=f":units: .*{message}"):
            run_command(Shell(Session(loaded)), f":units {text}")
        traced = CliRunner().invoke(cli, ["trace", str(tiny_run), "First", "--units", text])
        assert traced.exit_code == 2 and message in traced.output
    shell = Shell(Session(loaded))
    assert run_command(shell, ":units 0-2 5").message == "pinned units 0 1 2 5" and shell.panel.units == [0, 1, 2, 5]
    traced = CliRunner().invoke(cli, ["trace", str(tiny_run), "First", "--units", "0-2 5"])
    assert traced.exit_code == 0, traced.output


def test_generate_and_trace_take_interventions_and_trace_records_them(tiny_run):
    base = ["generate", str(tiny_run), "--prompt", "First Citizen:", "--length", "60", "--seed", "3", "--no-echo"]
    plain, forced = (CliRunner().invoke(cli, base + extra) for extra in ([], ["--force", "1:f=1"]))
    assert plain.exit_code == forced.exit_code == 0 and plain.output != forced.output
    traced = CliRunner().invoke(cli, ["trace", str(tiny_run), "First", "--json", "--clamp", "2:3=0.5"])
    document = json.loads(traced.output)
    assert document["interventions"] == ["clamp 2:3=0.5"]
    assert all(token["layers"][1]["c"][3] == pytest.approx(0.5) for token in document["tokens"])
    bad = CliRunner().invoke(cli, ["generate", str(tiny_run), "--ablate", "9:1"])
    assert bad.exit_code == 1 and bad.output.count("\n") == 1


def test_in_the_shell_interventions_change_predictions_ghost_and_stream_at_once_and_clear(loaded):
    shell = Shell(Session(loaded))
    shell.session.set_text("First Citizen:\nBefore we proceed any")
    before, ghost_before = shell.session.snapshot.top, ghost(shell.session)
    message = run_command(shell, ":force 1 f=0").message
    assert message.startswith("force 1 f=0") and str(shell.session.interventions) == "force 1 f=0"
    snapshot = shell.session.snapshot
    assert snapshot.top != before and all(v == 0 for v in snapshot.layers[0]["f"])
    assert ghost(shell.session) != ghost_before or not ghost_before
    run_command(shell, ":clamp 2:3=0.9")
    streamed = list(shell.session.stream(5))
    assert len(streamed) == 5 and shell.session.snapshot.layers[1]["c"][3] == pytest.approx(0.9)
    header = trace_document(shell.session, 10)
    assert header["interventions"] == ["force 1 f=0", "clamp 2:3=0.9"]
    assert run_command(shell, ":clear").message == "removed 2 interventions"
    shell.session.set_text("First Citizen:\nBefore we proceed any")
    after = shell.session.snapshot.top  # as before (recomputed by the fused path: equal to float rounding)
    assert [t for t, _ in after] == [t for t, _ in before] and ghost(shell.session) == ghost_before
    assert [p for _, p in after] == pytest.approx([p for _, p in before], abs=1e-6)
    with pytest.raises(CommandError, match="write LAYER GATE=VALUE"):
        run_command(shell, ":force f=1")


def test_the_status_bar_shows_the_interventions_in_force(loaded):
    from lstm_repl.shell.headless import Headless as Driver, drive

    async def script(d: Driver):
        assert (await d.command(":force 1 f=1")).startswith("force 1 f=1")
        status = "".join(text for _, text in d.shell_app.frame.status_fragments())
        assert "force 1 f=1" in status
        await d.command(":ablate 2:3")
        assert "force 1 f=1 · ablate 2:3" in "".join(text for _, text in d.shell_app.frame.status_fragments())
        await d.command(":clear")
        assert "force" not in "".join(text for _, text in d.shell_app.frame.status_fragments())

    drive(loaded, script)


def test_interventions_apply_from_where_they_were_set_even_to_states_recomputed_later(loaded):
    from helpers import TINY_TEXT

    session = Session(loaded)
    session.set_text(TINY_TEXT * 8)  # longer than the states kept for the recent tokens
    typed = len(session.ids)
    run_command(Shell(session), ":clamp 2:3=0.9")
    list(session.stream(5))
    early, late = session.token_gates(100), session.token_gates(typed + 2)  # recomputed / read with it
    assert early[1]["c"][3] != pytest.approx(0.9) and late[1]["c"][3] == pytest.approx(0.9)
    document = trace_document(session)
    clamped = [token["layers"][1]["c"][3] == pytest.approx(0.9) for token in document["tokens"]]
    assert clamped == [index >= typed - 1 for index in range(len(clamped))]


def test_a_derived_gate_cannot_be_forced():
    from lstm_repl.session.intervention_parser import forceable_gates

    model = _model("coupled")
    assert "i" not in forceable_gates(model) and "f" in forceable_gates(model)
    with pytest.raises(ConfigError, match="gates are f, o, g"):
        parse("force", "1 i=0.5", 2, 8, forceable_gates(model))
