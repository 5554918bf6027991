"""Dynamic evaluation (training/dynamic_eval.py) and `eval --dynamic`, on the tiny real model."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from hypothesis import example, given, settings, strategies as st

from helpers import TINY_TEXT, one_line_error
from lstm_repl.cli.main import cli
from lstm_repl.config import DynamicConfig
from lstm_repl.errors import ConfigError
from lstm_repl.training.dynamic_eval import Adapter, dynamic_evaluate, gradient_stats, text_ids
from lstm_repl.training.evaluation import evaluate_text

TEXT = TINY_TEXT * 6
UNSEEN = "Speak further, famish resolved citizen, hear all. " * 12  # its words, in an order it never saw


def weights(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_each_segment_is_scored_before_the_model_learns_from_it(loaded):
    """The first segment's scores are the trained model's; every later one differs once it learned."""
    config = DynamicConfig(lr=1e-3, segment=20)
    learning = Adapter(loaded.model, config)
    ids, _ = text_ids(loaded.vocab, TEXT)
    state = learning.state
    with torch.no_grad():
        hidden, _ = loaded.model.read(torch.tensor(ids[None, :20]), state)
        trained = loaded.model.decoder(hidden[0]).log_softmax(-1).gather(1, torch.tensor(ids[1:21])[:, None])[:, 0]
    first = learning.learn(ids[:21])
    assert torch.allclose(first, trained, atol=1e-5)
    assert learning.distance() > 0


def test_learning_lowers_the_bits_per_character_of_repeated_text(loaded):
    config = DynamicConfig(lr=1e-3, segment=20)
    learned = dynamic_evaluate(loaded.model, loaded.vocab, UNSEEN, config)
    static = dynamic_evaluate(loaded.model, loaded.vocab, UNSEEN, config, learn=False)
    assert learned["bits_per_character"] < static["bits_per_character"] - 0.2
    assert learned["tokens_scored"] == static["tokens_scored"] == len(UNSEEN) - 1
    assert static["weights_moved"] == 0 and learned["weights_moved"] > 0


def test_without_learning_it_scores_as_eval_does(loaded):
    """The same tokens read in one stream (eval drops a last partial window; this text has none):
    the figure eval prints, to float precision."""
    text = TEXT[:1001]
    static = dynamic_evaluate(loaded.model, loaded.vocab, text, DynamicConfig(segment=50), learn=False)
    evaluated = evaluate_text(loaded.model, loaded.vocab, text, batch_size=1, seq_len=50)
    assert static["tokens_scored"] == evaluated["tokens_scored"] == 1000
    assert static["bits_per_character"] == pytest.approx(evaluated["bits_per_character"], rel=1e-5)


def test_the_model_has_its_trained_weights_again_afterwards(loaded):
    before = weights(loaded.model)
    dynamic_evaluate(loaded.model, loaded.vocab, TEXT, DynamicConfig(lr=1e-3, segment=20))
    assert all(torch.equal(a, b) for a, b in zip(before, weights(loaded.model)))


def test_it_is_a_deterministic_function_of_the_text(loaded):
    config = DynamicConfig(lr=3e-4, segment=25)
    stats = gradient_stats(loaded.model, config)
    again = gradient_stats(loaded.model, config)
    assert all(torch.equal(a, b) for a, b in zip(stats.rms, again.rms))
    runs = [dynamic_evaluate(loaded.model, loaded.vocab, TEXT, config, stats) for _ in range(2)]
    assert runs[0] == runs[1]


def test_decay_pulls_the_weights_back_toward_the_trained_ones(loaded):
    ids, _ = text_ids(loaded.vocab, TEXT)
    moved = []
    for decay in (0.0, 0.5):
        learning = Adapter(loaded.model, DynamicConfig(lr=1e-3, decay=decay, segment=20))
        for start in range(0, 200, 20):
            learning.learn(ids[start:start + 21])
        moved.append(learning.distance())
        learning.restore((0, learning.trained, learning.state))
    assert moved[1] < moved[0]


@pytest.mark.parametrize("changes", [{"lr": -1.0}, {"lr": float("nan")}, {"decay": 2.0}, {"segment": 1},
                                     {"segment": 10**6}])
def test_bad_settings_are_refused(changes):
    with pytest.raises(ConfigError):
        DynamicConfig(**changes)


def test_eval_dynamic_prints_both_figures(tiny_run, tmp_path):
    corpus = tmp_path / "text.txt"
    corpus.write_text(UNSEEN, encoding="utf-8")
    result = CliRunner().invoke(cli, ["eval", str(tiny_run), str(corpus), "--dynamic", "--dynamic-lr", "1e-3",
                                      "--segment", "20", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["bits_per_character"] < figures["without_learning"]["bits_per_character"]
    assert figures["dynamic"] == {"lr": 1e-3, "decay": DynamicConfig.decay, "segment": 20, "learn": True}
    text = CliRunner().invoke(cli, ["eval", str(tiny_run), str(corpus), "--dynamic", "--segment", "20"]).output
    assert "dynamic evaluation (lr" in text and "without learning" in text


def test_eval_dynamic_bad_option_is_one_line(tiny_run, tmp_path):
    corpus = tmp_path / "text.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    result = CliRunner().invoke(cli, ["eval", str(tiny_run), str(corpus), "--dynamic", "--decay", "5"])
    one_line_error(result, "decay")


# ---------------------------------------------------------------- learning on a session's text


def learn_all(learner, session) -> None:
    while (work := learner.work(session)) is not None:
        learner.apply(learner.run(work), session)


@settings(max_examples=20, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 120)), min_size=1, max_size=4))
def test_after_any_edits_the_weights_are_those_of_the_final_text(tiny_run, edits):
    """Type, cut back (into learned text or not) and type on, learning after each step: the
    weights, states and scores are bit for bit those of learning the final text in one go."""
    from lstm_repl.model import checkpoint
    from lstm_repl.session.session import Session
    from lstm_repl.training.session_learning import SessionLearner

    config = DynamicConfig(lr=1e-3, segment=20)
    loaded = checkpoint.load(tiny_run)
    session = Session(loaded)
    anchor = weights(loaded.model)
    learner = SessionLearner(session, config, anchor)
    stats = None
    for cut, more in edits:
        keep = min(cut, session.text_length())
        session.edit(keep, UNSEEN[keep:keep + more])
        learn_all(learner, session)
        stats = learner.adapter.stats if learner.adapter is not None else stats
    fresh_loaded = checkpoint.load(tiny_run)
    fresh = Session(fresh_loaded)
    once = SessionLearner(fresh, config, anchor, stats)
    fresh.edit(0, session.text)
    learn_all(once, fresh)
    assert all(torch.equal(a, b) for a, b in zip(weights(loaded.model), weights(fresh_loaded.model)))
    assert list(session.read.probs) == list(fresh.read.probs)


def learned_then_edited(tiny_run, cut_back: int, typed: int, read_ahead: bool, length: int = 75):
    """Learning runs on `length` characters; before the session takes its result the text is cut
    back and typed on (as keys arriving while learning's thread works); then the session takes it.
    75: 15 tokens after the boundary, read by the gate path; 600: 520, through the fused path."""
    from lstm_repl.model import checkpoint
    from lstm_repl.session.session import Session
    from lstm_repl.training.session_learning import SessionLearner

    loaded = checkpoint.load(tiny_run)
    session = Session(loaded)
    learner = SessionLearner(session, DynamicConfig(lr=1e-3, segment=20), weights(loaded.model))
    session.edit(0, UNSEEN[:length])
    learned = learner.run(learner.work(session))
    assert learned.ahead is not None and len(learned.ahead.ids) == (15 if length == 75 else length - 80)
    assert learned.ahead.fused == (length > 75)
    keep = length - cut_back
    session.edit(keep, UNSEEN[keep:keep + typed])
    if not read_ahead:
        learned.ahead = None
    learner.apply(learned, session)
    return session


@settings(max_examples=15, deadline=None)
@given(cut_back=st.integers(0, 300), typed=st.integers(0, 30), length=st.sampled_from([75, 600]))
@example(cut_back=88, typed=0, length=600)  # the text ending on a kept position: its last token is the gate path's
def test_tokens_read_on_learnings_thread_are_those_the_session_would_read(tiny_run, cut_back, typed, length):
    """Learning's thread reads the tokens after its boundary with the new weights, so the shell's
    loop need not: whatever was typed or deleted meanwhile, the scores, states and gates the
    session ends with are bit for bit those of reading them again itself, through the gate path
    or (a paste) the fused one."""
    cut_back = min(cut_back, 20 if length == 75 else 300)
    ahead = learned_then_edited(tiny_run, cut_back, typed, read_ahead=True, length=length)
    again = learned_then_edited(tiny_run, cut_back, typed, read_ahead=False, length=length)
    assert ahead.text == again.text
    assert list(ahead.read.probs) == list(again.read.probs)
    n = len(ahead.read)
    assert all(torch.equal(a, b) for a, b in zip(ahead.state(n), again.state(n)))
    for index in range(max(0, n - 20), n):
        mine, theirs = ahead.token_gates(index), again.token_gates(index)
        assert all((mine[k][g] == theirs[k][g]).all() for k in range(len(mine)) for g in mine[k])


def test_keys_typed_while_learning_reads_ahead_are_read_ahead_too(tiny_run):
    """Keys typed while learning's thread reads ahead are read ahead too, in another round, so
    the shell's loop reads none of them; the session ends as if it had read them itself."""
    from lstm_repl.model import checkpoint
    from lstm_repl.session.session import Session
    from lstm_repl.training.session_learning import SessionLearner

    loaded = checkpoint.load(tiny_run)
    session = Session(loaded)
    learner = SessionLearner(session, DynamicConfig(lr=1e-3, segment=20), weights(loaded.model))
    session.edit(0, UNSEEN[:75])
    work = learner.work(session)
    looks, following = [], work.following

    def typed_meanwhile():
        ids = following()
        looks.append(len(ids))
        if len(looks) == 1:
            session.edit(75, UNSEEN[75:85])  # ten keys while the first round reads
        return ids

    work.following = typed_meanwhile
    learned = learner.run(work)
    assert looks == [15, 25, 25] and len(learned.ahead.ids) == 25
    learner.apply(learned, session)
    again = learned_then_edited(tiny_run, 0, 10, read_ahead=False)
    assert session.text == again.text
    assert list(session.read.probs) == list(again.read.probs)
    n = len(session.read)
    assert all(torch.equal(a, b) for a, b in zip(session.state(n), again.state(n)))
    mine, theirs = session.token_gates(n - 1), again.token_gates(n - 1)
    assert all((mine[k][g] == theirs[k][g]).all() for k in range(len(mine)) for g in mine[k])


@pytest.mark.parametrize("length", [75, 600])
def test_with_the_text_unchanged_the_session_reads_nothing_itself(tiny_run, length):
    """A paste's tokens after the boundary (520, the fused path) or a typed line's (15, the gate
    path): the session takes every one the thread read and reads none on the shell's loop."""
    from lstm_repl.model import checkpoint
    from lstm_repl.session.session import Session
    from lstm_repl.training.session_learning import SessionLearner

    loaded = checkpoint.load(tiny_run)
    session = Session(loaded)
    learner = SessionLearner(session, DynamicConfig(lr=1e-3, segment=20), weights(loaded.model))
    session.edit(0, UNSEEN[:length])
    learned = learner.run(learner.work(session))

    def no_reading(*_):
        raise AssertionError("the session read a token itself")

    session._read = no_reading
    assert learner.apply(learned, session)
