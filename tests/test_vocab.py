"""Character and word tokenizers: round trips, the unknown token, caps, JSON save/load."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_repl.errors import CheckpointError
from lstm_repl.data.vocab import (
    CHAR_UNK_TEXT,
    UNK_ID,
    WORD_UNK_TEXT,
    CharVocab,
    WordVocab,
    build_vocab,
    vocab_from_json,
)
from lstm_repl.data import vocab as vocab_module

# Word-level text: words, punctuation, every kind of whitespace, and characters from anywhere.
WORDY = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(" \t\n\r\x0b\x0c\u00a0\u2028\u3000.,;:!?'\"-()[]<>…—")),
        st.sampled_from(list("abcXYZ019_éßøЖж漢字😀🙂\u0301")),
        st.characters(exclude_categories=("Cs",)),
    ),
    max_size=200,
)


def json_round_trip(vocab):
    return vocab_from_json(json.loads(json.dumps(vocab.to_json())))


# ---------------------------------------------------------------- character level


def test_char_vocab_comes_from_the_corpus_with_unknown_at_id_0():
    vocab = CharVocab.build("hello, world\n")
    assert vocab.token_text(UNK_ID) == CHAR_UNK_TEXT
    assert set(vocab.tokens[1:]) == set("hello, world\n")
    assert len(vocab) == len(set("hello, world\n")) + 1
    assert UNK_ID not in vocab.encode("hello, world\n")


def test_char_vocab_maps_unseen_characters_to_unknown():
    vocab = CharVocab.build("abc")
    ids = vocab.encode("abzc€")
    assert ids[2] == UNK_ID and ids[4] == UNK_ID
    assert UNK_ID not in (ids[0], ids[1], ids[3])
    assert vocab.decode(ids) == "ab" + CHAR_UNK_TEXT + "c" + CHAR_UNK_TEXT


def test_char_vocab_handles_any_unicode():
    text = "naïve café — 漢字 😀 e\u0301 \t\r\n\x00"
    vocab = CharVocab.build(text)
    assert vocab.decode(vocab.encode(text)) == text
    assert len(vocab.encode(text)) == len(text)


def test_char_vocab_whose_corpus_holds_the_replacement_character():
    text = "a" + CHAR_UNK_TEXT + "b"
    vocab = CharVocab.build(text)
    assert vocab.encode(text)[1] != UNK_ID
    assert vocab.decode(vocab.encode(text)) == text


def test_encode_array_matches_encode():
    text = "the cat sat on the mat.\n" * 3
    for vocab in (CharVocab.build(text), WordVocab.build(text)):
        array = vocab.encode_array(text + "zebra!")
        assert isinstance(array, np.ndarray) and array.ndim == 1
        assert array.tolist() == vocab.encode(text + "zebra!")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_char_round_trip_property(text):
    vocab = CharVocab.build(text)
    assert vocab.decode(vocab.encode(text)) == text
    assert UNK_ID not in vocab.encode(text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=100), st.text(max_size=100))
def test_char_json_round_trip_property(corpus, other):
    vocab = CharVocab.build(corpus)
    loaded = json_round_trip(vocab)
    assert isinstance(loaded, CharVocab)
    assert loaded.tokens == vocab.tokens
    assert loaded.encode(corpus + other) == vocab.encode(corpus + other)


# ---------------------------------------------------------------- word level


def test_word_tokens_are_words_punctuation_and_whitespace():
    vocab = WordVocab.build("")
    assert vocab.split("Hello, world!\n\n  Bye\tnow.") == [
        "Hello", ",", " ", "world", "!", "\n", "\n", "  ", "Bye", "\t", "now", ".",
    ]


def test_word_round_trip_keeps_newlines_and_spacing():
    text = "First Citizen:\nBefore we proceed,  hear me.\n\n\tAll:\r\nSpeak!  «Oui» — 漢字…\n"
    vocab = WordVocab.build(text)
    assert vocab.decode(vocab.encode(text)) == text
    assert UNK_ID not in vocab.encode(text)


def test_word_unknown_words_map_to_unknown():
    vocab = WordVocab.build("the cat sat on the mat")
    ids = vocab.encode("the dog sat")
    assert ids[2] == UNK_ID
    assert vocab.decode(ids) == "the " + WORD_UNK_TEXT + " sat"
    assert vocab.token_text(UNK_ID) == WORD_UNK_TEXT


def test_word_vocab_size_cap_keeps_the_most_frequent():
    text = "a a a a b b b c c d"
    vocab = WordVocab.build(text, max_size=3)
    assert len(vocab) == 3  # <unk> counts toward the cap
    assert vocab.tokens[1:] == [" ", "a"]  # " " appears 9 times, "a" 4 times
    assert vocab.encode("b") == [UNK_ID]


def test_word_vocab_min_count_drops_rare_words():
    text = "a a a b b c"
    vocab = WordVocab.build(text, min_count=2)
    assert set(vocab.tokens[1:]) == {"a", "b", " "}
    assert vocab.encode("c") == [UNK_ID]
    assert vocab.decode(vocab.encode(text)) == "a a a b b " + WORD_UNK_TEXT


def test_build_vocab_dispatches_on_level():
    assert isinstance(build_vocab("ab", "char"), CharVocab)
    word = build_vocab("a a b", "word", max_size=2, min_count=1)
    assert isinstance(word, WordVocab) and len(word) == 2


@settings(max_examples=200, deadline=None)
@given(WORDY)
def test_word_round_trip_property(text):
    vocab = WordVocab.build(text)
    assert "".join(vocab.split(text)) == text
    assert vocab.decode(vocab.encode(text)) == text
    assert UNK_ID not in vocab.encode(text)


@settings(max_examples=100, deadline=None)
@given(WORDY, WORDY)
def test_word_json_round_trip_property(corpus, other):
    vocab = WordVocab.build(corpus)
    loaded = json_round_trip(vocab)
    assert isinstance(loaded, WordVocab)
    assert loaded.tokens == vocab.tokens
    assert loaded.encode(corpus + other) == vocab.encode(corpus + other)
    assert loaded.decode(loaded.encode(corpus)) == corpus


def test_json_keeps_level_and_tokens_in_order():
    vocab = WordVocab.build("b b a", max_size=10)
    data = vocab.to_json()
    assert data["level"] == "word"
    assert data["tokens"] == vocab.tokens[1:]
    assert json_round_trip(vocab).ids == vocab.ids


# ---------------------------------------------------------------- malformed JSON


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"level": "char"},
        {"tokens": ["a"]},
        {"level": "bytes", "tokens": ["a"]},
        {"level": ["char"], "tokens": ["a"]},
        {"level": "char", "tokens": "abc"},
        {"level": "word", "tokens": ["a", 3]},
        {"level": "word", "tokens": None},
        None,
        ["char", ["a"]],
        "char",
        42,
    ],
)
def test_malformed_vocab_json_raises_checkpoint_error(data):
    with pytest.raises(CheckpointError) as info:
        vocab_from_json(data)
    message = str(info.value)
    assert "vocabulary" in message and "malformed" in message
    assert "\n" not in message


EVERY_CONTROL = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))]
HOSTILE_WORDS = ["\x1b]0;title\x07", "\x1b]52;c;cHduZWQ=\x07", "\x1b[31m", "[/]", "[bold]", "\u009b2J"]


def test_control_characters_escape_sequences_and_markup_are_tokens_like_any_other():
    chars = vocab_from_json({"level": "char", "tokens": [*EVERY_CONTROL, "[", "/", "]"]})
    assert chars.tokens[1:] == [*EVERY_CONTROL, "[", "/", "]"]
    words = vocab_from_json({"level": "word", "tokens": [*EVERY_CONTROL, *HOSTILE_WORDS]})
    assert words.decode(words.ids[t] for t in HOSTILE_WORDS) == "".join(HOSTILE_WORDS)


@pytest.mark.parametrize("level, tokens, problem", [
    ("char", ["a", "\ud800"], "token 2 holds a lone surrogate (U+D800)"),
    ("word", ["ok", "x\udfffy"], "token 2 holds a lone surrogate (U+DFFF)"),
    ("word", ["a", "b", "a"], "token 3 appears twice"),
    ("word", ["a", ""], "token 2 is empty"),
    ("char", ["a", "bc"], "token 2 is 2 characters long"),
    ("word", ["a", None], "token 2 is not a string"),
    ("word", [["a"]], "token 1 is not a string"),
])
def test_tokens_no_utf8_corpus_gives_are_refused_in_one_line(level, tokens, problem):
    with pytest.raises(CheckpointError, match=re.escape(problem)) as info:
        vocab_from_json({"level": level, "tokens": tokens})
    assert "\n" not in str(info.value) and "malformed" in str(info.value)


def test_an_absurd_number_of_tokens_is_refused_before_it_is_read(monkeypatch):
    monkeypatch.setattr(vocab_module, "MAX_TOKENS", 10)
    with pytest.raises(CheckpointError, match="11 tokens, more than 10"):
        vocab_from_json({"level": "word", "tokens": [str(n) for n in range(11)]})
    assert len(vocab_from_json({"level": "word", "tokens": [str(n) for n in range(10)]})) == 11


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(st.characters(codec=None)),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["char", "word", "bytes", None]),
       st.lists(st.text(st.characters(codec=None), max_size=3) | JSON_VALUES, max_size=12))
def test_any_vocabulary_json_loads_or_is_one_line(level, tokens):
    """Whatever a hand-edited checkpoint holds: a vocabulary whose tokens are distinct non-empty
    strings without surrogates, or one line naming what is wrong."""
    try:
        vocab = vocab_from_json({"level": level, "tokens": tokens})
    except CheckpointError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("the vocabulary in the checkpoint is malformed")
        return
    texts = vocab.tokens[1:]
    assert texts == tokens and len(set(texts)) == len(texts)
    assert all(isinstance(t, str) and t and not re.search("[\ud800-\udfff]", t) for t in texts)
    assert level == "word" or all(len(t) == 1 for t in texts)
