"""Reading a corpus as a stream of chunks: the same text, vocabulary and ids as reading it whole,
whatever the chunk borders cut; errors naming the byte offset."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from lstm_repl.data import corpus as data
from lstm_repl.cli.main import cli
from lstm_repl.data.corpus_stream import CHUNK_BYTES, text_chunks
from lstm_repl.errors import CorpusError
from lstm_repl.data.tokenize_stream import count_vocab, encode_chunks
from lstm_repl.data.vocab import build_vocab

TEXT = "héllo wörld  ünïcode—dash 123 snake_case\nnaïve café, crème brûlée!\n\t\n日本語 テキスト"


@pytest.fixture
def two_files(tmp_path):
    (tmp_path / "a.txt").write_text(TEXT * 7, "utf-8")
    (tmp_path / "b.txt").write_text("second file  ends without a newline", "utf-8")
    return [tmp_path / "a.txt", tmp_path / "b.txt"]


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 5, 7, 11, 64, 4096])
def test_chunks_cut_inside_characters_and_words_give_the_same_text_vocabulary_and_ids(two_files, chunk_bytes):
    whole = data.read_corpus(two_files).text
    chunks = list(text_chunks(two_files, chunk_bytes=chunk_bytes))
    assert "".join(chunks) == whole
    for level in ("char", "word"):
        vocab = count_vocab(iter(chunks), level)
        assert vocab.tokens == build_vocab(whole, level).tokens
        ids = np.concatenate(list(encode_chunks(iter(chunks), vocab)))
        assert ids.tolist() == vocab.encode(whole)


def test_a_capped_word_vocabulary_counted_in_chunks_equals_the_whole_text_one(two_files):
    whole = data.read_corpus(two_files).text
    for max_size, min_count in [(5, 1), (12, 2), (3, 1)]:
        streamed = count_vocab(text_chunks(two_files, chunk_bytes=3), "word", max_size, min_count)
        assert streamed.tokens == build_vocab(whole, "word", max_size, min_count).tokens


def test_the_scan_hashes_and_counts_as_reading_it_whole(two_files):
    whole = data.read_corpus(two_files)
    scanned = data.scan(two_files)
    assert scanned.sha256 == whole.sha256 and scanned.characters == len(whole.text)


@pytest.mark.parametrize("count", [1, 2, 9, 40, 10_000])
def test_the_tail_pieces_are_the_last_tokens_as_written(two_files, count):
    whole = data.read_corpus(two_files).text
    scanned = data.scan(two_files)
    for level in ("char", "word"):
        vocab = build_vocab(whole, level, max_size=6)  # words out of the vocabulary keep their spelling
        assert data.tail_pieces(scanned, vocab, count) == vocab.split(whole)[-count:]


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 4, 1 << 20])
def test_a_bad_byte_right_after_a_chunk_border_inside_a_character_names_its_offset(tmp_path, chunk_bytes):
    path = tmp_path / "bad.txt"
    path.write_bytes("abcé".encode() + b"\xff rest\n")  # é is bytes 3-4, 0xff is byte 5
    with pytest.raises(CorpusError, match=r"byte 0xff at offset 5\)"):
        list(text_chunks([path], chunk_bytes=chunk_bytes))


def test_a_file_ending_inside_a_character_names_where_it_starts(tmp_path):
    path = tmp_path / "cut.txt"
    path.write_bytes(b"ab\xc3")
    with pytest.raises(CorpusError, match=r"offset 2\)"):
        list(text_chunks([path], chunk_bytes=1))


def _big_file_with(tmp_path, bad: bytes, at: int):
    path = tmp_path / "big.txt"
    line = b"a line of plain text, repeated to fill several chunks\n"
    with path.open("wb") as handle:
        handle.write((line * (at // len(line) + 1))[:at])
        handle.write(bad)
        handle.write(line * 1000)
    return path


def test_a_bad_byte_deep_in_a_big_file_is_a_one_line_error_with_its_offset(tmp_path):
    at = 2 * CHUNK_BYTES + 12_345  # in the third chunk read
    path = _big_file_with(tmp_path, b"\xfe", at)
    result = CliRunner().invoke(cli, ["train", str(path), "--out", str(tmp_path / "run"), "--max-steps", "1"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert f"not valid utf-8 (byte 0xfe at offset {at})" in lines[0] and str(path) in lines[0]


def test_a_nul_byte_deep_in_a_big_file_says_binary_with_its_offset(tmp_path):
    at = CHUNK_BYTES + 7
    path = _big_file_with(tmp_path, b"\x00", at)
    with pytest.raises(CorpusError, match=f"looks binary \\(NUL byte at offset {at}\\)"):
        data.scan([path])


def test_a_corpus_of_only_whitespace_is_empty(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text(" \n\n\t  \n", "utf-8")
    with pytest.raises(CorpusError, match="the corpus is empty"):
        data.scan([path])
