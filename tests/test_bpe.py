"""Byte-level BPE (--level bpe): learned from a streamed corpus, every text round-trips, the
tokenizer saved as its own JSON and checked on load, exact bits per character."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers import TINY_TEXT, one_line_error
from lstm_repl.cli.main import cli
from lstm_repl.data.bpe import BpeVocab, bpe_from_json, learn_bpe, safe_pieces
from lstm_repl.data.corpus import encode_cached, load_vocab_cached, scan
from lstm_repl.data.vocab import WORD_PATTERN
from lstm_repl.errors import CheckpointError
from lstm_repl.model import checkpoint
from lstm_repl.training.evaluation import evaluate_text

CORPUS = TINY_TEXT * 20 + "naïve café — 東京 €5\n"
PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def bpe() -> BpeVocab:
    return learn_bpe([CORPUS], 320)


# ---------------------------------------------------------------- round trips


@PROPERTY
@given(text=st.text(max_size=200))
def test_every_text_round_trips_even_characters_never_seen(bpe, text):
    ids = bpe.encode(text)
    assert 0 not in ids  # <unk> is never produced
    assert bpe.decode(ids) == text
    assert "".join(bpe.split(text)) == text  # each token's piece: the characters it completes


@PROPERTY
@given(text=st.text(alphabet=st.sampled_from("ab é€東 \n\t.'s"), max_size=300),
       cuts=st.lists(st.integers(0, 300), max_size=6), size=st.integers(1, 40))
def test_a_corpus_encoded_in_chunks_is_encoded_as_a_whole(bpe, text, cuts, size):
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    chunks = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    pieces = list(safe_pieces(chunks, size))
    assert "".join(pieces) == text
    assert [i for piece in pieces for i in bpe.encode(piece)] == bpe.encode(text)


def test_a_byte_the_model_wrote_alone_spells_itself_back(bpe):
    euro = bpe.encode("€")
    assert [bpe.token_bytes[i] for i in euro] == [b"\xe2", b"\x82", b"\xac"]  # not merged in this corpus
    assert bpe.spell(euro[:1]) == ([""], b"\xe2")  # part of a character completes nothing yet
    half = bpe.decode(euro[:1]) + "x"  # what a stream that wrote only the first byte leaves
    assert bpe.decode(bpe.encode(half)) == half


def test_learning_from_chunks_learns_what_the_whole_text_teaches():
    chunks = [CORPUS[i : i + 97] for i in range(0, len(CORPUS), 97)]
    assert learn_bpe(chunks, 300).tokenizer_json() == learn_bpe([CORPUS], 300).tokenizer_json()


# ---------------------------------------------------------------- training, caching, checkpoints


def test_training_at_bpe_level_saves_the_tokenizer_as_its_own_json(tiny_bpe_run, tiny_corpus):
    best = tiny_bpe_run / "best"
    config = json.loads((best / "config.json").read_text())
    assert config["vocab"] == {"level": "bpe", "tokens": 300}
    assert config["files"]["tokenizer.json"]["bytes"] == (best / "tokenizer.json").stat().st_size
    assert json.loads((best / "tokenizer.json").read_text())["model"]["type"] == "BPE"
    assert not list(best.glob("*.pkl")) and not list(best.glob("*.pt"))
    loaded = checkpoint.load(tiny_bpe_run)
    text = tiny_corpus.read_text()
    assert isinstance(loaded.vocab, BpeVocab) and loaded.vocab.decode(loaded.vocab.encode(text)) == text


def test_the_tokenizer_is_cached_with_the_token_file(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("LSTM_REPL_CACHE", str(tmp_path / "cache"))
    corpus = scan([tiny_corpus])
    vocab = load_vocab_cached(corpus, "bpe", 300, 1)
    ids = encode_cached(corpus, vocab)
    assert np.array_equal(ids, vocab.encode(tiny_corpus.read_text()))
    cached = list((tmp_path / "cache" / "tokens").glob("vocab-*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["model"]["type"] == "BPE"
    again = load_vocab_cached(corpus, "bpe", 300, 1)
    assert again.tokenizer_json() == vocab.tokenizer_json()
    cached[0].write_text('{"model": {"type": "BPE", "vocab": {"a": 7}, "merges": []}}')  # damaged: learned again
    assert load_vocab_cached(corpus, "bpe", 300, 1).tokenizer_json() == vocab.tokenizer_json()


def _break(run, tmp_path, change) -> str:
    folder = tmp_path / "broken"
    import shutil

    shutil.copytree(run / "best", folder)
    change(folder / "tokenizer.json")
    return str(folder)


def _replace_recorded(path, document) -> None:
    """Write a tokenizer.json and record its digest, as a hand-made checkpoint would."""
    import hashlib

    data = json.dumps(document).encode()
    path.write_bytes(data)
    config_path = path.parent / "config.json"
    config = json.loads(config_path.read_text())
    config["files"]["tokenizer.json"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    config_path.write_text(json.dumps(config))


@pytest.mark.parametrize("change, words", [
    (lambda p: p.unlink(), ["tokenizer.json", "missing"]),
    (lambda p: p.write_text(p.read_text().replace('"Ġ', '"x', 1)), ["sha256"]),
    (lambda p: (p.unlink(), os.mkfifo(p)), ["tokenizer", "fifo"]),
    (lambda p: _replace_recorded(p, {"model": {"type": "WordPiece", "vocab": {}}}), ["not a BPE model"]),
    (lambda p: _replace_recorded(p, [1] * 10), ["not a JSON object"]),
])
def test_a_broken_or_hostile_tokenizer_file_is_one_line(tiny_bpe_run, tmp_path, change, words):
    spec = _break(tiny_bpe_run, tmp_path, change)
    one_line_error(CliRunner().invoke(cli, ["info", spec]), *words)


def test_a_tokenizer_file_beyond_its_bound_is_not_read(tiny_bpe_run, tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "TOKENIZER_LIMIT", 100)
    with pytest.raises(CheckpointError, match="tokenizer"):
        checkpoint.load(tiny_bpe_run)


def _model_of(bpe: BpeVocab) -> dict:
    return json.loads(bpe.tokenizer_json())["model"]


HOSTILE_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2, 2**40), st.text(max_size=4),
                           st.lists(st.text(max_size=3), max_size=3))


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_hostile_tokenizer_is_refused_in_one_error_or_round_trips(data):
    """Whatever a hand-edited tokenizer.json holds in its vocabulary or merges, loading it raises
    CheckpointError or gives a tokenizer under which every text still round-trips (tokenizers'
    own loader takes out-of-range ids, duplicate ids and any normalizer: see the next test)."""
    model = _model_of(learn_bpe([CORPUS[:400]], 270))
    vocab, merges = model["vocab"], model["merges"]
    what = data.draw(st.sampled_from(["id", "token", "merge", "drop", "type", "extra"]))
    if what == "id":
        vocab[data.draw(st.sampled_from(sorted(vocab)))] = data.draw(HOSTILE_VALUES)
    elif what == "token":
        vocab[data.draw(st.text(max_size=5))] = data.draw(st.integers(0, len(vocab)))
    elif what == "merge" and merges:
        merges[data.draw(st.integers(0, len(merges) - 1))] = data.draw(HOSTILE_VALUES)
    elif what == "drop":
        del vocab[data.draw(st.sampled_from(sorted(vocab)))]
    elif what == "type":
        model["type"] = data.draw(st.sampled_from(["WordPiece", "Unigram", None, 3]))
    else:
        model["normalizer"] = {"type": "Lowercase"}
    try:
        loaded = bpe_from_json({"model": model})
    except CheckpointError as exc:
        assert "\n" not in str(exc)
        return
    text = data.draw(st.text(max_size=50))
    assert loaded.decode(loaded.encode(text)) == text and max(loaded.encode(text), default=1) < len(loaded)


def test_tokenizers_own_loader_takes_what_this_one_refuses(bpe):
    """Why the file's JSON never reaches tokenizers' loader: it loads an id beyond the vocabulary
    (an embedding lookup out of range), two tokens sharing an id, and a normalizer that breaks
    the round trip, without a word."""
    from tokenizers import Tokenizer

    document = json.loads(bpe.tokenizer_json())
    first = next(iter(document["model"]["vocab"]))
    document["model"]["vocab"][first] = 10**6
    assert max(Tokenizer.from_str(json.dumps(document)).encode(first).ids) == 10**6
    with pytest.raises(CheckpointError, match="ids must be"):
        bpe_from_json(document)
    lowered = {**json.loads(bpe.tokenizer_json()), "normalizer": {"type": "Lowercase"}}
    theirs = Tokenizer.from_str(json.dumps(lowered))
    assert theirs.decode(theirs.encode("A").ids) == "a"
    assert bpe_from_json(lowered).decode(bpe_from_json(lowered).encode("A")) == "A"  # its normalizer is not taken


def test_bpe_vocab_size_is_checked_at_the_command_line(tiny_corpus, tmp_path):
    result = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--level", "bpe", "--vocab-size", "100",
                                      "--out", str(tmp_path / "r"), "--max-steps", "1"])
    one_line_error(result, "--vocab-size", "257")


# ---------------------------------------------------------------- evaluation


def test_eval_reports_exact_bits_per_character_and_perplexity_per_word(bpe_loaded):
    text = "First Citizen:\nYou are all resolved rather to die than to famish? Qzx ünseen!\n"
    vocab = bpe_loaded.vocab
    ids, pieces = vocab.tokenize(text)
    result = evaluate_text(bpe_loaded.model, vocab, text, batch_size=1, seq_len=len(ids))
    assert result["unknown_tokens"] == 0 and "bits_per_character_is_lower_bound" not in result
    assert result["tokens_scored"] == len(ids) - 1  # every token but the first is predicted
    assert result["characters_scored"] == len(text) - len(pieces[0])
    words = [w for w in WORD_PATTERN.findall(text) if not w.isspace()]  # words and marks, as every level counts
    assert result["words_scored"] == len(words) - 1 == 16  # "First" lies in the first token
    total = result["loss_nats"] * result["tokens_scored"]
    assert math.isclose(result["bits_per_character"], total / math.log(2) / result["characters_scored"])
    assert math.isclose(result["perplexity_per_word"], math.exp(total / 16))


def test_eval_at_bpe_level_on_the_command_line(tiny_bpe_run, tiny_corpus):
    result = CliRunner().invoke(cli, ["eval", str(tiny_bpe_run), str(tiny_corpus), "--json"])
    figures = json.loads(result.output)
    assert result.exit_code == 0 and figures["level"] == "bpe" and figures["unknown_tokens"] == 0
    assert 0 < figures["bits_per_character"] < 8 and figures["perplexity_per_word"] > 1
