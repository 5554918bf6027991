"""The two primitives every reader and writer of strangers' data goes through: terminal_safe /
visible_token (nothing that acts on a terminal gets through) and safe_read (regular files of
bounded size, JSON with finite numbers and bounded nesting)."""

import json
import os
import re
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_repl.errors import CheckpointError
from lstm_repl.safe_read import parse_json, read_bytes, read_json, read_text, stat_regular, typed
from lstm_repl.terminal_text import has_unsafe, terminal_json, terminal_line, terminal_safe, visible_token

EVERY_CONTROL = "".join(map(chr, range(0x20))) + "\x7f" + "".join(map(chr, range(0x80, 0xA0)))
OSC_TITLE = "\x1b]0;pwned\x07"
OSC_CLIPBOARD = "\x1b]52;c;aGVsbG8=\x07"


def _acts_on_a_terminal(text: str) -> bool:
    return any(ch in EVERY_CONTROL.replace("\n", "").replace("\t", "") or 0xD800 <= ord(ch) <= 0xDFFF for ch in text)


@given(st.text(alphabet=st.characters(codec=None, exclude_categories=())))
@settings(max_examples=200, deadline=None)
def test_terminal_safe_lets_nothing_through_and_encodes(text):
    safe = terminal_safe(text)
    assert not _acts_on_a_terminal(safe)
    safe.encode("utf-8")
    assert not has_unsafe(safe)


def test_terminal_safe_shows_what_it_replaced():
    assert terminal_safe("red \x1b[31mtext" + OSC_TITLE) == "red \\x1b[31mtext\\x1b]0;pwned\\x07"
    assert terminal_safe("a\u009bb\ud800c") == "aU+009BbU+D800c"
    assert terminal_safe("line one\n\tline two") == "line one\n\tline two"
    assert terminal_safe("\r\x7f") == "\\x0d\\x7f"


def test_terminal_line_keeps_one_line():
    assert terminal_line("a\nb\tc" + OSC_CLIPBOARD) == "a\\nb\\tc\\x1b]52;c;aGVsbG8=\\x07"


@given(st.recursive(st.none() | st.integers() | st.text(alphabet=st.characters(codec=None, exclude_categories=())),
                    lambda children: st.lists(children, max_size=3)
                    | st.dictionaries(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=4),
                                      children, max_size=3), max_leaves=8))
@settings(max_examples=100, deadline=None)
def test_terminal_json_is_the_same_json_and_safe(document):
    text = terminal_json(document, indent=1)
    assert not _acts_on_a_terminal(text.replace("\n", ""))
    text.encode("utf-8")
    assert json.loads(text) == document


def test_terminal_json_keeps_readable_text_readable():
    assert terminal_json({"t": "é漢\x1b\x9b\ud800"}) == '{"t": "é漢\\u001b\\u009b\\ud800"}'


def test_visible_token_shows_whitespace_and_every_control():
    assert visible_token(" \n\t\r") == "␣⏎⇥␍"
    shown = visible_token(EVERY_CONTROL + "\u200d\ud800")
    assert not _acts_on_a_terminal(shown) and "\x1b" not in shown
    assert "U+200D" in shown and "U+D800" in shown and "\\x1b" in shown


@pytest.mark.parametrize("text, fragment", [
    ("[" * 200_000, "nested too deeply"),
    ('{"a":' * 200_000, "nested too deeply"),
    ("1e999", "too large"),
    ("[-1e999]", "too large"),
    ("NaN", "not a number"),
    ('{"x": Infinity}', "not a number"),
    ("1" * 5000, "not valid JSON"),
    ("{", "not valid JSON"),
])
def test_parse_json_refuses_in_one_line(text, fragment):
    with pytest.raises(CheckpointError, match=fragment) as caught:
        parse_json(text, CheckpointError, "config.json", "checkpoint config")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("config.json: ")


def test_typed_checks_types():
    assert typed({"a": 1}, "a", float, "w") == 1
    assert typed({}, "a", int, "w", default=3) == 3
    for document, fragment in [({"a": True}, "integer, found true or false"), ({"a": "1"}, "found a string"),
                               ([], "expected a JSON object"), ({}, "'a' is missing")]:
        with pytest.raises(CheckpointError, match=fragment):
            typed(document, "a", int, "w.json", CheckpointError)


def test_special_files_are_named_not_read(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    zero = tmp_path / "zero"
    zero.symlink_to("/dev/zero")
    for path, kind in [(fifo, "a FIFO"), (zero, "a character device"), (tmp_path, "a folder"),
                       (tmp_path / "absent", "no such config")]:
        done = threading.Event()

        def read():
            with pytest.raises(CheckpointError, match=kind):
                read_json(path, 1 << 20, CheckpointError, "config")
            done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout=20)
        assert done.is_set(), f"reading {path} hung or did not refuse it"
    with pytest.raises(CheckpointError, match="a FIFO"):
        stat_regular(fifo, 10, CheckpointError, "weights file")


def test_sizes_are_bounded_before_reading(tmp_path):
    big = tmp_path / "big.json"
    big.write_text("[" + "0," * 1000 + "0]")
    with pytest.raises(CheckpointError, match="more than a units file can be"):
        read_json(big, 100, CheckpointError, "units file")
    assert read_json(big, 10_000, CheckpointError, "units file")[0] == 0
    (tmp_path / "latin1").write_bytes(b"caf\xe9")
    with pytest.raises(CheckpointError, match="not UTF-8"):
        read_text(tmp_path / "latin1", 100, CheckpointError, "label file")


def test_integers_are_bounded_to_64_bits():
    assert parse_json(str(2**64 - 1)) == 2**64 - 1 and parse_json(str(-(2**63))) == -(2**63)
    for text in (str(2**64), str(-(2**64)), "1" * 25):
        with pytest.raises(CheckpointError, match="too large"):
            parse_json(text, CheckpointError)


def test_typed_object_checks_nested_fields_lists_and_unknown_keys():
    from lstm_repl.safe_read import typed_object

    fields = {"n": int, "x": (float, type(None)), "names": [str], "inner": {"t": float}}
    document = {"n": 1, "x": None, "names": ["a"], "inner": {"t": 2}, "other": "kept"}
    assert typed_object(document, fields, "w", CheckpointError, required=("n",)) is document
    for bad, fragment in [({"n": "1"}, "w: 'n' should be an integer"),
                          ({"n": 1, "names": ["a", 2]}, "'names[1]' should be"),
                          ({"n": 1, "inner": {"t": "x"}}, "w inner: 't' should be a number"),
                          ({"n": 1, "inner": []}, "'inner' should be an object"), ({}, "'n' is missing"),
                          ({"n": 1, "other": 2}, "unknown field 'other'"), ("n", "expected a JSON object"),
                          ({"n": 1, "a\nb\x1b": 2}, "unknown field 'a\\nb\\x1b'")]:
        with pytest.raises(CheckpointError, match=re.escape(fragment)):
            typed_object(bad, fields, "w", CheckpointError, required=("n",), closed=True)


def test_a_small_file_under_a_limit_larger_than_memory_is_read(tmp_path):
    """The limit bounds what may be read; the buffer is the file's size (a 1 TiB one would not fit)."""
    small = tmp_path / "small"
    small.write_bytes(b"0123456789")
    assert read_bytes(small, 1 << 40) == b"0123456789"
