"""Corpus reading, cached tokenization, the train/validation split and TBPTT stream batches."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from lstm_repl.data import corpus as data
from lstm_repl.config import ModelConfig, TrainConfig
from lstm_repl.data.corpus import (
    StreamBatches,
    check_fits,
    encode_cached,
    list_corpus_files,
    load_vocab_cached,
    read_corpus,
    split_ids,
    validation_batches,
)
from lstm_repl.errors import CorpusError
from lstm_repl.model import LanguageModel
from lstm_repl.training.trainer import Trainer
from lstm_repl.data.vocab import CharVocab, WordVocab, build_vocab


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh, empty token cache for this test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("LSTM_REPL_CACHE", str(folder))
    return folder


def one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message
    return message


# ---------------------------------------------------------------- reading a corpus


def test_one_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("héllo wörld 漢字\n", "utf-8")
    corpus = read_corpus([path])
    assert corpus.text == "héllo wörld 漢字\n"
    assert corpus.files == [path]
    assert len(corpus.sha256) == 64


def test_several_files_are_joined_in_order_with_newlines(tmp_path):
    (tmp_path / "b.txt").write_text("second", "utf-8")
    (tmp_path / "a.txt").write_text("first\n", "utf-8")
    corpus = read_corpus([tmp_path / "b.txt", tmp_path / "a.txt"])
    assert corpus.text == "second\nfirst\n"
    assert [p.name for p in corpus.files] == ["b.txt", "a.txt"]


def test_folder_is_read_recursively_skipping_hidden_and_pycache(tmp_path):
    root = tmp_path / "books"
    (root / "nested" / "deeper").mkdir(parents=True)
    (root / "__pycache__").mkdir()
    (root / ".git").mkdir()
    (root / ".hidden_dir").mkdir()
    (root / "a.txt").write_text("alpha\n", "utf-8")
    (root / "nested" / "b.txt").write_text("beta\n", "utf-8")
    (root / "nested" / "deeper" / "c.md").write_text("gamma\n", "utf-8")
    (root / ".secret.txt").write_text("hidden\n", "utf-8")
    (root / "nested" / ".DS_Store").write_bytes(b"\x00\x01binary")
    (root / "__pycache__" / "x.cpython-312.pyc").write_bytes(b"\x00\xffcompiled")
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n", "utf-8")
    (root / ".hidden_dir" / "d.txt").write_text("hidden too\n", "utf-8")

    files = list_corpus_files([root])
    assert [p.relative_to(root).as_posix() for p in files] == ["a.txt", "nested/b.txt", "nested/deeper/c.md"]
    corpus = read_corpus([root])
    assert corpus.text == "alpha\nbeta\ngamma\n"


def test_folder_holding_only_hidden_files_is_an_error(tmp_path):
    (tmp_path / "empty" / "__pycache__").mkdir(parents=True)
    (tmp_path / "empty" / ".x").write_text("x", "utf-8")
    with pytest.raises(CorpusError) as info:
        read_corpus([tmp_path / "empty"])
    assert "empty" in one_line(info.value)


def test_missing_path_is_named(tmp_path):
    with pytest.raises(CorpusError) as info:
        read_corpus([tmp_path / "nope.txt"])
    assert "nope.txt" in one_line(info.value)


def test_non_utf8_file_names_the_file_and_the_offset(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("café au lait\n".encode("latin-1"))  # é is 0xe9 at offset 3
    with pytest.raises(CorpusError) as info:
        read_corpus([path])
    message = one_line(info.value)
    assert "latin.txt" in message
    assert "offset 3" in message
    assert "0xe9" in message


def test_binary_file_names_the_file_and_the_offset(tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(CorpusError) as info:
        read_corpus([path])
    message = one_line(info.value)
    assert "image.png" in message
    assert "binary" in message and "offset 8" in message


def test_bad_file_among_good_ones_is_the_one_named(tmp_path):
    (tmp_path / "good.txt").write_text("fine\n", "utf-8")
    (tmp_path / "bad.txt").write_bytes(b"ok \xff\xfe")
    with pytest.raises(CorpusError) as info:
        read_corpus([tmp_path])
    message = one_line(info.value)
    assert "bad.txt" in message and "good.txt" not in message and "offset 3" in message


def test_encoding_latin1(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("café crème\n".encode("latin-1"))
    assert read_corpus([path], encoding="latin-1").text == "café crème\n"


def test_unknown_encoding_is_a_corpus_error(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("abc", "utf-8")
    with pytest.raises(CorpusError) as info:
        read_corpus([path], encoding="no-such-codec")
    assert "no-such-codec" in one_line(info.value)


@pytest.mark.parametrize("content", ["", "   \n\n\t  \n"])
def test_empty_corpus(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_text(content, "utf-8")
    with pytest.raises(CorpusError) as info:
        read_corpus([path])
    assert "empty" in one_line(info.value)


def test_folder_of_empty_files_is_empty(tmp_path):
    (tmp_path / "a.txt").write_text("", "utf-8")
    (tmp_path / "b.txt").write_text("", "utf-8")
    with pytest.raises(CorpusError) as info:
        read_corpus([tmp_path])
    assert "empty" in one_line(info.value)


# ---------------------------------------------------------------- caching token ids


def _count_passes(monkeypatch) -> list[str]:
    """Records each streaming pass that counts a vocabulary or tokenizes (the real ones run)."""
    calls: list[str] = []
    for name in ("count_vocab", "encode_chunks"):
        def spy(*args, _name=name, _real=getattr(data, name), **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(data, name, spy)
    return calls


def test_second_run_on_the_same_corpus_reads_the_cache(tmp_path, cache, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text("to be or not to be\n" * 20, "utf-8")
    calls = _count_passes(monkeypatch)
    corpus = data.scan([path])
    vocab = load_vocab_cached(corpus, "char", 20000, 1)
    first = encode_cached(corpus, vocab)
    assert first.tolist() == vocab.encode(read_corpus([path]).text)
    assert isinstance(first, np.memmap) and first.dtype == np.uint8
    assert calls == ["count_vocab", "encode_chunks"]

    again_corpus = data.scan([path])
    again_vocab = load_vocab_cached(again_corpus, "char", 20000, 1)
    second = encode_cached(again_corpus, again_vocab)
    assert calls == ["count_vocab", "encode_chunks"], "counted or tokenized again although cached"
    assert again_vocab.tokens == vocab.tokens
    np.testing.assert_array_equal(second, first)


def test_cache_counts_one_tokenization_per_corpus_and_tokenizer(tmp_path, cache, monkeypatch):
    calls = _count_passes(monkeypatch)
    path = tmp_path / "c.txt"
    path.write_text("the cat sat on the mat.\n" * 20, "utf-8")
    corpus = read_corpus([path])
    char, word = build_vocab(corpus.text, "char"), build_vocab(corpus.text, "word")

    encode_cached(corpus, char)
    encode_cached(corpus, char)
    assert len(calls) == 1
    word_ids = encode_cached(corpus, word)  # another tokenizer: tokenized anew
    assert len(calls) == 2 and word_ids.tolist() == word.encode(corpus.text)
    encode_cached(corpus, word)
    assert len(calls) == 2

    path.write_text("the cat sat on the hat.\n" * 20, "utf-8")  # other content: tokenized anew
    changed = read_corpus([path])
    assert changed.sha256 != corpus.sha256
    ids = encode_cached(changed, build_vocab(changed.text, "char"))
    assert len(calls) == 3
    assert ids.tolist() == build_vocab(changed.text, "char").encode(changed.text)


def test_a_vocabulary_with_other_settings_is_not_taken_from_the_cache(tmp_path, cache):
    path = tmp_path / "c.txt"
    path.write_text("a a a b b c\n" * 5, "utf-8")
    corpus = read_corpus([path])
    big = load_vocab_cached(corpus, "word", 100, 1)
    small = load_vocab_cached(corpus, "word", 3, 1)
    assert isinstance(big, WordVocab) and len(big) > 3 and len(small) == 3
    assert isinstance(load_vocab_cached(corpus, "char", 100, 1), CharVocab)


@pytest.mark.parametrize("damage", ["truncated", "longer", "empty", "sidecar garbage", "sidecar missing",
                                    "ids out of the vocabulary, same size", "other ids, same size", "a FIFO",
                                    "sidecar without a checksum", "sidecar with another checksum"])
def test_a_damaged_token_file_is_detected_and_rebuilt(tmp_path, cache, monkeypatch, damage):
    """Before issue 22 only the size was checked: ids out of the vocabulary in a file of the right
    size ended in an IndexError mid-training, other ids trained on the wrong text."""
    path = tmp_path / "c.txt"
    path.write_text("some text to tokenize\n" * 10, "utf-8")
    corpus = read_corpus([path])
    vocab = build_vocab(corpus.text, "char")
    expected = np.array(encode_cached(corpus, vocab))
    token_file = data.token_file_path(corpus, vocab)
    sidecar = token_file.with_name(token_file.name + ".json")
    content = token_file.read_bytes()
    recorded = json.loads(sidecar.read_text())
    if damage == "sidecar garbage":
        sidecar.write_bytes(b"{not json")
    elif damage == "sidecar missing":
        sidecar.unlink()
    elif damage.startswith("sidecar"):
        recorded["sha256"] = "0" * 64
        sidecar.write_text(json.dumps(recorded if "another" in damage else {**recorded, "sha256": None}))
    elif damage == "a FIFO":
        token_file.unlink()
        os.mkfifo(token_file)
    else:
        token_file.write_bytes({"truncated": content[:-3], "longer": content + b"xx", "empty": b"",
                                "ids out of the vocabulary, same size": b"\xff" * len(content),
                                "other ids, same size": bytes(reversed(content))}[damage])
    calls = _count_passes(monkeypatch)
    np.testing.assert_array_equal(encode_cached(corpus, vocab), expected)
    assert calls == ["encode_chunks"], "the damaged file was not rebuilt"
    assert token_file.read_bytes() == content
    np.testing.assert_array_equal(encode_cached(corpus, vocab), expected)
    assert calls == ["encode_chunks"], "the rebuilt file was not reused"


@pytest.mark.parametrize("garbage", [b"", b"not json at all", b'{"level": "char"}'])
def test_a_damaged_vocabulary_cache_file_is_rebuilt(tmp_path, cache, garbage):
    path = tmp_path / "c.txt"
    path.write_text("some text to tokenize\n" * 10, "utf-8")
    corpus = read_corpus([path])
    vocab = load_vocab_cached(corpus, "char", 20000, 1)
    for cached in cache.rglob("vocab-*.json"):
        cached.write_bytes(garbage)
    assert load_vocab_cached(corpus, "char", 20000, 1).tokens == vocab.tokens


HOSTILE_JSON = [b"[" * 200_000, b'{"tokens": 1e999}', b'{"tokens": NaN}', b'{"tokens": 1' + b"0" * 30 + b"}"]


@pytest.mark.parametrize("hostile", HOSTILE_JSON, ids=["deep", "1e999", "NaN", "huge-int"])
def test_cache_json_no_parser_should_take_is_rebuilt(tmp_path, cache, monkeypatch, hostile):
    path = tmp_path / "c.txt"
    path.write_text("some text to tokenize\n" * 10, "utf-8")
    corpus = read_corpus([path])
    vocab = load_vocab_cached(corpus, "char", 20000, 1)
    expected = np.array(encode_cached(corpus, vocab))
    token_file = data.token_file_path(corpus, vocab)
    for cached in [*cache.rglob("vocab-*.json"), token_file.with_name(token_file.name + ".json")]:
        cached.write_bytes(hostile)
    assert load_vocab_cached(corpus, "char", 20000, 1).tokens == vocab.tokens
    calls = _count_passes(monkeypatch)
    np.testing.assert_array_equal(encode_cached(corpus, vocab), expected)
    assert calls == ["encode_chunks"], "the token file was not rebuilt"


def test_an_unwritable_cache_does_not_stop_anything(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way", "utf-8")
    monkeypatch.setenv("LSTM_REPL_CACHE", str(blocker / "cache"))
    path = tmp_path / "c.txt"
    path.write_text("hello there\n", "utf-8")
    corpus = read_corpus([path])
    vocab = load_vocab_cached(corpus, "char", 20000, 1)
    assert encode_cached(corpus, vocab).tolist() == vocab.encode(corpus.text)


# ---------------------------------------------------------------- split and batches


def test_split_holds_out_the_last_fraction():
    ids = np.arange(1000)
    train, val = split_ids(ids, 0.05)
    assert len(val) == 50 and len(train) == 950
    np.testing.assert_array_equal(val, ids[-50:])
    np.testing.assert_array_equal(np.concatenate([train, val]), ids)


def test_a_run_with_the_default_settings_validates_on_the_last_five_percent(tmp_path):
    text = "".join(chr(0x4E00 + i) for i in range(1000))  # every token a different id
    vocab = CharVocab.build(text)
    ids = vocab.encode_array(text)
    model = LanguageModel(ModelConfig(vocab_size=len(vocab), layers=1, hidden=8, embed=4))
    trainer = Trainer(model, vocab, ids, TrainConfig(batch_size=4, seq_len=8, precision="fp32"), tmp_path, {})
    np.testing.assert_array_equal(trainer.val_ids, ids[-50:])
    streams = trainer.batches.streams
    assert streams.size == 4 * (950 // 4)  # training reads the rest, cut into 4 equal streams
    np.testing.assert_array_equal(streams.ravel(), ids[: streams.size])


def test_stream_batches_are_contiguous_streams_shifted_by_one():
    ids = np.arange(1000, dtype=np.int64)
    batch, seq = 4, 7
    batches = StreamBatches(ids, batch, seq)
    length = 1000 // batch
    chunks = list(batches)
    assert len(chunks) == batches.chunks_per_epoch == (length - 1) // seq
    assert batches.tokens_per_epoch == len(chunks) * batch * seq
    for x, y in chunks:
        assert x.shape == y.shape == (batch, seq)
        np.testing.assert_array_equal(y, x + 1)  # targets are the inputs shifted by one
    for b in range(batch):
        # Stream b is one contiguous slice of the corpus, read chunk after chunk.
        stream = np.concatenate([x[b] for x, _ in chunks])
        np.testing.assert_array_equal(stream, ids[b * length : b * length + len(stream)])
    for (x0, y0), (x1, _) in zip(chunks, chunks[1:]):
        # Chunk t+1 continues chunk t for every stream.
        np.testing.assert_array_equal(x1[:, 0], x0[:, -1] + 1)
        np.testing.assert_array_equal(x1[:, 0], y0[:, -1])


def test_stream_batches_on_real_tokens():
    text = "abcdefghij" * 30
    vocab = CharVocab.build(text)
    ids = vocab.encode_array(text)
    batches = StreamBatches(ids, 3, 5)
    x, y = batches.chunk(0)
    assert vocab.decode(x[0]) == "abcde" and vocab.decode(y[0]) == "bcdef"
    x, y = batches.chunk(1)
    assert vocab.decode(x[0]) == "fghij" and vocab.decode(y[0]) == "ghija"
    assert vocab.decode(batches.streams[1][:3]) == vocab.decode(ids[100:103])


def test_validation_batches_fit_a_short_validation_split():
    val = np.arange(12)
    batches = validation_batches(val, batch_size=8, seq_len=32)
    chunks = list(batches)
    assert chunks
    for x, y in chunks:
        np.testing.assert_array_equal(y, x + 1)


def test_too_small_corpus_says_how_many_tokens_and_what_fits():
    with pytest.raises(CorpusError) as info:
        check_fits(n_train=100, n_val=10, batch_size=8, seq_len=32)
    message = one_line(info.value)
    assert "100 training tokens" in message
    assert "264" in message  # 8 x 33 needed
    assert "--batch-size 3 would fit" in message  # 3 x 33 = 99 <= 100


def test_too_small_for_one_stream_suggests_a_shorter_sequence():
    with pytest.raises(CorpusError) as info:
        check_fits(n_train=20, n_val=10, batch_size=4, seq_len=32)
    message = one_line(info.value)
    assert "20 training tokens" in message and "--seq-len 4 would fit" in message
    check_fits(n_train=20, n_val=10, batch_size=4, seq_len=4)  # and it does


def test_too_small_for_one_token_per_stream_suggests_one_stream():
    with pytest.raises(CorpusError) as info:
        check_fits(n_train=12, n_val=10, batch_size=64, seq_len=100)
    message = one_line(info.value)
    assert "12 training tokens" in message and "--batch-size 1 --seq-len 11 would fit" in message
    check_fits(n_train=12, n_val=10, batch_size=1, seq_len=11)  # and it does


def test_a_single_token_cannot_fit_anything():
    with pytest.raises(CorpusError) as info:
        check_fits(n_train=1, n_val=10, batch_size=1, seq_len=1)
    assert "1 training tokens" in one_line(info.value) and "larger corpus" in str(info.value)


def test_validation_split_too_small():
    with pytest.raises(CorpusError) as info:
        check_fits(n_train=1000, n_val=1, batch_size=2, seq_len=4)
    assert "--val-fraction" in one_line(info.value)


def test_exactly_one_batch_fits():
    check_fits(n_train=8 * 33, n_val=2, batch_size=8, seq_len=32)
    batches = StreamBatches(np.arange(8 * 33), 8, 32)
    assert batches.chunks_per_epoch == 1
