"""The fused path and the gate path are one model: same logits, same state (same greedy text: test_cells.py)."""

from __future__ import annotations

import pytest
import torch

from lstm_repl.config import ModelConfig
from lstm_repl.model import LanguageModel, count_parameters
from lstm_repl.model import packed as packed_module


def _model(**overrides) -> LanguageModel:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=40, layers=2, hidden=24, embed=12, dropout=0.2, **overrides)
    return LanguageModel(config).eval()


@pytest.mark.parametrize("grad", [False, True], ids=["packed", "plain"])
def test_fused_and_gate_paths_agree_over_200_steps_and_2_layers(grad):
    """Autograd off: the packed gate path (model/packed.py); on: the plain equations (model/lstm.py)."""
    model = _model()
    tokens = torch.randint(0, 40, (3, 200))
    with torch.set_grad_enabled(grad):
        assert (model.packed() is None) == grad
        fused_logits, (fh, fc) = model(tokens)
        gate_logits, (gh, gc), gates = model.step_sequence(tokens)
    assert torch.allclose(fused_logits, gate_logits, atol=1e-5)
    assert torch.allclose(fh, gh, atol=1e-5) and torch.allclose(fc, gc, atol=1e-5)
    assert len(gates) == 200 and len(gates[0]) == 2
    assert set(gates[-1][1]) == {"i", "f", "g", "o", "c", "h"}
    assert torch.allclose(gates[-1][1]["h"], fh[1], atol=1e-5)


def test_gates_are_in_range_and_obey_the_equations():
    model = _model()
    with torch.no_grad():
        _, state, gates = model.step(torch.tensor([5]))
        _, _, next_gates = model.step(torch.tensor([7]), state)
    for layer in next_gates:
        for name in "ifo":
            assert layer[name].min() >= 0 and layer[name].max() <= 1
        assert layer["g"].abs().max() <= 1
    layer0, prev = next_gates[0], gates[0]
    expected_c = layer0["f"] * prev["c"] + layer0["i"] * layer0["g"]
    assert torch.allclose(layer0["c"], expected_c, atol=1e-6)
    assert torch.allclose(layer0["h"], layer0["o"] * torch.tanh(layer0["c"]), atol=1e-6)


def test_weight_names_are_those_of_the_fused_module():
    names = set(_model().state_dict())
    expected = {"embedding.weight", "decoder.weight", "decoder.bias"} | {
        f"rnn.{kind}_{part}_l{k}" for kind in ("weight", "bias") for part in ("ih", "hh") for k in range(2)
    }
    assert names == expected


def test_tied_weights_share_one_matrix_and_count_once():
    tied = LanguageModel(ModelConfig(vocab_size=40, layers=1, hidden=16, embed=16, tie_weights=True))
    assert tied.decoder.weight is tied.embedding.weight
    counts = count_parameters(tied)
    assert counts["total"] == sum(p.numel() for p in tied.parameters())
    assert "decoder" in counts and counts["decoder"] == 40  # only the bias is its own


def test_lstm_has_about_four_times_the_recurrent_parameters_of_its_gates():
    counts = count_parameters(_model())
    per_gate = 24 * (12 + 24) + 2 * 24 + 24 * (24 + 24) + 2 * 24
    assert counts["rnn"] == 4 * per_gate


# ---------------------------------------------------------------- the packed gate path


def _walk(step, tokens: list[int], state):
    """Feed tokens one by one; -> logits and state after each."""
    out = []
    for token in tokens:
        logits, state, gates = step(torch.tensor([token]), state)
        out.append((logits, state, gates))
    return out


@torch.no_grad()
def test_packed_fp16_weights_stay_close_to_fp32():
    model = _model()
    tokens = torch.randint(1, 40, (100,)).tolist()
    exact = _walk(lambda t, s: model.packed("fp32").step(t, list(s)), tokens, list(model.zero_state()))
    half = _walk(lambda t, s: model.packed("fp16").step(t, list(s)), tokens, list(model.zero_state()))
    for (l32, _, g32), (l16, _, g16) in zip(exact, half):
        assert torch.allclose(l32, l16, atol=2e-2)
        assert all(torch.allclose(g32[k][q], g16[k][q], atol=1e-2) for k in range(2) for q in "ifgoch")


@torch.no_grad()
def test_a_large_vocabulary_projects_the_embedding_instead_of_keeping_a_table(monkeypatch):
    model = _model()
    tokens = torch.randint(0, 40, (2, 60))
    monkeypatch.setattr(packed_module, "MAX_TABLE_BYTES", 0)
    assert not model.packed().has_table
    fused_logits, (fh, fc) = model(tokens)
    gate_logits, (gh, gc), _ = model.step_sequence(tokens)
    assert torch.allclose(fused_logits, gate_logits, atol=1e-5) and torch.allclose(fc, gc, atol=1e-5)


@torch.no_grad()
def test_without_torchscript_the_packed_path_runs_as_python(monkeypatch):
    model = _model()
    scripted = model.packed()
    assert isinstance(scripted, torch.jit.ScriptModule)
    model._packed.clear()

    def no_script(obj):
        raise RuntimeError("TorchScript is not available")

    monkeypatch.setattr(torch.jit, "script", no_script)
    plain = model.packed()
    assert isinstance(plain, packed_module.PackedLSTM)
    state, mask = list(model.zero_state()), torch.zeros(40)
    uniforms = torch.rand(30).tolist()
    assert scripted.decode(3, state, uniforms, mask, 0.8)[0] == plain.decode(3, state, uniforms, mask, 0.8)[0]


@pytest.mark.parametrize("fused", [False, True], ids=["sgd", "fused-adamw"])
def test_the_pack_follows_the_weights_as_they_train(fused):
    """A fused optimizer updates in place without bumping the tensors' versions."""
    model = _model()
    optimizer = (torch.optim.AdamW(model.parameters(), lr=0.1, fused=True) if fused
                 else torch.optim.SGD(model.parameters(), lr=0.5))
    tokens = torch.randint(0, 40, (2, 20))
    for _ in range(2):
        model.train()
        logits, _ = model(tokens)
        logits.sum().backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            fused_logits, _ = model(tokens)
            gate_logits, _, _ = model.step_sequence(tokens)
        assert torch.allclose(fused_logits, gate_logits, atol=1e-5)


@torch.no_grad()
def test_decode_picks_each_token_as_a_step_then_pick_token_would():
    model = _model()
    uniforms, mask = torch.rand(25).tolist(), torch.zeros(40)
    chosen, state = model.packed().decode(3, list(model.zero_state()), uniforms, mask, 0.7)
    expected, token, expected_state = [], 3, model.zero_state()
    for uniform in uniforms:
        logits, expected_state, _ = model.step(torch.tensor([token]), expected_state)
        token = packed_module.pick_token(logits[0], mask, 0.7, uniform)
        expected.append(token)
    assert chosen == expected
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(state, expected_state))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@torch.no_grad()
def test_packed_paths_on_cuda_agree_with_the_cpu():
    from lstm_repl.config import SampleConfig
    from lstm_repl.session.sampling import generate

    cpu = _model()
    gpu = _model().cuda()
    tokens = torch.randint(1, 40, (2, 50))
    cpu_logits, _, _ = cpu.step_sequence(tokens)
    gpu_logits, _, _ = gpu.step_sequence(tokens.cuda())
    assert torch.allclose(cpu_logits, gpu_logits.cpu(), atol=1e-4)
    for precision in ("fp32", "fp16"):
        text = list(generate(gpu, [3, 4], SampleConfig(length=60, seed=1, precision=precision)))
        assert len(text) == 60 and 0 not in text


@pytest.mark.parametrize("mode", [torch.inference_mode, torch.no_grad])
def test_weights_written_in_place_refresh_the_pack_without_compiling_it_again(mode):
    """The shell's learning writes the weights in place every few seconds: the pack takes them
    (its compiled code kept) and steps to the same bits as a pack made afresh."""
    model, copy = _model(), _model()
    copy.load_state_dict(model.state_dict())
    token, generator = torch.tensor([7]), torch.Generator().manual_seed(0)
    changes = [torch.randn(p.shape, generator=generator) * 0.1 for p in model.parameters()]
    with mode():
        pack = model.packed()
        model.step(token, model.zero_state())
        for param, change in zip(model.parameters(), changes):
            param.add_(change)
        refreshed = model.step(token, model.zero_state())
        assert model.packed() is pack
        for param, change in zip(copy.parameters(), changes):
            param.add_(change)
        afresh = copy.step(token, copy.zero_state())
    assert torch.equal(refreshed[0], afresh[0])
    assert all(torch.equal(a, b) for a, b in zip(refreshed[1], afresh[1]))
