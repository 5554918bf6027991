"""The shell at bpe level, on a tiny real model: every typed character updates the panel, a
token that changes as the word grows is read again from the first changed token, and ghost
text, streaming, :find, interventions and the heatmap work as at char level."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from lstm_repl.session.ghost import ghost_pieces
from lstm_repl.session.session import Session
from lstm_repl.shell.headless import Headless as Driver, drive
from lstm_repl.terminal_text import visible_token

ENTER, BACKSPACE = "\r", "\x7f"
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TEXT = st.text(alphabet=st.sampled_from("Fir stCzn:\nY'éu€東.?"), max_size=40)


@PROPERTY
@given(first=TEXT, second=TEXT, at=st.integers(0, 40))
def test_after_any_edit_the_session_has_read_the_texts_own_tokens(bpe_loaded, first, second, at):
    session = Session(bpe_loaded)
    for end in range(1, len(first) + 1):  # typed a character at a time
        session.edit(end - 1, first[end - 1])
        assert list(session.ids) == session.vocab.encode(first[:end]) and session.text == first[:end]
    at = min(at, len(first))
    session.edit(at, second)  # an edit in the middle: all after `at` becomes `second`
    assert session.text == first[:at] + second
    assert list(session.ids) == session.vocab.encode(first[:at] + second)


def test_a_boundary_that_moves_is_read_again_from_the_first_changed_token(bpe_loaded, monkeypatch):
    session = Session(bpe_loaded)
    vocab = session.vocab
    line = "First Citizen: You are all resolved rather to die than to famish?"
    # a place where one more character changes a token already read ("Citize" + "n": a merge)
    at = next(k for k in range(1, len(line)) if vocab.encode(line[: k + 1])[: len(vocab.encode(line[:k])) - 1]
              != vocab.encode(line[:k])[:-1] or vocab.encode(line[: k + 1])[len(vocab.encode(line[:k])) - 1]
              != vocab.encode(line[:k])[-1])
    session.set_text(line[:at])
    old, probs = list(session.ids), list(session.read.probs)
    steps = []
    real = session.gate_step
    monkeypatch.setattr(session, "gate_step", lambda *a: (steps.append(a[2]), real(*a))[1])
    session.edit(at, line[at])
    new = vocab.encode(line[: at + 1])
    assert list(session.ids) == new
    same = next(i for i, (a, b) in enumerate(zip(old, new)) if a != b)
    assert steps == list(range(same, len(new)))  # read again from the first changed token only
    assert list(session.read.probs[:same]) == probs[:same]


def test_a_keystroke_encodes_a_bounded_window_however_long_the_text(bpe_loaded, monkeypatch):
    session = Session(bpe_loaded)
    session.set_text("You are all resolved rather to die than to famish. " * 400)
    encoded: list[int] = []
    real = session.vocab.tokenize
    monkeypatch.setattr(session.vocab, "tokenize", lambda text: (encoded.append(len(text)), real(text))[1])
    session.edit(session.text_length(), "x")
    assert encoded and max(encoded) < 20  # " x" after the last safe cut, not 20,000 characters


def test_typing_streaming_ghost_and_the_panel_at_bpe_level(bpe_loaded):
    async def script(d: Driver):
        await d.command(":len 12")
        typed = ""
        for ch in "First Citiz":
            await d.type(ch)
            typed += ch
            assert d.session.text == typed and list(d.session.ids) == d.session.vocab.encode(typed)
            token = d.session.snapshot.token
            assert token == d.session.vocab.token_text(d.session.ids[-1])
            assert visible_token(token) in "\n".join(d.panel_lines())  # the panel names the token
        pieces = ghost_pieces(d.session)
        assert d.buffer.suggestion is None or d.buffer.suggestion.text == "".join(pieces)
        d.send(ENTER)
        await d.until(lambda: d.shell_app.streaming is None and d.shell.history, "the stream to end")
        assert d.session.text == d.shell.history and d.shell.history.startswith(typed)
        await d.type("e")
        assert d.session.text == d.shell.history + "e"
        d.send(BACKSPACE)
        await d.until(lambda: d.session.text == d.shell.history, "backspace")

    drive(bpe_loaded, script)


def test_a_token_holding_part_of_a_character_shows_its_bytes(bpe_loaded):
    async def script(d: Driver):
        await d.type("€")
        vocab = d.session.vocab
        assert [vocab.token_bytes[i] for i in d.session.ids] == [b"\xe2", b"\x82", b"\xac"]
        assert visible_token(d.session.snapshot.token) == "‹ac›"
        assert d.session.text == "€"
        assert "‹ac›" in "\n".join(d.panel_lines())

    drive(bpe_loaded, script)


def test_find_and_interventions_at_bpe_level(bpe_loaded):
    async def script(d: Driver):
        await d.command(":len 1")
        await d.type("First Citizen: You are all resolved rather to die than to famish? All: Resolved.")
        d.send(ENTER)  # the line goes above the prompt, read: what :find scores
        await d.until(lambda: d.shell_app.streaming is None and d.shell.history, "the stream to end")
        found = await d.command(":find /[:?.]/")  # (a token's last character: no bpe token ends in a capital)
        assert found.startswith("/[:?.]/ on ") and "pinned" in found and d.shell.panel.units
        ghost_before, top_before = ghost_pieces(d.session), d.session.snapshot.top
        await d.command(":clamp 1:0=5")
        assert d.session.interventions
        assert (d.session.snapshot.top, ghost_pieces(d.session)) != (top_before, ghost_before)
        await d.type(" x")  # typing on takes them
        assert list(d.session.ids)[-2:] == d.session.vocab.encode(" x") and d.session.text.endswith(" x")

    drive(bpe_loaded, script)


def test_units_heatmap_and_trace_at_bpe_level(tiny_bpe_run, tiny_corpus, tmp_path):
    from click.testing import CliRunner

    from lstm_repl.cli.main import cli

    runner = CliRunner()
    units = runner.invoke(cli, ["units", str(tiny_bpe_run), str(tiny_corpus), "--feature", "newline"])
    assert units.exit_code == 0, units.output
    page = tmp_path / "heat.html"
    heat = runner.invoke(cli, ["heatmap", str(tiny_bpe_run), str(tiny_corpus), "--unit", "1:0", "--out", str(page)])
    assert heat.exit_code == 0, heat.output
    from lstm_repl.analysis.heatmap import per_character
    from lstm_repl.analysis.unit_search import tokenize
    from lstm_repl.model import checkpoint

    text = "Citizen €5 ünseen"
    tokens = tokenize(checkpoint.load(tiny_bpe_run).vocab, text)
    values = per_character(np.arange(len(tokens.ids), dtype=np.float32), tokens.ends, len(text))
    assert tokens.ends[-1] == len(text) and len(values) == len(text)
    euro = text.index("€")  # "€" is three byte tokens: drawn in the colour of the one that completes it
    assert values[euro] == np.searchsorted(tokens.ends, euro + 1)
    assert "Citizen" in page.read_text()
    traced = runner.invoke(cli, ["trace", str(tiny_bpe_run), "Citizen €", "--json"])
    assert traced.exit_code == 0, traced.output
    import json

    document = json.loads(traced.output)
    assert "".join(step["text"] for step in document["tokens"]) == "Citizen €"


def test_plain_mode_for_pipes_at_bpe_level(tiny_bpe_run):
    from click.testing import CliRunner

    from lstm_repl.cli.main import cli
    from lstm_repl.config import SampleConfig
    from lstm_repl.model import checkpoint
    from lstm_repl.session.session import Settings

    piped = "First Citizen:\nYou are all resol"
    result = CliRunner().invoke(cli, ["repl", str(tiny_bpe_run), "--length", "20", "--seed", "1"], input=piped)
    assert result.exit_code == 0, result.output
    session = Session(checkpoint.load(tiny_bpe_run), Settings(SampleConfig(length=20, seed=1)))
    session.set_text(piped)  # the same tokens as the whole text: read in blocks, cut only where safe
    assert result.output == "".join(session.stream()) + "\n"
