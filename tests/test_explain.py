""":explain L:U and trace --explain: every number of the explanation recomputed here from the weights,
for each cell kind, on tiny trained models; and the gate path's own values agree."""

from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner

from lstm_repl.analysis.explain import explain_unit
from lstm_repl.cli.main import cli
from lstm_repl.data.vocab import UNK_ID
from lstm_repl.model import checkpoint
from lstm_repl.model.base import layer_weight_names
from lstm_repl.session.session import Session
from lstm_repl.shell.colon_commands import CommandError, run_command
from lstm_repl.shell.shell_state import Shell

from helpers import one_line_error

TEXT = "Before we proceed any further, hear me"
ORDER = {"lstm": "figo", "peephole": "figo", "coupled": "fgo", "gru": "rzn", "rnn": "h"}  # as the README lists them
BLOCKS = {"lstm": "ifgo", "peephole": "ifgo", "coupled": "fgo", "gru": "rzn", "rnn": "h"}


def _expected(model, ids: list[int], layer: int, unit: int) -> dict:
    """The kind's equations (docs/cells.md) for every layer, whole vectors in float64, from the
    weights and the state the gate path carried to the last token -> the unit's parts and values."""
    kind, H = model.config.cell, model.config.hidden
    rnn = model.rnn
    with torch.inference_mode():
        state = model.zero_state(1)
        for token in ids[:-1]:
            _, state, _ = model.step(torch.tensor([token]), state)
        x = model.embedding.weight[ids[-1]].double()
        for k in range(layer + 1):
            w_ih, w_hh, b_ih, b_hh = (getattr(rnn, name).double() for name in layer_weight_names(k))
            h_prev = state[0][k, 0].double()
            xs, hs = (w_ih @ x).reshape(-1, H), (w_hh @ h_prev).reshape(-1, H)
            bias = (b_ih + b_hh).reshape(-1, H)
            blocks = dict(zip(BLOCKS[kind], range(len(BLOCKS[kind]))))
            parts, values = {}, {}
            if kind in ("lstm", "peephole", "coupled"):
                c_prev = state[1][k, 0].double()
                for s, b in blocks.items():
                    parts[s] = [xs[b], hs[b], bias[b]]
                if kind == "peephole":
                    for s in "if":
                        parts[s].append(getattr(rnn, f"weight_c{s}_l{k}").double() * c_prev)
                for s in parts:
                    if not (kind == "peephole" and s == "o"):  # a peephole's o reads the new c
                        values[s] = torch.tanh(sum(parts[s])) if s == "g" else torch.sigmoid(sum(parts[s]))
                i = 1 - values["f"] if kind == "coupled" else values["i"]
                c = values["f"] * c_prev + i * values["g"]
                if kind == "peephole":
                    parts["o"].append(getattr(rnn, f"weight_co_l{k}").double() * c)
                    values["o"] = torch.sigmoid(sum(parts["o"]))
                h = values["o"] * torch.tanh(c)
                values.update(c=c, h=h, i=i)
            elif kind == "gru":
                b_i, b_h = b_ih.reshape(-1, H), b_hh.reshape(-1, H)
                for s in "rz":
                    parts[s] = [xs[blocks[s]], b_i[blocks[s]], hs[blocks[s]], b_h[blocks[s]]]
                    values[s] = torch.sigmoid(sum(parts[s]))
                parts["n"] = [xs[2], b_i[2], values["r"] * (hs[2] + b_h[2])]
                values["n"] = torch.tanh(sum(parts["n"]))
                h = (1 - values["z"]) * values["n"] + values["z"] * h_prev
                values["h"] = h
            else:
                parts["h"] = [xs[0], hs[0], bias[0]]
                values["h"] = h = torch.tanh(sum(parts["h"]))
            x = h
        logits = model.decoder.weight.double() @ h + model.decoder.bias.double()
        logits[UNK_ID] = -math.inf
        top = int(logits.argmax())
        share = float(h[unit] * model.decoder.weight[top, unit])
    return {"parts": {s: [float(p[unit]) for p in ps] for s, ps in parts.items()},
            "values": {s: float(v[unit]) for s, v in values.items()},
            "share": share, "logit": float(logits[top]), "top": top}


@pytest.mark.parametrize("layer,unit", [(0, 3), (1, 0), (1, 15)])
def test_every_number_is_the_kinds_equations_on_the_weights(kind_run, layer, unit):
    kind, run = kind_run
    loaded = checkpoint.load(run)
    model, vocab = loaded.model.eval(), loaded.vocab
    ids = vocab.encode(TEXT)
    explanation = explain_unit(model, vocab, ids, layer, unit)
    expected = _expected(model, ids, layer, unit)
    assert "".join(g.symbol for g in explanation.gates) == ORDER[kind]
    for gate in explanation.gates:
        assert [v for _, v in gate.parts] == pytest.approx(expected["parts"][gate.symbol], abs=1e-6), gate.symbol
        assert gate.pre_activation == pytest.approx(sum(expected["parts"][gate.symbol]), abs=1e-6)
        assert gate.value == pytest.approx(expected["values"][gate.symbol], abs=1e-6), gate.symbol
    for name in ("c", "h"):
        if name in explanation.state:
            # rel too: c grows past 10, where float32's spacing is 1e-6 (and kernels differ by CPU)
            assert explanation.state[name] == pytest.approx(expected["values"][name], rel=1e-6, abs=1e-6)
    if kind == "coupled":
        assert explanation.derived["i"] == pytest.approx(1 - expected["values"]["f"], abs=1e-6)
    # the gate path reports the same values (float32)
    with torch.inference_mode():
        _, state = model(torch.tensor([ids[:-1]]))
        _, _, gates = model.step(torch.tensor([ids[-1]]), state)
    for symbol, value in gates[layer].items():
        shown = explanation.state.get(symbol, explanation.derived.get(symbol))
        if shown is None:
            shown = next(g.value for g in explanation.gates if g.symbol == symbol)
        assert shown == pytest.approx(float(value[0, unit]), abs=1e-5), symbol
    if layer == 1:
        share = explanation.share
        assert share.share == pytest.approx(expected["share"], abs=1e-6)
        assert share.logit == pytest.approx(expected["logit"], abs=1e-5)
        assert share.token == vocab.token_text(expected["top"])
    else:
        assert explanation.share is None and "layers above" in explanation.note


def test_the_lines_use_the_readmes_notation_with_the_numbers(kind_run):
    kind, run = kind_run
    loaded = checkpoint.load(run)
    explanation = explain_unit(loaded.model, loaded.vocab, loaded.vocab.encode(TEXT), 1, 2)
    text = "\n".join(explanation.lines())
    first = {"lstm": "f = σ(W_xf·x + W_hf·h₋₁ + b_f)", "peephole": "i = σ(W_xi·x + W_hi·h₋₁ + b_i + w_ci∗c₋₁)",
             "coupled": "i = 1 − f =", "gru": "n = tanh(W_in·x + b_in + r∗(W_hn·h₋₁ + b_hn))",
             "rnn": "h = tanh(W_ih·x + W_hh·h₋₁ + b_ih + b_hh)"}[kind]
    assert first in text
    if kind in ("lstm", "peephole", "coupled"):
        assert "c = f∗c₋₁ + " in text and "h = o∗tanh(c) = " in text
    for gate in explanation.gates:
        assert f"{gate.value:.4f}" in text
    assert f"{explanation.share.share:.4f}" in text and "reading 'e' (token" in text


def test_explain_in_the_shell_explains_the_last_token_read(loaded):
    shell = Shell(Session(loaded))
    with pytest.raises(CommandError, match="type some text"):
        run_command(shell, ":explain 1:0")
    shell.session.set_text("First Cit")
    result = run_command(shell, ":explain 2:5")
    assert result.output.startswith("layer 2 unit 5 (lstm), reading 't' (token 8)")
    last = shell.session.token_gates(len(shell.session.ids) - 1)[1]
    assert f"= {float(last['o'][5]):.4f}" in result.output and f"= {float(last['h'][5]):.4f}" in result.output
    for bad in (":explain", ":explain 3:0", ":explain 1:999", ":explain one"):
        with pytest.raises(CommandError):
            run_command(shell, bad)


def test_trace_explain_prints_the_equations_and_refuses_bad_units_in_one_line(tiny_run):
    runner = CliRunner()
    result = runner.invoke(cli, ["trace", str(tiny_run), "First Cit", "--explain", "2:5"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("layer 2 unit 5 (lstm), reading 't' (token 8)")
    assert "share of the top prediction's logit" in result.output
    one_line_error(runner.invoke(cli, ["trace", str(tiny_run), "First", "--explain", "9:0"]), "--explain", "layers")
    one_line_error(runner.invoke(cli, ["trace", str(tiny_run), "First", "--explain", "1:0", "--clamp", "1:0=1"]),
                   "--explain")
