"""Checkpoints: safetensors + JSON on disk, exact round trips, refusal of broken or hostile input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file as real_save_file

from lstm_repl.atomic import atomic_folder
from lstm_repl.model import checkpoint
from lstm_repl.model.checkpoint import (CONFIG_FILE, FORMAT_NAME, FORMAT_VERSION, WEIGHTS_FILE, Checkpoint, load,
                                        resolve, save)
from lstm_repl.config import ModelConfig, TrainConfig
from lstm_repl.errors import CheckpointError
from lstm_repl.model import LanguageModel
from lstm_repl.data.vocab import CharVocab, WordVocab

TEXT = "hello world, hello lstm.\n"


def tiny_model(vocab_size: int, layers: int = 2, hidden: int = 8, embed: int = 6, seed: int = 0,
               **extra) -> LanguageModel:
    torch.manual_seed(seed)
    return LanguageModel(ModelConfig(vocab_size=vocab_size, layers=layers, hidden=hidden, embed=embed, dropout=0.1,
                                     **extra))


@pytest.fixture
def saved(tmp_path) -> tuple[Path, LanguageModel, CharVocab]:
    vocab = CharVocab.build(TEXT)
    model = tiny_model(len(vocab))
    path = save(tmp_path / "ckpt", model, vocab, TrainConfig(seq_len=16, batch_size=4),
                info={"metrics": {"step": 7, "best_val_loss": 1.25}, "corpus": {"sha256": "abc"}})
    return path, model, vocab


def read_config(path: Path) -> dict:
    return json.loads((path / CONFIG_FILE).read_text("utf-8"))


def write_config(path: Path, config: dict) -> None:
    (path / CONFIG_FILE).write_text(json.dumps(config), "utf-8")


def refused(spec, *words: str, **kwargs) -> str:
    """Loading raises CheckpointError with a one-line message holding every word."""
    with pytest.raises(CheckpointError) as info:
        load(spec, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message, message
    for word in words:
        assert word.lower() in message.lower(), message
    return message


# ---------------------------------------------------------------- the format on disk


def test_folder_holds_config_json_and_model_safetensors(saved):
    path, model, vocab = saved
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    config = read_config(path)
    assert config["format"] == FORMAT_NAME
    assert config["format_version"] == 1  # a full softmax: version-1 readers take it (adaptive: 2)
    assert config["model"] == {"vocab_size": len(vocab), "cell": "lstm", "layers": 2, "hidden": 8, "embed": 6,
                               "dropout": 0.1, "input_dropout": 0.0, "output_dropout": 0.0, "embed_dropout": 0.0,
                               "weight_drop": 0.0, "tie_weights": False, "softmax": "full", "cutoffs": [],
                               "div_value": 4.0}
    assert config["vocab"] == vocab.to_json()
    assert config["training"]["seq_len"] == 16 and config["training"]["batch_size"] == 4
    assert config["metrics"] == {"step": 7, "best_val_loss": 1.25}
    assert config["corpus"] == {"sha256": "abc"}
    assert "lstm_repl_version" in config


def test_tensor_names_are_the_documented_ones(saved):
    path, model, _ = saved
    expected = {"embedding.weight", "decoder.weight", "decoder.bias"}
    for k in range(2):
        expected |= {f"rnn.weight_ih_l{k}", f"rnn.weight_hh_l{k}", f"rnn.bias_ih_l{k}", f"rnn.bias_hh_l{k}"}
    with safe_open(str(path / WEIGHTS_FILE), framework="pt") as f:
        names = set(f.keys())
        assert names == expected
        assert tuple(f.get_tensor("rnn.weight_ih_l0").shape) == (4 * 8, 6)
        assert tuple(f.get_tensor("rnn.weight_hh_l1").shape) == (4 * 8, 8)
        assert tuple(f.get_tensor("embedding.weight").shape) == (model.config.vocab_size, 6)
        assert all(f.get_tensor(n).dtype == torch.float32 for n in names)


def test_no_temporary_folders_are_left(saved):
    path, _, _ = saved
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt"]


# ---------------------------------------------------------------- round trip


def test_round_trip_gives_identical_weights_and_logits(saved):
    path, model, vocab = saved
    loaded = load(path)
    assert loaded.path == path
    assert loaded.vocab.tokens == vocab.tokens and isinstance(loaded.vocab, CharVocab)
    assert loaded.model.config == model.config
    assert loaded.train_config.seq_len == 16
    assert loaded.info["metrics"]["step"] == 7
    original, restored = model.state_dict(), loaded.model.state_dict()
    assert original.keys() == restored.keys()
    for name in original:
        assert torch.equal(original[name], restored[name]), name
    model.eval()
    assert not loaded.model.training
    tokens = torch.tensor([vocab.encode(TEXT)])
    with torch.no_grad():
        a, (ha, ca) = model(tokens)
        b, (hb, cb) = loaded.model(tokens)
    assert torch.equal(a, b) and torch.equal(ha, hb) and torch.equal(ca, cb)


def test_round_trip_word_vocab_and_tied_weights(tmp_path):
    vocab = WordVocab.build("the cat sat on the mat .\n" * 3)
    model = tiny_model(len(vocab), layers=1, hidden=8, embed=8, tie_weights=True)
    path = save(tmp_path / "tied", model, vocab, TrainConfig(level="word"))
    loaded = load(path)
    assert isinstance(loaded.vocab, WordVocab) and loaded.vocab.tokens == vocab.tokens
    assert loaded.model.decoder.weight is loaded.model.embedding.weight
    model.eval()
    tokens = torch.tensor([vocab.encode("the cat sat")])
    with torch.no_grad():
        assert torch.equal(model(tokens)[0], loaded.model(tokens)[0])


def test_saving_again_replaces_the_checkpoint(saved):
    path, _, vocab = saved
    other = tiny_model(len(vocab), seed=5)
    save(path, other, vocab, TrainConfig(), info={"metrics": {"step": 9}})
    loaded = load(path)
    assert loaded.info["metrics"] == {"step": 9}
    assert torch.equal(loaded.model.decoder.weight, other.decoder.weight)
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt"]


# ---------------------------------------------------------------- refusing broken input


def test_truncated_weights(saved):
    path, _, _ = saved
    weights = path / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    refused(path, WEIGHTS_FILE, "truncated")


def test_one_corrupted_byte(saved):
    path, _, _ = saved
    weights = path / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x40  # inside the last tensor's values
    weights.write_bytes(bytes(data))
    refused(path, WEIGHTS_FILE, "corrupted")


@pytest.mark.parametrize("cut", [0, 5, 100, -4])
def test_truncated_weights_without_a_recorded_digest(saved, cut):
    path, _, _ = saved
    config = read_config(path)
    del config["files"]  # as a hand-made or older checkpoint would be
    write_config(path, config)
    weights = path / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:cut])
    refused(path, WEIGHTS_FILE)


def test_missing_weights(saved):
    path, _, _ = saved
    (path / WEIGHTS_FILE).unlink()
    refused(path, WEIGHTS_FILE, "missing")


@pytest.mark.parametrize(
    "text", ["{not json", "", "\x00\x01", '{"format": "lstm-repl-checkpoint", "format_version": 1,'])
def test_config_that_is_not_json(saved, text):
    path, _, _ = saved
    (path / CONFIG_FILE).write_text(text, "utf-8")
    refused(path, CONFIG_FILE, "json")


def put(key: str, value) -> Callable[[dict], None]:
    """An edit setting config[key] = value; 'section.name' sets one entry of a section."""
    *section, name = key.split(".")

    def edit(config: dict) -> None:
        (config[section[0]] if section else config)[name] = value

    return edit


def char_vocab(tokens: list) -> Callable[[dict], None]:
    """An edit giving the config this char vocabulary and a model sized for it."""

    def edit(config: dict) -> None:
        config["vocab"] = {"level": "char", "tokens": tokens}
        config["model"]["vocab_size"] = len(tokens) + 1

    return edit


# id, an edit of the config (in place, or returning a whole document to write instead), words the error holds
EDITED_CONFIGS = [
    ("not-ours", lambda config: {"hello": "world"}, ["not an lstm-repl checkpoint"]),
    ("not-an-object", lambda config: [1, 2, 3], ["not an lstm-repl checkpoint"]),
    ("newer-format-version", put("format_version", FORMAT_VERSION + 1), ["upgrade", str(FORMAT_VERSION + 1)]),
    *[(f"format_version={version!r}", put("format_version", version), ["format_version"])
      for version in (None, 0, "1", 1.5)],
    ("hidden-unlike-the-weights", put("model.hidden", 10), ["has shape", "config says"]),
    ("layers-unlike-the-weights", put("model.layers", 3), ["missing", "_l2"]),
    ("vocabulary-unlike-the-model", lambda config: config["vocab"]["tokens"].append("Z"), ["vocabulary"]),
    *[(f"model.{name}={value!r}", put(f"model.{name}", value), ["config"])
      for name, value in (("hidden", "big"), ("hidden", -3), ("cell", "transformer"), ("vocab_size", None))],
    *[(f"{key}={value!r}", put(key, value), []) for key, value in (
        ("files", "abc"),
        ("files", None),
        ("files", {WEIGHTS_FILE: "not a digest"}),
        ("training", "abc"),
        ("training", None),
        ("training", {"lr": -1}),
        ("training", {"seq_len": "long"}),
        ("model.hidden", 8.0),
        ("model.embed", 4.5),
        ("model.layers", True),
        ("model.dropout", "x"),
        ("model.vocab_size", 10**12),
    )],
    *[(f"vocab.tokens={tokens!r}", char_vocab(tokens), ["vocabulary", "malformed"])
      for tokens in ([1, 2], ["a", "a"], ["a", ""], ["ab", "c"])],
    # what info, model cards, --follow and --resume read is typed where config.json is read
    *[(f"{key}={value!r}", put(key, value), words) for key, value, words in (
        ("metrics", "fast", ["'metrics' should be an object, found a string"]),
        ("metrics.step", "7", ["metrics", "'step' should be an integer"]),
        ("metrics.best_val_loss", [1.5], ["'best_val_loss' should be a number or null"]),
        ("corpus", {"files": 5}, ["corpus", "'files' should be a list"]),
        ("corpus", {"files": [3]}, ["corpus", "'files[0]' should be a string"]),
        ("train_time_s", "long", ["'train_time_s' should be a number"]),
        ("parameters", {"total": 1.5}, ["parameters", "'total' should be an integer"]),
        ("format_version", True, ["format_version"]),
        ("model.hidden", 2**63, ["beyond what this tool builds"]),
        ("model.cutoffs", ["a"], ["cutoffs[0]", "integer"]),
        ("training.max_steps", "10", ["'max_steps' should be an integer or null"]),
    )],
]


@pytest.mark.parametrize("edit, words", [row[1:] for row in EDITED_CONFIGS], ids=[row[0] for row in EDITED_CONFIGS])
def test_an_edited_config_is_refused_in_one_line(saved, edit, words):
    path, _, _ = saved
    config = read_config(path)
    replacement = edit(config)
    write_config(path, config if replacement is None else replacement)
    refused(path, *words)


@pytest.mark.parametrize("text, words", [
    ("[" * 200_000, ["nested too deeply"]),
    ('{"format": "lstm-repl-checkpoint", "metrics": {"best_val_loss": 1e999}}', ["too large"]),
    ('{"format": "lstm-repl-checkpoint", "train_time_s": NaN}', ["NaN is not a number"]),
    ('{"format": "lstm-repl-checkpoint", "model": {"hidden": 1' + "0" * 40 + "}}", ["integer", "too large"]),
])
def test_a_config_json_no_parser_should_take_is_one_line(saved, text, words):
    path, _, _ = saved
    (path / CONFIG_FILE).write_text(text, "utf-8")
    refused(path, CONFIG_FILE, *words)


def test_a_config_json_larger_than_any_checkpoint_writes_is_refused_unread(saved, monkeypatch):
    path, _, _ = saved
    monkeypatch.setattr(checkpoint, "CONFIG_LIMIT", 1000)
    refused(path, CONFIG_FILE, "more than a checkpoint config can be")


def test_info_on_a_config_whose_metrics_is_a_string_is_one_line(saved):
    from click.testing import CliRunner

    from lstm_repl.cli.main import cli

    path, _, _ = saved
    config = read_config(path)
    config["metrics"] = "fast"
    write_config(path, config)
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.count("\n") == 1 and "'metrics' should be an object" in result.output


def test_info_on_a_config_that_leaves_out_fields_with_defaults_shows_them(saved):
    from click.testing import CliRunner

    from lstm_repl.cli.main import cli

    path, _, _ = saved
    config = read_config(path)
    del config["model"]["dropout"], config["metrics"]
    write_config(path, config)
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "dropout 0.0" in result.output and "not validated yet" in result.output


@pytest.mark.parametrize("field, size, words, built", [
    ("hidden", 2**15, ["has shape", "config says"], ["meta"]),  # a real model this size would need 68 GB
    ("hidden", 2**20, ["beyond what this tool builds"], []),  # 16 TB: refused before even the meta build
    ("layers", 100_000, ["100,000 layers", "at most 256"], []),  # the meta build alone took minutes
])
def test_a_huge_size_in_the_config_is_refused_before_anything_is_allocated(saved, monkeypatch, field, size, words,
                                                                           built):
    path, _, _ = saved
    config = read_config(path)
    config["model"][field] = size
    write_config(path, config)
    built_on = []
    real_init = LanguageModel.__init__

    def record_device(self, *args, **kwargs):
        built_on.append(torch.empty(0).device.type)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(LanguageModel, "__init__", record_device)
    refused(path, *words)
    assert built_on == built


def test_non_finite_weights(saved):
    path, model, _ = saved
    weights = {name: t.clone() for name, t in model.state_dict().items()}
    weights["decoder.bias"][0] = float("nan")
    real_save_file(weights, str(path / WEIGHTS_FILE))
    config = read_config(path)
    config["files"][WEIGHTS_FILE] = checkpoint._file_digest(path / WEIGHTS_FILE)
    write_config(path, config)
    refused(path, "decoder.bias", "non-finite")


class Hostile:
    """Unpickling this creates a marker file: proof that a loader ran pickle on it."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("keep_digest", [True, False])
@pytest.mark.parametrize("zipfile", [True, False])
def test_pickle_under_model_safetensors_is_never_unpickled(saved, tmp_path, keep_digest, zipfile):
    path, model, _ = saved
    marker = tmp_path / "UNPICKLED"
    payload = {**model.state_dict(), "evil": Hostile(str(marker))}
    torch.save(payload, path / WEIGHTS_FILE, _use_new_zipfile_serialization=zipfile)
    config = read_config(path)
    if keep_digest:  # the attacker also rewrote the digest, so only the parser stands in the way
        config["files"][WEIGHTS_FILE] = checkpoint._file_digest(path / WEIGHTS_FILE)
    else:
        del config["files"]
    write_config(path, config)
    refused(path, WEIGHTS_FILE)
    assert not marker.exists(), "the checkpoint loader unpickled hostile input"


# ---------------------------------------------------------------- atomic writes


def test_a_failed_save_leaves_the_previous_checkpoint_whole(saved, monkeypatch):
    path, model, vocab = saved
    before = {name: t.clone() for name, t in load(path).model.state_dict().items()}

    def full_disk(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    with pytest.raises(CheckpointError) as info:
        save(path, tiny_model(len(vocab), seed=3), vocab, TrainConfig(), info={"metrics": {"step": 99}})
    message = str(info.value)
    assert "space" in message and "\n" not in message
    monkeypatch.undo()

    loaded = load(path)
    assert loaded.info["metrics"]["step"] == 7
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt"], "temporary folders were left behind"


def test_a_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    vocab = CharVocab.build(TEXT)

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    with pytest.raises(CheckpointError, match="space"):
        save(tmp_path / "run" / "best", tiny_model(len(vocab)), vocab, TrainConfig())
    assert list((tmp_path / "run").iterdir()) == []


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_save_leaves_no_temporary_folder(saved, monkeypatch, error):
    path, model, vocab = saved

    def interrupted(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise error("stop")

    monkeypatch.setattr(checkpoint, "save_file", interrupted)
    with pytest.raises(error):
        save(path, model, vocab, TrainConfig())
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt"]
    monkeypatch.undo()
    assert load(path).info["metrics"]["step"] == 7


def test_save_where_the_parent_is_a_file(tmp_path):
    vocab = CharVocab.build(TEXT)
    (tmp_path / "file").write_text("x", "utf-8")
    with pytest.raises(CheckpointError) as info:
        save(tmp_path / "file" / "best", tiny_model(len(vocab)), vocab, TrainConfig())
    assert "\n" not in str(info.value)


def test_an_interrupted_swap_is_recovered(tmp_path):
    vocab = CharVocab.build(TEXT)
    model = tiny_model(len(vocab))
    run = tmp_path / "run"
    save(run / "best", model, vocab, TrainConfig(), info={"metrics": {"step": 1}})
    save(run / "last", model, vocab, TrainConfig(), info={"metrics": {"step": 2}})
    # A crash between the two renames of a swap leaves only .best.old behind.
    os.rename(run / "best", run / ".best.old")
    assert resolve(run / "best") == run / ".best.old"
    assert resolve(run) == run / ".best.old"
    assert load(run / "best").info["metrics"]["step"] == 1
    assert load(run).info["metrics"]["step"] == 1
    os.rename(run / "last", run / ".last.old")
    assert resolve(run, for_resume=True) == run / ".last.old"
    # The next save puts a whole checkpoint back in place and clears the old copy.
    save(run / "best", model, vocab, TrainConfig(), info={"metrics": {"step": 3}})
    assert resolve(run) == run / "best"
    assert load(run).info["metrics"]["step"] == 3
    assert not (run / ".best.old").exists()


# ---------------------------------------------------------------- resolving


def test_run_folder_resolves_to_best_and_for_resume_to_last(tiny_run):
    assert resolve(tiny_run) == tiny_run / "best"
    assert resolve(tiny_run, for_resume=True) == tiny_run / "last"
    assert resolve(tiny_run / "last") == tiny_run / "last"
    best = load(tiny_run)
    assert best.path == tiny_run / "best" and best.resume is None
    last = load(tiny_run, for_resume=True)
    assert last.path == tiny_run / "last" and last.resume is not None
    assert last.resume["position"]["step"] >= best.info["metrics"]["step"]


def test_run_folder_with_only_last_resolves_to_last(tmp_path):
    vocab = CharVocab.build(TEXT)
    save(tmp_path / "run" / "last", tiny_model(len(vocab)), vocab, TrainConfig())
    assert resolve(tmp_path / "run") == tmp_path / "run" / "last"


def test_folder_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        resolve(tmp_path / "plain")


def test_bundled_names(tmp_path, monkeypatch):
    bundled = tmp_path / "bundled"
    vocab = CharVocab.build(TEXT)
    save(bundled / "shakespeare-char", tiny_model(len(vocab)), vocab, TrainConfig())
    save(bundled / "tiny-word", tiny_model(len(vocab)), vocab, TrainConfig())
    (bundled / "not-a-model").mkdir()
    monkeypatch.setattr(checkpoint, "BUNDLED_DIR", bundled)
    monkeypatch.chdir(tmp_path)
    assert resolve("shakespeare-char") == bundled / "shakespeare-char"
    assert load("tiny-word").vocab.tokens == vocab.tokens
    with pytest.raises(CheckpointError) as info:
        resolve("no-such-model")
    message = str(info.value)
    assert "no-such-model" in message and "shakespeare-char" in message and "tiny-word" in message
    assert "not-a-model" not in message and "\n" not in message


def test_unknown_name_with_nothing_bundled(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "BUNDLED_DIR", tmp_path / "none")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="none installed"):
        load("whatever")


def test_copy_of_a_real_run_loads_anywhere(tiny_run, tmp_path):
    copy = shutil.copytree(tiny_run / "best", tmp_path / "moved")
    loaded = load(copy)
    assert loaded.model.config.hidden == 24


def _two_saves(tiny_run: Path, tmp_path: Path) -> tuple[Path, Path, Checkpoint]:
    """best/ as it stands, and a second save of the same model with other weights, ready to swap in."""
    loaded = load(tiny_run)
    with torch.no_grad():
        for weight in loaded.model.parameters():
            weight.add_(1.0)
    target = tmp_path / "best"
    shutil.copytree(tiny_run / "best", target)
    newer = save(tmp_path / ".best.tmpnewer", loaded.model, loaded.vocab, loaded.train_config)
    return target, newer, loaded


def _same_weights(loaded_model: LanguageModel, expected: LanguageModel) -> bool:
    return all(torch.equal(a, b) for a, b in zip(loaded_model.state_dict().values(), expected.state_dict().values()))


@pytest.mark.parametrize("swaps", [1, 2])
def test_a_save_swapped_in_while_the_folder_is_read_is_read_whole(tiny_run, tmp_path, monkeypatch, swaps):
    """A reader takes no lock: a training run's save may land between its reading config.json and
    model.safetensors. It reads the folder again instead of failing on a digest that belongs to the
    other save."""
    target, newer, changed = _two_saves(tiny_run, tmp_path)
    real_read_config, pending = checkpoint._read_config, [newer] * swaps

    def config_then_a_save(path):
        config = real_read_config(path)
        if pending:
            pending.pop()
            with atomic_folder(target) as fresh:  # the training run's real swap, mid-read
                shutil.copytree(newer, fresh, dirs_exist_ok=True)
        return config

    monkeypatch.setattr(checkpoint, "_read_config", config_then_a_save)
    loaded = load(target)
    assert not pending
    assert _same_weights(loaded.model, changed.model)


def test_a_digest_that_fails_without_a_swap_is_still_an_error(tiny_run, tmp_path):
    target, _, _ = _two_saves(tiny_run, tmp_path)
    weights = target / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="do not match the sha256"):
        load(target)
