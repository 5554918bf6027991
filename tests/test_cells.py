"""Every cell kind: its two paths agree (fused kinds) or its hand-written backward is right
(peephole, coupled); it trains, saves and loads, runs under bf16 autocast, and shows its own
quantities in traces and the shell."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner
from torch.nn import functional as F

from lstm_repl.model import checkpoint

from lstm_repl.training import runs
from lstm_repl.cli.main import cli
from lstm_repl.cells import cell_kinds, stack_class
from lstm_repl.config import ModelConfig, TrainConfig
from lstm_repl.errors import ConfigError
from lstm_repl.model import LanguageModel
from lstm_repl.model import coupled, peephole
from lstm_repl.model.coupled import CoupledSequence
from lstm_repl.model.handwritten import scripted
from lstm_repl.model.peephole import PeepholeSequence
from lstm_repl.model.rnn import RNNStack
from lstm_repl.quantities import COUPLED_QUANTITIES, GRU_QUANTITIES, LSTM_QUANTITIES, RNN_QUANTITIES

FUSED = [kind for kind in cell_kinds() if stack_class(kind).has_fused_kernel]
HAND_WRITTEN = [kind for kind in cell_kinds() if not stack_class(kind).has_fused_kernel]
SYMBOLS = {
    "lstm": {"i", "f", "g", "o", "c", "h"},
    "peephole": {"i", "f", "g", "o", "c", "h"},
    "coupled": {"f", "i", "g", "o", "c", "h"},
    "gru": {"r", "z", "n", "h"},
    "rnn": {"h"},
}
GATE_ROWS = {"lstm": 4, "peephole": 4, "coupled": 3, "gru": 3, "rnn": 1}


def _model(kind: str, **overrides) -> LanguageModel:
    torch.manual_seed(0)
    config = ModelConfig(**{"vocab_size": 40, "cell": kind, "layers": 2, "hidden": 24, "embed": 12, "dropout": 0.2,
                            **overrides})
    return LanguageModel(config).eval()


def test_the_registry_knows_every_kind():
    assert FUSED == ["lstm", "gru", "rnn"] and HAND_WRITTEN == ["peephole", "coupled"]
    assert all(stack_class(kind).kind == kind for kind in cell_kinds())


class ReluRNNStack(RNNStack):
    """A kind of one's own: a plain RNN with ReLU. Its module and one register_cell call are all it takes."""

    kind = "relu-rnn"
    name = "ReLU RNN"

    def __init__(self, input_size: int, hidden: int, layers: int, dropout: float):
        torch.nn.RNN.__init__(self, input_size, hidden, layers, nonlinearity="relu", batch_first=True)

    def step(self, x, state):
        (h_prev,) = state
        hs, gates, inp = [], [], x
        for k in range(self.num_layers):
            h = torch.relu(torch.addmm(getattr(self, f"bias_ih_l{k}"), inp, getattr(self, f"weight_ih_l{k}").t())
                           + torch.addmm(getattr(self, f"bias_hh_l{k}"), h_prev[k],
                                         getattr(self, f"weight_hh_l{k}").t()))
            hs.append(h)
            gates.append({"h": h})
            inp = h
        return inp, (torch.stack(hs),), gates


def test_a_registered_kind_is_accepted_trained_saved_and_loaded_everywhere(tiny_corpus, tmp_path):
    from lstm_repl import cells

    with pytest.raises(ConfigError, match="unknown cell kind 'relu-rnn'"):
        ModelConfig(vocab_size=10, cell="relu-rnn")
    cells.register_cell(ReluRNNStack)
    try:
        trainer = runs.new_run([str(tiny_corpus)], _config(max_steps=4, eval_interval=4), _model_args("relu-rnn"),
                               tmp_path, False)
        trainer.run()
        loaded = checkpoint.load(tmp_path)
        assert type(loaded.model.rnn) is ReluRNNStack and loaded.model.rnn.name == "ReLU RNN"
        tokens = torch.tensor([[1, 2, 3, 4]])
        with torch.no_grad():
            fused, _ = loaded.model(tokens)
            stepped, _, gates = loaded.model.step_sequence(tokens)
        assert torch.allclose(fused, stepped, atol=1e-5) and list(gates[0][0]) == ["h"]
    finally:
        cells._WHERE.pop("relu-rnn", None)
        cells._LOADED.pop("relu-rnn", None)


# ---------------------------------------------------------------- the two paths


@pytest.mark.parametrize("kind", cell_kinds())
def test_training_path_and_gate_path_agree_over_200_steps_and_2_layers(kind):
    model = _model(kind)
    tokens = torch.randint(0, 40, (3, 200))
    with torch.no_grad():
        fused_logits, fused_state = model(tokens)
        gate_logits, gate_state, gates = model.step_sequence(tokens)
    assert torch.allclose(fused_logits, gate_logits, atol=1e-5)
    assert len(fused_state) == len(gate_state) == len(model.rnn.state_names)
    for fused, gate in zip(fused_state, gate_state):
        assert fused.shape == (2, 3, 24) and torch.allclose(fused, gate, atol=1e-5)
    assert len(gates) == 200 and len(gates[0]) == 2
    assert set(gates[-1][1]) == SYMBOLS[kind]
    assert torch.allclose(gates[-1][1]["h"], fused_state[0][1], atol=1e-5)


@pytest.mark.parametrize("kind", cell_kinds())
def test_greedy_samples_are_identical_on_both_paths(kind):
    model = _model(kind)
    with torch.no_grad():
        token, state, fused_text = torch.tensor([[3]]), None, []
        for _ in range(100):
            logits, state = model(token, state)
            token = logits[:, -1].argmax(-1, keepdim=True)
            fused_text.append(int(token))
        token, state, gate_text = torch.tensor([3]), None, []
        for _ in range(100):
            logits, state, _ = model.step(token, state)
            token = logits.argmax(-1)
            gate_text.append(int(token))
    assert fused_text == gate_text


def _random_inputs(rows: int, units: int, hidden: int = 4, steps: int = 5, batch: int = 3) -> list[torch.Tensor]:
    torch.manual_seed(1)
    tensors = [torch.randn(steps, batch, rows * hidden), torch.randn(rows * hidden, hidden) * 0.5]
    tensors += [torch.randn(hidden) for _ in range(units)] + [torch.randn(batch, hidden), torch.randn(batch, hidden)]
    return [t.double().requires_grad_() for t in tensors]


def test_peephole_backward_pass_matches_numerical_gradients():
    assert torch.autograd.gradcheck(PeepholeSequence.apply, _random_inputs(4, 3))


def test_coupled_backward_pass_matches_numerical_gradients():
    assert torch.autograd.gradcheck(CoupledSequence.apply, _random_inputs(3, 0))


@pytest.mark.parametrize("kind", HAND_WRITTEN)
def test_every_weight_of_a_hand_written_stack_gets_the_numerical_gradient(kind):
    """The whole stack (input projections, both layers, the state carried in) in float64."""
    torch.manual_seed(2)
    stack = stack_class(kind)(3, 4, 2, 0.0).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True) for _ in stack.state_names)
    params = list(stack.parameters())  # gradcheck nudges these very tensors, which run() reads

    def run(x, *tensors):
        out, final = stack.run(x, tensors[len(params) :])
        return (out, *final)

    assert torch.autograd.gradcheck(run, (x, *params, *state))


# ---------------------------------------------------------------- the equations and the weights


def test_each_kind_obeys_its_equations_on_the_gate_path():
    checks = {}
    for kind in cell_kinds():
        model = _model(kind)
        with torch.no_grad():
            _, state, _ = model.step(torch.tensor([5]))
            _, _, gates = model.step(torch.tensor([7]), state)
        checks[kind] = (gates[0], tuple(s[0] for s in state), model)
    coupled, (_, c_prev), _ = checks["coupled"]
    assert torch.allclose(coupled["i"], 1 - coupled["f"])
    assert torch.allclose(coupled["c"], coupled["f"] * c_prev + (1 - coupled["f"]) * coupled["g"], atol=1e-6)
    gru, (h_prev,), _ = checks["gru"]
    assert torch.allclose(gru["h"], (1 - gru["z"]) * gru["n"] + gru["z"] * h_prev, atol=1e-6)
    for name in "rz":
        assert 0 <= gru[name].min() and gru[name].max() <= 1
    peephole, (_, c_prev), model = checks["peephole"]
    w_co = model.rnn.weight_co_l0
    assert torch.allclose(peephole["c"], peephole["f"] * c_prev + peephole["i"] * peephole["g"], atol=1e-6)
    assert torch.allclose(peephole["h"], peephole["o"] * torch.tanh(peephole["c"]), atol=1e-6)
    assert w_co.abs().sum() > 0  # the output gate reads the new cell state: change w_co, o changes
    with torch.no_grad():
        w_co.add_(1.0)
        _, state, _ = model.step(torch.tensor([5]))
        _, _, moved = model.step(torch.tensor([7]), state)
    assert not torch.allclose(moved[0]["o"], peephole["o"])
    rnn, (h_prev,), model = checks["rnn"]
    x = model.embedding(torch.tensor([7]))
    expected = torch.tanh(x @ model.rnn.weight_ih_l0.t() + model.rnn.bias_ih_l0 + h_prev @ model.rnn.weight_hh_l0.t()
                          + model.rnn.bias_hh_l0)
    assert torch.allclose(rnn["h"], expected, atol=1e-6)


@pytest.mark.parametrize("kind", cell_kinds())
def test_weights_are_named_and_shaped_as_in_pytorchs_fused_modules(kind):
    shapes = {name: tuple(t.shape) for name, t in _model(kind).state_dict().items() if name.startswith("rnn.")}
    rows = GATE_ROWS[kind] * 24
    expected = {}
    for k, width in enumerate((12, 24)):
        expected |= {f"rnn.weight_ih_l{k}": (rows, width), f"rnn.weight_hh_l{k}": (rows, 24),
                     f"rnn.bias_ih_l{k}": (rows,), f"rnn.bias_hh_l{k}": (rows,)}
        if kind == "peephole":
            expected |= {f"rnn.weight_c{gate}_l{k}": (24,) for gate in "ifo"}
    assert shapes == expected


def test_fused_kinds_load_straight_into_pytorchs_modules():
    for kind, module in (("gru", torch.nn.GRU), ("rnn", torch.nn.RNN)):
        model = _model(kind)
        fused = module(12, 24, 2, batch_first=True)
        fused.load_state_dict(
            {k.removeprefix("rnn."): v for k, v in model.state_dict().items() if k.startswith("rnn.")}
        )
        x = torch.randn(2, 7, 12)
        with torch.no_grad():
            assert torch.allclose(fused(x)[0], model.rnn.run(x, None)[0], atol=1e-6)


def test_quantities_name_each_kinds_own_gates():
    names = {kind: {q.symbol: q.name for q in stack_class(kind).quantities} for kind in cell_kinds()}
    assert names["gru"] == {"r": "reset gate", "z": "update gate", "n": "candidate", "h": "hidden state"}
    assert names["rnn"] == {"h": "hidden state"}
    assert stack_class("peephole").quantities == LSTM_QUANTITIES
    derived = [q.symbol for q in COUPLED_QUANTITIES if q.derived]
    assert derived == ["i"] and {q.symbol for q in COUPLED_QUANTITIES} == SYMBOLS["coupled"]
    assert all((q.low, q.high) == (0.0, 1.0) for q in GRU_QUANTITIES if q.symbol in "rz")
    assert (RNN_QUANTITIES[0].low, RNN_QUANTITIES[0].high) == (-1.0, 1.0)


# ---------------------------------------------------------------- training, saving, loading


def _config(**overrides) -> TrainConfig:
    base = dict(batch_size=4, seq_len=16, max_steps=40, eval_interval=20, log_interval=10, precision="fp32",
                lr=0.01, warmup=0.1)
    return TrainConfig(**{**base, **overrides})


def _model_args(kind: str) -> dict:
    return {"cell": kind, "layers": 2, "hidden": 16, "embed": 8, "dropout": 0.0, "tie_weights": False}


@pytest.fixture(scope="module", params=cell_kinds())
def trained(request, tiny_corpus, tmp_path_factory):
    """(kind, run folder, trainer, validation loss before training) after 40 steps."""
    kind = request.param
    trainer = runs.new_run([str(tiny_corpus)], _config(), _model_args(kind), tmp_path_factory.mktemp(kind), False)
    before = trainer.evaluate(None)
    trainer.run()
    return kind, trainer.out_dir, trainer, before


def test_each_kind_learns_the_tiny_corpus(trained):
    kind, _, trainer, before = trained
    assert before == pytest.approx(math.log(len(trainer.vocab)), abs=0.5)
    assert trainer.position.best_val_loss < before - 0.3, kind  # 40 tiny steps: 0.45-0.9 nats measured


def test_each_kind_round_trips_through_a_checkpoint(trained):
    kind, out, trainer, _ = trained
    loaded = checkpoint.load(out / "last")
    assert loaded.model.config.cell == kind and loaded.info["model"]["cell"] == kind
    assert type(loaded.model.rnn) is stack_class(kind)
    tokens = torch.randint(1, len(trainer.vocab), (2, 30))
    trainer.model.eval()
    with torch.no_grad():
        assert torch.equal(trainer.model(tokens)[0], loaded.model(tokens)[0])
        assert torch.equal(trainer.model.step_sequence(tokens)[0], loaded.model.step_sequence(tokens)[0])


def test_trace_json_shows_each_kinds_own_quantities(trained):
    kind, out, _, _ = trained
    result = CliRunner().invoke(cli, ["trace", str(out), "Speak", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["cell"] == kind
    assert [q["symbol"] for q in document["quantities"]] == [q.symbol for q in stack_class(kind).quantities]
    for token in document["tokens"]:
        assert len(token["layers"]) == 2 and all(set(layer) == SYMBOLS[kind] for layer in token["layers"])
    table = CliRunner().invoke(cli, ["trace", str(out), "Speak", "--units", "0-3"])
    assert table.exit_code == 0, table.output
    legend = " ".join(table.output.split())  # the legend may wrap at 80 columns
    for q in stack_class(kind).quantities:
        assert f"{q.symbol} {q.name.split()[0]}" in legend


def test_the_shell_session_shows_each_kinds_quantities_and_memory(trained):
    from lstm_repl.shell.app import ShellApp
    from lstm_repl.shell.shell_state import Shell
    from lstm_repl.session.session import Session

    kind, out, _, _ = trained
    session = Session(checkpoint.load(out))
    before = session.set_text("Spea")
    snapshot = session.set_text("Speak")
    assert snapshot.cell_kind == kind and snapshot.quantities == stack_class(kind).quantities
    assert all(set(layer) == SYMBOLS[kind] for layer in snapshot.layers)
    memory = "c" if "c" in SYMBOLS[kind] else "h"  # what "previous cell" shows: c, or h for gru and rnn
    for k in range(2):
        assert snapshot.previous_cell[k] == pytest.approx(before.layers[k][memory], abs=1e-5)
    hint = ShellApp(Shell(session), color=False).message
    assert f"watch the {stack_class(kind).name} read" in hint


def test_each_kind_generates_and_benches(trained):
    kind, out, _, _ = trained
    for precision in ("fp32", "fp16"):  # only lstm packs its weights; the others run fp32 whatever is asked
        result = CliRunner().invoke(cli, ["generate", str(out), "--prompt", "Sp", "--length", "30", "--seed", "1",
                                          "--precision", precision])
        assert result.exit_code == 0 and len(result.output) == len("Sp") + 30 + 1, result.output
    result = CliRunner().invoke(cli, ["bench", "generate", str(out), "--tokens", "20"])
    assert result.exit_code == 0 and "unpacked" in result.output, result.output
    assert ("bare loop" in result.output) == (kind == "lstm")


@pytest.mark.parametrize("kind", HAND_WRITTEN)
def test_hand_written_kinds_train_under_bf16_autocast(kind, tiny_corpus, tmp_path):
    trainer = runs.new_run(
        [str(tiny_corpus)], _config(precision="bf16", max_steps=3), _model_args(kind), tmp_path, False
    )
    assert trainer.precision == "bf16"
    start = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    losses = [float(trainer.train_step()) for _ in range(3)]
    assert all(math.isfinite(loss) for loss in losses)
    assert all(s.dtype == torch.float32 for s in trainer.state)  # the cell state stays float32
    for name, p in trainer.model.named_parameters():
        assert p.dtype == torch.float32 and not torch.equal(p, start[name]), name
    x = trainer.window(0)[:, :16]
    with torch.no_grad():
        exact, _ = trainer.model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low, _ = trainer.model(x)
    assert (low.float() - exact).abs().max() < 0.1


@pytest.mark.parametrize("kind", HAND_WRITTEN)
def test_hand_written_gradients_under_autocast_match_float32(kind):
    model = _model(kind, dropout=0.0).train()
    tokens = torch.randint(0, 40, (4, 20))

    def grads(autocast: bool) -> dict[str, torch.Tensor]:
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits, _ = model(tokens[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, 40).float(), tokens[:, 1:].reshape(-1))
        loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    exact, low = grads(False), grads(True)
    for name in exact:
        scale = exact[name].norm()
        assert (low[name] - exact[name]).norm() <= 0.1 * scale + 1e-6, name


def test_resuming_a_hand_written_kind_is_exact(tiny_corpus, tmp_path):
    constant = dict(schedule="constant", warmup=0.0)
    args = _model_args("peephole")
    runs.new_run([str(tiny_corpus)], _config(max_steps=20, **constant), args, tmp_path / "a", False).run()
    runs.new_run([str(tiny_corpus)], _config(max_steps=10, **constant), args, tmp_path / "b", False).run()
    runs.resumed_run(str(tmp_path / "b"), [], {"max_steps": 20}).run()
    a = checkpoint.load(tmp_path / "a" / "last").model.state_dict()
    b = checkpoint.load(tmp_path / "b" / "last").model.state_dict()
    assert all(torch.allclose(a[name], b[name], atol=1e-6) for name in a)


def test_train_command_accepts_every_kind(tiny_corpus, tmp_path):
    result = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--cell", "coupled", "--out", str(tmp_path / "r"),
                                      "--hidden", "8", "--embed", "8", "--batch-size", "4", "--seq-len", "16",
                                      "--max-steps", "10", "--eval-interval", "10", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert checkpoint.load(tmp_path / "r").model.config.cell == "coupled"
    bad = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--cell", "lstn"])
    assert bad.exit_code != 0 and "peephole" in bad.output


@pytest.mark.parametrize("module", [peephole, coupled], ids=["peephole", "coupled"])
def test_the_hand_written_time_loops_compile_with_torchscript(module):
    """A loop TorchScript cannot compile falls back to Python silently; this says so loudly."""
    for loop in (module._forward_loop, module._backward_loop):
        assert isinstance(scripted(loop), torch.jit.ScriptFunction), loop.__qualname__
