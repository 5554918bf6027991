"""Choosing tokens: greedy, draws with softmax frequencies, top-k/top-p, seeds, the uniform stream."""

from __future__ import annotations

import pytest
import torch

from lstm_repl.config import ModelConfig, SampleConfig
from lstm_repl.errors import ConfigError
from lstm_repl.model.packed import pick_token
from lstm_repl.model import LanguageModel
from lstm_repl.session.sampling import Sampler, choose, greedy_ids
from lstm_repl.data.vocab import UNK_ID

LOGITS = torch.tensor([5.0, 2.0, 1.0, 0.0, -1.0, 1.5])  # <unk> (id 0) is the most likely of all


def draws(config: SampleConfig, n: int, logits: torch.Tensor = LOGITS) -> torch.Tensor:
    sampler = Sampler(config)
    return torch.tensor([sampler.choose(logits) for _ in range(n)])


def test_greedy_takes_the_most_likely_token_but_never_unk():
    assert set(draws(SampleConfig(temperature=0), 20).tolist()) == {1}
    assert choose(LOGITS, SampleConfig(temperature=0), None) == 1


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_draws_follow_the_softmax_of_logits_over_temperature(temperature):
    n = 20_000
    counts = torch.bincount(draws(SampleConfig(temperature=temperature, seed=0), n), minlength=len(LOGITS))
    expected = LOGITS[1:].div(temperature).softmax(-1)  # <unk> excluded, the rest renormalised
    assert counts[UNK_ID] == 0
    assert torch.allclose(counts[1:] / n, expected, atol=0.015)


def test_top_k_and_top_p_keep_only_the_likeliest_tokens_after_unk():
    assert set(draws(SampleConfig(temperature=2.0, top_k=3, seed=0), 500).tolist()) == {1, 2, 5}
    # without <unk>: token 1 has .46, token 5 .28, the rest .25 -> top-p .5 keeps tokens 1 and 5
    assert set(draws(SampleConfig(temperature=1.0, top_p=0.5, seed=0), 500).tolist()) == {1, 5}
    # <unk> is the likeliest of all, yet top-k 1 and a tiny top-p still give a real token
    assert set(draws(SampleConfig(top_k=1, seed=0), 50).tolist()) == {1}
    assert set(draws(SampleConfig(top_p=0.01, seed=0), 50).tolist()) == {1}


def test_choose_with_sampling_needs_the_callers_generator():
    with pytest.raises(ValueError, match="generator"):
        choose(LOGITS, SampleConfig(seed=1), None)
    generator = torch.Generator().manual_seed(0)
    assert len({choose(LOGITS, SampleConfig(temperature=2.0), generator) for _ in range(50)}) > 1


def test_the_same_seed_gives_the_same_draws_and_another_seed_others():
    a, b, c = (draws(SampleConfig(seed=seed), 200).tolist() for seed in (7, 7, 8))
    assert a == b and a != c


def test_the_uniform_stream_does_not_depend_on_how_it_is_asked_for():
    one_by_one = Sampler(SampleConfig(seed=1), block=8)
    in_chunks = Sampler(SampleConfig(seed=1), block=8)
    singles = [one_by_one.uniforms(1)[0] for _ in range(30)]
    chunks = [u for n in (1, 5, 7, 3, 9, 5) for u in in_chunks.uniforms(n)]
    assert singles == chunks and all(0 <= u < 1 for u in singles)


@pytest.mark.parametrize("uniform", [0.0, 0.25, 0.999999999])
def test_pick_token_never_chooses_a_masked_or_impossible_token(uniform):
    logits = torch.tensor([3.0, float("-inf"), 1.0, 2.0, float("-inf")])
    mask = torch.tensor([float("-inf"), 0.0, 0.0, 0.0, 0.0])
    assert pick_token(logits, mask, 1.0, uniform) in (2, 3)
    assert pick_token(logits, mask, 0.0, uniform) == 3


def test_an_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="precision"):
        SampleConfig(precision="fp8")


@pytest.mark.parametrize("cell", ["lstm", "gru"])  # lstm decodes packed, gru steps in Python
def test_greedy_ids_are_the_argmax_step_after_step(cell):
    torch.manual_seed(0)
    model = LanguageModel(ModelConfig(vocab_size=30, layers=2, hidden=16, embed=8, cell=cell)).eval()
    with torch.no_grad():
        logits, state = model(torch.tensor([[4, 5, 6]]))
        logits, state = logits[0, -1], state
        expected, step_logits, step_state = [], logits, state
        for _ in range(12):
            token = int(step_logits[1:].argmax()) + 1  # never <unk>
            expected.append(token)
            out, step_state, _ = model.step(torch.tensor([token]), step_state)
            step_logits = out[0]
        assert greedy_ids(model, logits, state, 12) == expected
        assert greedy_ids(model, logits, state, 0) == []


@pytest.mark.parametrize("softmax", ["full", "adaptive"])
def test_a_prompt_is_read_without_the_scores_of_every_position(softmax):
    """read_prompt decodes only the last position: a long word-level prompt's T x V scores would
    take gigabytes. Its logits and state equal the full forward's last position."""
    from lstm_repl.session.sampling import read_prompt

    torch.manual_seed(0)
    config = ModelConfig(vocab_size=60, layers=2, hidden=16, embed=8, softmax=softmax,
                         cutoffs=[20, 40] if softmax == "adaptive" else [])
    model = LanguageModel(config).eval()
    ids = [3, 7, 11, 19, 23, 42, 59, 1]
    with torch.no_grad():
        everything, full_state = model(torch.tensor([ids]))
        last, state = read_prompt(model, ids)
    assert torch.allclose(last, everything[0, -1], atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(state, full_state))


def test_the_shell_and_the_cli_sample_by_the_same_rules_and_defaults(loaded):
    from lstm_repl.cli.generate import generate
    from lstm_repl.cli.repl import repl
    from lstm_repl.config import MAX_TEMPERATURE, SampleConfig
    from lstm_repl.session.session import Session, Settings
    from lstm_repl.shell.colon_commands import CommandError, Shell, run_command

    defaults = SampleConfig()
    assert Settings().sampling == defaults  # the shell's settings hold the sampler's own
    for command in (repl, generate):
        shown = {p.name: p.default for p in command.params}
        assert (shown["temperature"], shown["top_k"], shown["top_p"]) == (defaults.temperature, defaults.top_k,
                                                                         defaults.top_p)
    assert {p.name: p.default for p in repl.params}["length"] == defaults.length
    shell = Shell(Session(loaded))
    run_command(shell, f":temp {MAX_TEMPERATURE:g}")  # what --temperature takes, :temp takes
    assert shell.session.settings.sampling.temperature == MAX_TEMPERATURE
    with pytest.raises(CommandError, match="temperature must be 0 \\(greedy\\) or from 0.001 to 1000"):
        run_command(shell, f":temp {MAX_TEMPERATURE * 1.01:g}")
    assert shell.session.settings.sampling.temperature == MAX_TEMPERATURE
