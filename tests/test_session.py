"""Session: incremental state per prefix position, on tiny real models (no torch mocks).

Costs are counted by wrapping the model's own step/forward in counters that call the real ones.
"""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from lstm_repl.config import SampleConfig
from lstm_repl.session.ghost import ghost, ghost_pieces
from lstm_repl.session.sampling import choose
from lstm_repl.data.vocab import PRIMER
from lstm_repl.session.read_ahead import FUSED_CHUNK
from lstm_repl.session.session import Session, Settings
from lstm_repl.session.session_trace import trace_document
from lstm_repl.data.vocab import UNK_ID

TOL = 1e-5


class Calls:
    """Counts model.step and model.forward calls; each wrapper calls the real method."""

    def __init__(self, model):
        self.step = self.forward = 0
        real_step, real_forward = model.step, model.forward

        def step(*args, **kwargs):
            self.step += 1
            return real_step(*args, **kwargs)

        def forward(*args, **kwargs):
            self.forward += 1
            return real_forward(*args, **kwargs)

        model.step = step
        model.forward = forward

    def reset(self) -> None:
        self.step = self.forward = 0


def make(loaded, ghost_tokens: int = Settings.ghost_tokens, **sampling) -> Session:
    return Session(loaded, Settings(SampleConfig(**sampling), shown=len(loaded.vocab), ghost_tokens=ghost_tokens))


def fresh_reference(model, vocab, text: str):
    """Primer then text through the gate path, one token at a time: logits per position and gates."""
    ids = vocab.encode(PRIMER) + [vocab.ids.get(p, UNK_ID) for p in vocab.split(text)]
    with torch.inference_mode():
        logits, state, gates = model.step_sequence(torch.tensor([ids]))
    return logits[0].float(), state, gates


def assert_same_snapshot(a, b, tol: float = TOL) -> None:
    assert a.position == b.position
    assert a.token == b.token
    if a.probability is None:
        assert b.probability is None
    else:
        assert a.probability == pytest.approx(b.probability, abs=tol)
    assert [t for t, _ in a.top] == [t for t, _ in b.top] or _ties(a.top, b.top, tol)
    for (_, pa), (_, pb) in zip(a.top, b.top):
        assert pa == pytest.approx(pb, abs=tol)
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        assert la.keys() == lb.keys()
        for name in la:
            np.testing.assert_allclose(la[name], lb[name], atol=tol, rtol=0)
    for ca, cb in zip(a.previous_cell, b.previous_cell):
        np.testing.assert_allclose(ca, cb, atol=tol, rtol=0)


def _ties(top_a, top_b, tol) -> bool:
    """Orders may differ only between near-equal probabilities."""
    return all(abs(pa - pb) <= tol for (_, pa), (_, pb) in zip(top_a, top_b))


# ---------------------------------------------------------------- incremental costs


def test_typing_one_char_costs_one_step(loaded):
    session = make(loaded)
    calls = Calls(session.model)
    for n, char in enumerate("First Citizen", start=1):
        calls.reset()
        snapshot = session.set_text("First Citizen"[:n])
        assert (calls.step, calls.forward) == (1, 0), char
        assert snapshot.position == n
        assert snapshot.token == char


def test_backspace_costs_nothing_and_restores_the_previous_snapshot(loaded):
    session = make(loaded)
    snapshots = [session.snapshot]
    text = "Before we proceed"
    for n in range(1, len(text) + 1):
        snapshots.append(session.set_text(text[:n]))
    calls = Calls(session.model)
    for n in range(len(text) - 1, -1, -1):
        snapshot = session.set_text(text[:n])
        assert (calls.step, calls.forward) == (0, 0)
        assert_same_snapshot(snapshot, snapshots[n], tol=0)
    assert session.snapshot.position == 0 and session.text == ""


def test_setting_the_same_text_costs_nothing(loaded):
    session = make(loaded)
    session.set_text("Speak")
    version = session.version
    calls = Calls(session.model)
    assert session.set_text("Speak") is session.snapshot
    assert (calls.step, calls.forward, session.version) == (0, 0, version)


def test_an_edit_in_the_middle_recomputes_only_the_suffix(loaded):
    session = make(loaded)
    text = "You are all resolved"
    session.set_text(text)
    calls = Calls(session.model)
    edited = text[:4] + "A" + text[5:]  # "You Are all resolved"
    session.set_text(edited)
    assert calls.step == len(text) - 4 and calls.forward == 0
    assert_same_snapshot(session.snapshot, make(loaded).set_text(edited))
    calls.reset()
    session.set_text(edited[:10] + "xyz" + edited[10:])  # an insertion
    assert calls.step == len(edited) - 10 + 3


def test_any_sequence_of_edits_equals_a_fresh_session(loaded):
    rng = random.Random(7)
    alphabet = "abcdefirst CAF:.,\n€"  # € was never seen in training
    session = make(loaded)
    text = ""
    for _ in range(60):
        where = rng.randint(0, len(text))
        kind = rng.choice(["insert", "insert", "delete", "replace", "paste"])
        if kind == "insert":
            text = text[:where] + rng.choice(alphabet) + text[where:]
        elif kind == "delete" and text:
            text = text[: max(0, where - 1)] + text[where:]
        elif kind == "replace" and where < len(text):
            text = text[:where] + rng.choice(alphabet) + text[where + 1 :]
        elif kind == "paste":
            text = text[:where] + "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 12))) + text[where:]
        session.set_text(text)
        assert session.text == text
        assert_same_snapshot(session.snapshot, make(loaded).set_text(text))
    # the full next-token distribution too, against a gate-path run from scratch
    logits, _, gates = fresh_reference(loaded.model, loaded.vocab, text)
    probs = logits[-1].softmax(-1)
    expected = {loaded.vocab.token_text(i): float(p) for i, p in enumerate(probs) if i != UNK_ID}
    for token, p in session.snapshot.top:
        assert p == pytest.approx(expected[token], abs=TOL)
    if text:
        for layer, ref in zip(session.snapshot.layers, gates[-1]):
            for name, values in layer.items():
                np.testing.assert_allclose(values, ref[name][0].numpy(), atol=TOL, rtol=0)


def test_an_unknown_character_is_read_as_unk_and_then_replaced(loaded):
    session = make(loaded)
    session.set_text("ab€")
    assert session.ids[-1] == UNK_ID and session.snapshot.extras["unknown"]
    session.set_text("ab¥")  # another unknown character: same ids, new text
    assert session.text == "ab¥"
    assert session.snapshot.token == "¥"


# ---------------------------------------------------------------- a paste


def test_a_long_paste_goes_through_the_fused_path(loaded):
    rng = random.Random(3)
    chars = [c for c in loaded.vocab.tokens[1:]]
    text = "".join(rng.choice(chars) for _ in range(10_000))
    session = make(loaded)
    calls = Calls(session.model)
    snapshot = session.set_text(text)
    assert calls.forward <= math.ceil(10_000 / FUSED_CHUNK) + 2
    assert calls.step <= 3
    assert snapshot.position == 10_000

    calls.reset()
    logits, state, gates = fresh_reference(loaded.model, loaded.vocab, text)
    calls.reset()
    expected_p = float(logits[-2].softmax(-1)[loaded.vocab.ids[text[-1]]])
    assert snapshot.probability == pytest.approx(expected_p, abs=1e-4)
    probs = logits[-1].softmax(-1)
    for token, p in snapshot.top:
        assert p == pytest.approx(float(probs[loaded.vocab.ids[token]]), abs=1e-4)
    for layer, ref in zip(snapshot.layers, gates[-1]):
        for name, values in layer.items():
            np.testing.assert_allclose(values, ref[name][0].numpy(), atol=1e-4, rtol=0)
    for k, cell in enumerate(snapshot.previous_cell):
        np.testing.assert_allclose(cell, gates[-2][k]["c"][0].numpy(), atol=1e-4, rtol=0)

    # then typing one more char is one step again, and an edit inside the paste stays cheap
    session.set_text(text + "a")
    assert (calls.step, calls.forward) == (1, 0)
    calls.reset()
    edited = text[:5000] + "Z" + text[5001:]
    snapshot = session.set_text(edited)
    assert calls.forward <= math.ceil(5000 / FUSED_CHUNK) + 3 and calls.step <= 3
    with torch.inference_mode():  # the fused path is a fine reference here; its parity with steps is shown above
        logits, _ = loaded.model(torch.tensor([loaded.vocab.encode(PRIMER + edited)]))
    for token, p in snapshot.top:
        assert p == pytest.approx(float(logits[0, -1].softmax(-1)[loaded.vocab.ids[token]]), abs=1e-4)


# ---------------------------------------------------------------- probabilities


def test_surprisal_of_the_typed_token(loaded):
    session = make(loaded)
    first = session.set_text("F")
    logits, _, _ = fresh_reference(loaded.model, loaded.vocab, "Fi")
    p_first = float(logits[0].softmax(-1)[loaded.vocab.ids["F"]])  # after the primer "\n"
    assert first.probability == pytest.approx(p_first, abs=TOL)
    assert first.surprisal_bits == pytest.approx(-math.log2(first.probability))
    second = session.set_text("Fi")
    p_second = float(logits[1].softmax(-1)[loaded.vocab.ids["i"]])
    assert second.probability == pytest.approx(p_second, abs=TOL)
    assert second.surprisal_bits == pytest.approx(-math.log2(p_second), rel=1e-5)
    assert 0 < second.probability < 1


def test_nothing_typed(loaded):
    session = make(loaded)
    snapshot = session.snapshot
    assert snapshot.position == 0 and snapshot.token is None and snapshot.probability is None
    assert snapshot.surprisal_bits is None
    assert len(snapshot.layers) == loaded.model.config.layers
    assert snapshot.hidden == loaded.model.config.hidden
    assert snapshot.top, "the primer gives a prediction before anything is typed"
    assert all(a[1] >= b[1] for a, b in zip(snapshot.top, snapshot.top[1:]))


# ---------------------------------------------------------------- word level


def test_word_level_partial_word_is_not_read(word_loaded):
    session = Session(word_loaded, Settings(shown=10))
    assert session.set_text("First ").position == 2  # "First", " "
    calls = Calls(session.model)
    for typed in ("C", "Ci", "Cit"):
        snapshot = session.set_text("First " + typed)
        assert snapshot.position == 2
        assert calls.step == 0
        assert session.partial == typed
        assert snapshot.top and all(t.startswith(typed) for t, _ in snapshot.top), snapshot.top
    assert "Citizen" in [t for t, _ in session.snapshot.top]
    snapshot = session.set_text("First Citizen ")
    assert snapshot.position == 4 and session.partial == ""
    assert [session.piece(i) for i in (2, 3)] == ["Citizen", " "]
    assert snapshot.token == " "


def test_word_level_no_candidates_for_a_prefix(word_loaded):
    session = Session(word_loaded)
    session.set_text("Qzx")
    assert session.snapshot.top == []
    assert ghost_pieces(session) == []


def test_word_level_ghost_completes_the_word(word_loaded):
    session = Session(word_loaded)
    session.set_text("First Cit")
    ghost = ghost_pieces(session)
    assert ghost and ghost[0] == "izen"
    snapshot = session.set_text("First Cit" + "".join(ghost))
    assert session.text == "First Cit" + "".join(ghost)
    assert snapshot.position >= 3


# ---------------------------------------------------------------- ghost text


def greedy_reference(loaded, text: str, limit: int) -> list[str]:
    logits, state, _ = fresh_reference(loaded.model, loaded.vocab, text)
    out, last = [], logits[-1]
    with torch.inference_mode():
        for _ in range(limit):
            token = choose(last, SampleConfig(temperature=0), None)
            piece = loaded.vocab.token_text(token)
            if "\n" in piece:
                break
            out.append(piece)
            step_logits, state, _ = loaded.model.step(torch.tensor([token]), state)
            last = step_logits[0]
    return out


@pytest.mark.parametrize("text", ["Fir", "All", "First Citizen:", "Resolved", "You are"])
def test_ghost_is_the_greedy_continuation_up_to_a_newline(loaded, text):
    session = make(loaded, ghost_tokens=24)
    session.set_text(text)
    position, version = session.snapshot.position, session.version
    ghost = ghost_pieces(session)
    assert ghost == greedy_reference(loaded, text, 24)
    assert ghost == ghost_pieces(session)  # deterministic
    assert "\n" not in "".join(ghost) and len(ghost) <= 24
    assert (session.snapshot.position, session.version) == (position, version)  # looking is free
    snapshot = session.set_text(text + "".join(ghost))  # accepting it
    assert snapshot.position == len(text) + len(ghost)
    if ghost:
        assert snapshot.token == ghost[-1]


def test_ghost_stops_at_a_newline(loaded):
    session = make(loaded, ghost_tokens=200)
    stops = []
    for text in ["First Citizen:", "All:", "Speak, speak.", "Resolved. resolved."]:
        session.set_text(text)
        ghost = ghost_pieces(session)
        if len(ghost) < 200:
            stops.append(text)
            logits, state, _ = fresh_reference(loaded.model, loaded.vocab, text + "".join(ghost))
            assert choose(logits[-1], SampleConfig(temperature=0), None) == loaded.vocab.ids["\n"]
    assert stops, "no prompt where the greedy continuation reaches a newline"


def test_ghost_max_tokens(loaded):
    session = make(loaded)
    session.set_text("You are")
    assert len(ghost_pieces(session, 3)) <= 3
    assert ghost(session, 3) == "".join(ghost_pieces(session, 3))


# ---------------------------------------------------------------- streaming


def test_stream_yields_n_pieces_and_reads_them(loaded):
    session = make(loaded, temperature=1.0)
    session.set_text("First")
    session.reseed(5)
    pieces = list(session.stream(30))
    assert len(pieces) == 30
    assert session.snapshot.position == len("First") + 30
    assert session.text == "First" + "".join(pieces)
    assert_same_snapshot(session.snapshot, make(loaded).set_text(session.text))

    other = make(loaded, temperature=1.0)
    other.set_text("First")
    other.reseed(5)
    assert list(other.stream(30)) == pieces  # same seed, same text
    other.set_text("First")
    other.reseed(6)
    assert list(other.stream(30)) != pieces


def test_stream_is_lazy_and_default_length(loaded):
    session = make(loaded, length=7, seed=1)
    stream = session.stream()
    assert session.snapshot.position == 0
    next(stream)
    assert session.snapshot.position == 1
    assert len(list(stream)) == 6


def test_stream_at_word_level_finishes_the_partial_word_first(word_loaded):
    session = Session(word_loaded, Settings(SampleConfig(seed=2)))
    session.set_text("First Cit")
    pieces = list(session.stream(5))
    assert pieces[0] == " " and len(pieces) == 6
    assert session.partial == "" and session.text.startswith("First Cit ")


# ---------------------------------------------------------------- trace export


def test_trace_document_round_trips(loaded):
    session = make(loaded)
    session.set_text("Speak, speak.")
    document = trace_document(session)
    assert json.loads(json.dumps(document)) == document
    assert document["format"] == "lstm-repl-trace"
    assert document["text"] == "Speak, speak."
    assert len(document["tokens"]) == session.snapshot.position
    assert [t["text"] for t in document["tokens"]] == list("Speak, speak.")
    first = document["tokens"][0]
    assert first["probability"] is not None  # the primer gives the first token a prediction
    last = document["tokens"][-1]
    assert last["probability"] == pytest.approx(session.snapshot.probability, abs=TOL)
    for layer, ours in zip(last["layers"], session.snapshot.layers):
        for name, values in ours.items():
            np.testing.assert_allclose(layer[name], values, atol=1e-5, rtol=0)


def test_reset_forgets_and_load_switches_models(loaded, word_loaded):
    session = make(loaded)
    session.set_text("abc")
    seen = {session.version}
    session.reset()
    assert session.text == "" and session.snapshot.position == 0
    # the version never repeats: the panel caches on it, so "x" after a reset must not look like "a"
    assert session.version not in seen
    seen.add(session.version)
    session.set_text("x")
    assert session.version not in seen
    session.load(word_loaded)
    assert session.vocab.level == "word"
    assert session.set_text("First ").position == 2


# ---------------------------------------------------------------- long use


class TokensRead:
    """Counts the tokens the model reads, one at a time (step) or many (the stack's fused run,
    which forward also goes through); wraps the real methods."""

    def __init__(self, model):
        self.count = 0
        real_step, real_run = model.step, model.rnn.run

        def step(token, *args, **kwargs):
            self.count += token.shape[0]
            return real_step(token, *args, **kwargs)

        def run(x, *args, **kwargs):
            self.count += x.shape[1]
            return real_run(x, *args, **kwargs)

        model.step, model.rnn.run = step, run


def test_what_is_kept_stays_within_its_bound_over_a_long_session(loaded):
    from lstm_repl.session.state_store import CHECKPOINT_EVERY, RECENT

    session = make(loaded, seed=3)
    for _ in session.stream(3000):
        assert len(session.store) <= session.store.bound(len(session.ids))
    for index in range(600):  # then typing, a backspace now and then
        if index % 9 == 8:
            session.edit(session.text_length() - 1, "")
        else:
            session.edit(session.text_length(), "abcdefgh "[index % 9])
    n = len(session.ids)
    assert len(session.store) <= 1 + n // CHECKPOINT_EVERY + RECENT + 1 == session.store.bound(n)
    assert session.store.gates_kept() <= RECENT + 1
    assert len(session.ids) == len(session.read.probs) == n  # per token: an id and a probability, no more

    # what is not kept is recomputed: the gates of a token far back equal a fresh reading's
    far = 700
    text = "".join(session.piece(i) for i in range(far + 1))
    _, _, gates = fresh_reference(loaded.model, loaded.vocab, text)
    for layer, reference in zip(session.token_gates(far), gates[-1]):
        for name, values in layer.items():
            np.testing.assert_allclose(values, reference[name][0].numpy(), atol=1e-4, rtol=0)


def test_an_edit_far_back_reads_from_the_nearest_kept_state(loaded):
    from lstm_repl.session.state_store import CHECKPOINT_EVERY

    session = make(loaded, seed=4)
    for _ in session.stream(2000):
        pass
    text = session.text
    reads = TokensRead(session.model)
    at = 1300  # not a kept position: the state there is recomputed from the one at 1280
    session.edit(at, "Z" + text[at + 1 :])
    suffix = len(text) - at
    assert reads.count <= (at % CHECKPOINT_EVERY) + suffix + 1
    assert session.text == text[:at] + "Z" + text[at + 1 :]
    with torch.inference_mode():
        logits, _ = loaded.model(torch.tensor([loaded.vocab.encode(PRIMER + session.text)]))
    for token, p in session.snapshot.top:
        assert p == pytest.approx(float(logits[0, -1].softmax(-1)[loaded.vocab.ids[token]]), abs=1e-4)


def test_a_keystroke_reads_one_token_however_long_the_text(loaded):
    session = make(loaded, seed=5)
    session.edit(0, "x" * 20_000)
    session.snapshot
    reads = TokensRead(session.model)
    for char in "abc":
        session.edit(session.text_length(), char)
        session.snapshot
    assert reads.count == 3


def test_a_paste_leaves_kept_states_behind_it(loaded):
    from lstm_repl.session.state_store import CHECKPOINT_EVERY, RECENT

    session = make(loaded)
    session.edit(0, "x" * 100)
    session.edit(100, "abcdefgh " * 600)  # 5,400 characters read through the fused path
    n = len(session.ids)
    kept = [p for p in range(CHECKPOINT_EVERY, n - RECENT, CHECKPOINT_EVERY)]
    assert kept and all(session.store.state(p) is not None for p in kept)
    reads = TokensRead(session.model)
    session.state(3000)  # from the state kept at 2816, not from the start of the paste
    assert reads.count == 3000 - 2816
