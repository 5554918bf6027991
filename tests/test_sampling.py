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
    from lstm_repl.shell.colon_commands import CommandError, run_command
    from lstm_repl.shell.shell_state import Shell

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


# ---------------------------------------------------------------- min-p, repetition penalty, stop strings


def tiny_logits(loaded, prompt: str = "To be, or not"):
    from lstm_repl.session.sampling import read_prompt

    with torch.inference_mode():
        logits, _ = read_prompt(loaded.model, loaded.vocab.encode(prompt))
    return logits.float()


def plain_probabilities(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(logits / T) over every token but <unk>: what sampling draws from with no filter."""
    masked = logits.clone()
    masked[UNK_ID] = float("-inf")
    return (masked / temperature).softmax(-1)


@pytest.mark.parametrize("min_p", [0.05, 0.3])
def test_min_p_removes_exactly_the_tokens_under_min_p_times_the_most_likely(loaded, min_p):
    logits = tiny_logits(loaded)
    before = plain_probabilities(logits, 1.0)
    after = Sampler(SampleConfig(temperature=1.0, min_p=min_p)).probabilities(logits)
    kept = before >= min_p * before.max()
    assert 1 < int(kept.sum()) < int((before > 0).sum())  # the tiny model's spread makes the cut bite
    assert torch.equal(after > 0, kept)
    assert torch.allclose(after[kept], before[kept] / before[kept].sum(), atol=1e-6)  # the rest renormalised
    drawn = draws(SampleConfig(temperature=1.0, min_p=min_p, seed=3), 3000, logits)
    assert set(drawn.tolist()) <= set(kept.nonzero()[:, 0].tolist())


@pytest.mark.parametrize("penalty", [1.5, 4.0])
def test_the_repeat_penalty_makes_recent_tokens_exactly_that_many_times_less_likely(loaded, penalty):
    logits, vocab = tiny_logits(loaded), loaded.vocab
    before = plain_probabilities(logits, 0.7)
    recent = before.topk(2).indices.tolist()  # the two likeliest tokens were just seen
    sampler = Sampler(SampleConfig(temperature=0.7, repeat_penalty=penalty, repeat_window=2))
    sampler.saw([*vocab.encode("To be"), recent[0], recent[1], recent[0]])  # a window of 2: the last two only
    assert sorted(set(sampler.recent)) == sorted(recent)
    after = sampler.probabilities(logits)
    seen = torch.zeros_like(before, dtype=torch.bool)
    seen[recent] = True
    odds_before = before[seen] / before[~seen].sum()
    odds_after = after[seen] / after[~seen].sum()
    assert torch.allclose(odds_after, odds_before / penalty, rtol=1e-4)
    unseen = ~seen & (before > 0)
    assert torch.allclose(after[unseen] / after[unseen].sum(), before[unseen] / before[unseen].sum(), atol=1e-6)
    # and the draws follow it
    n = 4000
    plain = draws(SampleConfig(temperature=0.7, seed=5), n, logits)
    penalised = torch.tensor([_draw_after(logits, recent, penalty, seed) for seed in range(n)])
    share = lambda drawn: float(sum((drawn == t).sum() for t in recent)) / n  # noqa: E731
    expected = float(after[seen].sum())
    assert abs(share(penalised) - expected) < 0.03 and share(plain) > share(penalised) + 0.05


def _draw_after(logits, recent, penalty, seed):
    sampler = Sampler(SampleConfig(temperature=0.7, repeat_penalty=penalty, repeat_window=8, seed=seed))
    sampler.saw(recent)
    return sampler.choose(logits)


def test_greedy_with_a_repeat_penalty_passes_over_the_recent_best(loaded):
    logits = tiny_logits(loaded)
    best = choose(logits, SampleConfig(temperature=0), None)
    penalised = choose(logits, SampleConfig(temperature=0, repeat_penalty=1e3), None, recent=[best])
    assert penalised != best and penalised != UNK_ID


def test_a_generation_ends_at_the_first_stop_string_and_writes_nothing_past_it(loaded):
    from lstm_repl.session.sampling import generate_text

    config = SampleConfig(temperature=1.0, seed=4, length=400)
    free = "".join(generate_text(loaded.model, loaded.vocab, "To be", config))
    stops = ("e,", "\n")
    first_end = min(free.find(s) + len(s) for s in stops if s in free)
    stopped = "".join(generate_text(loaded.model, loaded.vocab, "To be", SampleConfig(
        temperature=1.0, seed=4, length=400, stop=stops)))
    assert stopped == free[:first_end]


def test_stop_text_cuts_a_piece_that_runs_past_the_stop():
    from lstm_repl.session.sampling import StopText

    watch = StopText(("ab", "xyz"))
    assert watch.cut("..x") == ("..x", False)
    assert watch.cut("yz and more") == ("yz", True)  # 'xyz' spans two pieces
    assert StopText(()).cut("anything") == ("anything", False)


def test_sample_settings_are_checked_once_by_sample_config():
    for bad in (dict(min_p=-0.1), dict(min_p=1.5), dict(min_p=float("nan")), dict(repeat_penalty=0.5),
                dict(repeat_penalty=float("inf")), dict(repeat_window=-1), dict(stop=""), dict(stop=("a", "")),
                dict(stop=("x" * 300,)), dict(stop=tuple("abcdefghijklmnopq")), dict(stop=(1,))):
        with pytest.raises(ConfigError):
            SampleConfig(**bad)
    assert SampleConfig(stop="ab").stops == ("ab",) and SampleConfig(stop=["a", "b"]).stop == ("a", "b")


def test_generate_n_writes_k_reproducible_samples_with_derived_seeds(tiny_run):
    from click.testing import CliRunner

    from lstm_repl.cli.main import cli
    from lstm_repl.session.sampling import derived_seed

    args = ["generate", str(tiny_run), "--prompt", "To", "--length", "30", "--seed", "9", "--n", "3",
            "--min-p", "0.05", "--repeat-penalty", "1.3", "--repeat-last-n", "16", "--stop", "zz", "--stop", "q"]
    first, again = (CliRunner().invoke(cli, args) for _ in range(2))
    assert first.exit_code == 0, first.output
    assert first.output == again.output
    heads = [line for line in first.output.split("\n") if line.startswith("── sample")]
    seeds = [derived_seed(9, j) for j in range(3)]
    assert heads == [f"── sample {j + 1} of 3 · seed {seed} ──" for j, seed in enumerate(seeds)]
    # sample 2 is what --seed (its derived seed) alone writes
    alone = CliRunner().invoke(cli, [*args[:7], str(seeds[1]), *args[10:]])
    second = first.output.split(heads[1] + "\n")[1].split("\n── sample")[0]
    assert alone.output.rstrip("\n") == second.rstrip("\n")
