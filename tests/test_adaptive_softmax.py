"""The adaptive softmax: cut-offs from frequencies, the loss against the full distribution, and a
tiny adaptive word model trained for real through every command, the shell and a checkpoint."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from torch.nn import functional as F

from lstm_repl.model import checkpoint
from lstm_repl.cli.main import cli
from lstm_repl.config import ModelConfig, SampleConfig
from lstm_repl.training.cutoffs import HEAD_COVERAGE, TAIL_COVERAGE, choose_cutoffs, default_softmax, output_layer
from lstm_repl.errors import CheckpointError, ConfigError
from lstm_repl.model import LanguageModel
from lstm_repl.session.session import Session, Settings
from lstm_repl.session.session_trace import trace_document
from helpers import train_tiny


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(*args) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def adaptive_run(tiny_corpus, tmp_path_factory):
    return train_tiny(tiny_corpus, tmp_path_factory.mktemp("runs") / "tiny-adaptive", "--level", "word",
                      "--softmax", "adaptive", steps=100)


@pytest.fixture(scope="module")
def adaptive(adaptive_run):
    return checkpoint.load(adaptive_run)


def tiny_adaptive_model(vocab: int = 60, cutoffs=(10, 30)) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(ModelConfig(vocab_size=vocab, hidden=16, embed=8, softmax="adaptive", cutoffs=list(cutoffs)))


# ---------------------------------------------------------------- cut-offs


def test_cutoffs_put_the_coverage_in_the_head_and_first_cluster():
    counts = (1e6 / np.arange(1, 5001) ** 1.2).astype(np.int64)  # a Zipf law, most frequent first
    head, tail = choose_cutoffs(counts)
    covered = np.cumsum(counts) / counts.sum()
    assert covered[head - 1] >= HEAD_COVERAGE > covered[head - 2]
    assert covered[tail - 1] >= TAIL_COVERAGE > covered[tail - 2]


@pytest.mark.parametrize("counts", [[5, 1], [9, 0, 0], [1, 1, 1, 1], [100, 0, 0, 0, 0, 0]])
def test_cutoffs_always_make_a_valid_model(counts):
    cuts = choose_cutoffs(np.array(counts))
    ModelConfig(vocab_size=max(len(counts), 2), softmax="adaptive", cutoffs=cuts) if len(counts) >= 2 else None
    assert cuts == sorted(set(cuts)) and 1 <= cuts[0] and cuts[-1] <= max(len(counts) - 1, 1)


def test_auto_is_adaptive_for_large_word_vocabularies_only():
    assert default_softmax("word", 33_278) == "adaptive"
    assert default_softmax("word", 500) == "full"
    assert default_softmax("char", 33_278) == "full"
    assert output_layer("full", "word", np.arange(40_000) % 33_278, 33_278) == {"softmax": "full"}
    assert output_layer("auto", "word", np.arange(40_000) % 33_278, 33_278)["softmax"] == "adaptive"


# ---------------------------------------------------------------- the output layer


def test_loss_is_the_cross_entropy_of_the_full_distribution():
    model = tiny_adaptive_model()
    x, y = torch.randint(0, 60, (3, 9)), torch.randint(0, 60, (3, 9))
    scores, _ = model(x)
    loss, _ = model(x, targets=y)
    summed, _ = model(x, targets=y, reduction="sum")
    expected = F.cross_entropy(scores.reshape(-1, 60), y.reshape(-1))
    assert abs(loss.item() - expected.item()) < 1e-5
    assert abs(summed.item() - expected.item() * 27) < 1e-3
    assert torch.allclose(scores.exp().sum(-1), torch.ones(3, 9), atol=1e-5)


def test_every_parameter_gets_a_gradient_even_when_no_target_is_in_a_cluster():
    model = tiny_adaptive_model()
    loss, _ = model(torch.randint(0, 60, (2, 5)), targets=torch.zeros(2, 5, dtype=torch.long))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_gate_path_and_fused_path_agree():
    model = tiny_adaptive_model().eval()
    tokens = torch.randint(0, 60, (1, 12))
    with torch.inference_mode():
        fused, fused_state = model(tokens)
        stepped, step_state, _ = model.step_sequence(tokens)
    assert torch.allclose(fused, stepped, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(fused_state, step_state))
    assert model.packed() is None  # the pack holds a linear decoder: the plain gate path serves


@pytest.mark.parametrize("settings, words", [
    (dict(cutoffs=[]), "cut-offs"),
    (dict(cutoffs=[30, 10]), "increase"),
    (dict(cutoffs=[10, 60]), "less one"),
    (dict(cutoffs=[10], tie_weights=True, embed=16), "tie-weights"),
    (dict(softmax="sparse"), "unknown softmax"),
])
def test_bad_output_layer_settings_are_refused(settings, words):
    with pytest.raises(ConfigError, match=words):
        ModelConfig(vocab_size=60, hidden=16, **{"softmax": "adaptive", **settings})


# ---------------------------------------------------------------- a trained model, end to end


def test_the_run_chose_cutoffs_and_its_loss_fell(adaptive_run, adaptive):
    config = adaptive.model.config
    assert config.softmax == "adaptive" and config.cutoffs and config.div_value == 4.0
    log = [json.loads(line) for line in (adaptive_run / "log.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in log if r.get("train_loss") is not None]
    assert losses[-1] < losses[0] - 0.5


def test_checkpoint_names_the_adaptive_weights_and_is_version_2(adaptive_run, adaptive):
    config = json.loads((adaptive_run / "best" / "config.json").read_text())
    assert config["format_version"] == 2
    assert config["model"]["softmax"] == "adaptive" and config["model"]["cutoffs"] == adaptive.model.config.cutoffs
    with safe_open(str(adaptive_run / "best" / "model.safetensors"), "pt") as f:
        names = set(f.keys())
    clusters = len(adaptive.model.config.cutoffs)
    expected = {"decoder.head.weight", "decoder.head.bias",
                *(f"decoder.tail.{i}.{j}.weight" for i in range(clusters) for j in (0, 1))}
    assert {n for n in names if n.startswith("decoder.")} == expected
    head = adaptive.model.decoder.head.weight
    assert head.shape == (adaptive.model.config.cutoffs[0] + clusters, adaptive.model.config.hidden)


def test_checkpoint_round_trip_gives_the_same_scores(adaptive, tmp_path):
    saved = checkpoint.save(tmp_path / "copy", adaptive.model, adaptive.vocab, adaptive.train_config)
    again = checkpoint.load(saved)
    tokens = torch.tensor([adaptive.vocab.encode("First Citizen:\nSpeak")])
    with torch.inference_mode():
        assert torch.equal(adaptive.model(tokens)[0], again.model(tokens)[0])


def test_a_full_softmax_checkpoint_is_still_version_1_and_old_ones_load(tiny_word_run):
    assert json.loads((tiny_word_run / "best" / "config.json").read_text())["format_version"] == 1
    old = checkpoint.load("shakespeare-word")
    assert old.model.config.softmax == "full" and "decoder.weight" in old.model.state_dict()
    assert json.loads((old.path / "config.json").read_text())["format_version"] == 1


def test_a_newer_format_is_refused_in_one_line(adaptive_run, tmp_path):
    import shutil

    copy = tmp_path / "future"
    shutil.copytree(adaptive_run / "best", copy)
    config = json.loads((copy / "config.json").read_text())
    config["format_version"] = checkpoint.FORMAT_VERSION + 1
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="upgrade lstm-repl"):
        checkpoint.load(copy)


def test_malformed_cutoffs_in_a_checkpoint_are_one_line(adaptive_run, tmp_path):
    import shutil

    copy = tmp_path / "bad"
    shutil.copytree(adaptive_run / "best", copy)
    config = json.loads((copy / "config.json").read_text())
    config["model"]["cutoffs"] = [5, 2]
    (copy / "config.json").write_text(json.dumps(config))
    result = run("generate", copy, "--prompt", "First")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "cut-offs" in result.output


def test_generate_eval_and_trace(adaptive_run, tiny_corpus):
    text = ok("generate", adaptive_run, "--prompt", "First Citizen", "--length", "30", "--seed", "1")
    assert text.startswith("First Citizen") and len(text) > len("First Citizen")
    greedy = ok("generate", adaptive_run, "--prompt", "All", "--length", "10", "--temperature", "0")
    assert greedy == ok("generate", adaptive_run, "--prompt", "All", "--length", "10", "--temperature", "0")
    ok("generate", adaptive_run, "--prompt", "All", "--length", "10", "--top-k", "3", "--top-p", "0.9")
    scores = json.loads(ok("eval", adaptive_run, tiny_corpus, "--json"))
    assert 0 < scores["bits_per_character"] < 8 and scores["perplexity"] < 40
    trace = json.loads(ok("trace", adaptive_run, "First Citizen:", "--json"))
    assert trace["tokens"]


def test_the_shell_session_reads_predicts_and_streams(adaptive):
    session = Session(adaptive, Settings(SampleConfig(seed=1)))
    snapshot = session.set_text("First Citizen:\nBefore we ")
    assert snapshot.position > 0
    with torch.inference_mode():
        distribution = session.logits(snapshot.position).float().softmax(-1)
    assert abs(float(distribution.sum()) - 1) < 1e-5
    assert session.predictions() and all(0 <= p <= 1 for _, p in session.predictions())
    streamed = "".join(session.stream(15))
    assert streamed
    document = trace_document(session)
    assert document["tokens"]


def test_eval_matches_the_full_distribution_read_token_by_token(adaptive, tiny_corpus):
    from lstm_repl.training.evaluation import summed_loss

    ids = np.array(adaptive.vocab.encode(tiny_corpus.read_text()))[:101]  # two chunks of 50 targets
    total, count = summed_loss(adaptive.model, ids, 1, 50)
    with torch.inference_mode():
        scores, _ = adaptive.model(torch.tensor(ids[None, :-1].astype(np.int64)))
    expected = -scores[0].gather(1, torch.tensor(ids[1:, None].astype(np.int64))).sum()
    assert math.isclose(total, float(expected), rel_tol=1e-4) and count == len(ids) - 1


def test_the_shell_types_predicts_and_streams(adaptive):
    from lstm_repl.shell.headless import Headless as Driver, drive

    ENTER, CTRL_C = "\r", "\x03"

    async def script(d: Driver):
        await d.type("First Citizen")
        assert d.session.snapshot.top, "the panel's predictions come from the full distribution"
        await d.command(":len 100000")
        d.send(ENTER)
        await d.until(lambda: len(d.shell_app.stream_text) > 10, "some streamed text")
        d.send(CTRL_C)
        await d.until(lambda: d.shell_app.streaming is None, "the stream to stop")

    drive(adaptive, script)


def test_bench_train_at_word_level_times_both_output_layers():
    output = ok("bench", "train", "--level", "word", "--vocab", "300", "--hidden", "16", "--embed", "8",
                "--batch-size", "4", "--seq-len", "8", "--steps", "2", "--precision", "fp32")
    assert "word level" in output and "(full softmax)" in output
    assert re.search(r"adaptive softmax +[\d,]+ tok/s = [\d.]+ x the full softmax, cut-offs \[\d+", output), output


def test_bench_word_ids_follow_a_zipf_law_most_frequent_first():
    from lstm_repl.bench.speed import bench_ids

    counts = np.bincount(bench_ids("word", 1000, 200_000), minlength=1000)
    assert counts[0] > counts[1] > counts[10] > counts[500]


def test_word_level_takes_its_own_defaults_and_a_flag_given_wins(tiny_corpus, tmp_path):
    from lstm_repl.config import WORD_DEFAULTS

    common = ["train", tiny_corpus, "--level", "word", "--max-steps", "1", "--precision", "fp32"]
    ok(*common, "--out", tmp_path / "defaults")
    ok(*common, "--out", tmp_path / "given", "--hidden", "16", "--seq-len", "12")
    defaults, given = (checkpoint.load(tmp_path / name) for name in ("defaults", "given"))
    assert defaults.model.config.hidden == WORD_DEFAULTS["hidden"] and defaults.train_config.seq_len == 35
    assert defaults.train_config.lr == WORD_DEFAULTS["lr"] and defaults.train_config.batch_size == 32
    assert given.model.config.hidden == 16 and given.train_config.seq_len == 12
    assert given.train_config.batch_size == WORD_DEFAULTS["batch_size"]
