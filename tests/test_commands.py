"""generate, trace, eval and info through the real CLI, on tiny trained runs."""

from __future__ import annotations

import inspect
import json
import math
import re
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.nn import functional as F

from lstm_repl.model import checkpoint
from lstm_repl.cli.main import cli
from lstm_repl.config import SampleConfig
from lstm_repl.session.sampling import generate_text
from lstm_repl.data.vocab import UNK_ID

ESCAPE = "\x1b"


def run(*args, input: str | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def ok(*args, input: str | None = None) -> str:
    result = run(*args, input=input)
    assert result.exit_code == 0, result.output
    assert ESCAPE not in result.output
    return result.output


def one_line_error(result, *words: str) -> str:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:"), result.output
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


def generated(tiny_run, *args, prompt: str = "First", input: str | None = None) -> str:
    """The continuation alone: --no-echo, without the final newline the command adds."""
    extra = ["--prompt", prompt] if prompt is not None else []
    output = ok("generate", tiny_run, *extra, "--no-echo", *args, input=input)
    assert output.endswith("\n")
    return output[:-1]


# ---------------------------------------------------------------- generate


def test_generate_echoes_the_prompt(tiny_run):
    output = ok("generate", tiny_run, "--prompt", "First Citizen", "--length", "40", "--seed", "3")
    assert output.startswith("First Citizen")
    continuation = generated(tiny_run, "--length", "40", "--seed", "3", prompt="First Citizen")
    assert output == "First Citizen" + continuation + "\n"
    assert len(continuation) == 40  # char level: one character a token


def test_generate_same_seed_same_text_other_seed_other_text(tiny_run):
    settings = ["--length", "60", "--temperature", "1"]
    a = generated(tiny_run, *settings, "--seed", "1")
    assert a == generated(tiny_run, *settings, "--seed", "1")
    assert a != generated(tiny_run, *settings, "--seed", "2")


def test_generate_temperature_zero_is_greedy(tiny_run):
    greedy = generated(tiny_run, "--length", "50", "--temperature", "0", "--seed", "1")
    assert greedy == generated(tiny_run, "--length", "50", "--temperature", "0", "--seed", "99")
    assert greedy == generated(tiny_run, "--length", "50", "--temperature", "0")
    assert greedy == generated(tiny_run, "--length", "50", "--top-k", "1", "--temperature", "1.5", "--seed", "7")


def test_generate_top_p_tiny_is_greedy(tiny_run):
    greedy = generated(tiny_run, "--length", "30", "--temperature", "0")
    assert greedy == generated(tiny_run, "--length", "30", "--top-p", "0.000001", "--seed", "4")


@pytest.mark.parametrize("stop", [" ", "e", "\n", "ea"])
def test_generate_stop_ends_at_the_first_occurrence(tiny_run, stop):
    text = generated(tiny_run, "--length", "400", "--seed", "2", "--temperature", "1", "--stop", stop)
    assert text.endswith(stop), repr(text)
    assert text.find(stop) == len(text) - len(stop), repr(text)
    unstopped = generated(tiny_run, "--length", "400", "--seed", "2", "--temperature", "1")
    assert unstopped.startswith(text)


def test_generate_reads_the_prompt_from_stdin(tiny_run):
    output = ok("generate", tiny_run, "--length", "10", "--seed", "1", input="All:\nSpeak")
    assert output.startswith("All:\nSpeak")
    assert output == ok("generate", tiny_run, "--prompt", "All:\nSpeak", "--length", "10", "--seed", "1")


def test_generate_length_zero(tiny_run):
    assert ok("generate", tiny_run, "--prompt", "First", "--length", "0") == "First\n"
    assert generated(tiny_run, "--length", "0") == ""


def test_generate_without_prompt(tiny_run):
    text = generated(tiny_run, "--length", "12", "--seed", "1", prompt=None, input="")
    assert len(text) == 12


def test_generate_bad_values_are_one_line_errors(tiny_run):
    one_line_error(run("generate", tiny_run, "--prompt", "x", "--temperature", "-1"), "temperature")
    one_line_error(run("generate", tiny_run, "--prompt", "x", "--top-p", "0"), "top-p")
    one_line_error(run("generate", tiny_run, "--prompt", "x", "--length", "-3"), "length")
    one_line_error(run("generate", tiny_run, "--prompt", "x", "--precision", "fp8"), "precision")


class Counted:
    """Wraps the model's fused path (forward, and read: forward without the decoder) and its step;
    every call goes to the real method. `forward` counts calls of either fused entry."""

    def __init__(self, model):
        self.forward = self.step = 0
        real_forward, real_read, real_step = model.forward, model.read, model.step

        def forward(*args, **kwargs):
            self.forward += 1
            return real_forward(*args, **kwargs)

        def read(*args, **kwargs):
            self.forward += 1
            return real_read(*args, **kwargs)

        def step(*args, **kwargs):
            self.step += 1
            return real_step(*args, **kwargs)

        model.forward, model.read, model.step = forward, read, step


def test_generate_text_streams_and_reads_the_prompt_fused(tiny_run):
    loaded = checkpoint.load(tiny_run)
    calls = Counted(loaded.model)
    prompt = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 4
    stream = generate_text(loaded.model, loaded.vocab, prompt, SampleConfig(length=80, seed=1))
    assert inspect.isgenerator(stream)
    assert calls.forward == 0  # nothing runs before the first piece is asked for
    first = next(stream)
    assert isinstance(first, str) and len(first) == 1
    assert calls.forward == 1, "the whole prompt goes through the fused path in one call"
    rest = list(stream)
    assert len(rest) == 79 and calls.forward == 1
    assert calls.step == 0, "the rest comes from the packed model's decode, not a step per token"
    assert first + "".join(rest) == generated(tiny_run, "--length", "80", "--seed", "1", prompt=prompt)


def test_generate_text_without_a_prompt_starts_from_a_newline(tiny_run):
    loaded = checkpoint.load(tiny_run)
    calls = Counted(loaded.model)
    pieces = list(generate_text(loaded.model, loaded.vocab, "", SampleConfig(length=5, seed=1)))
    assert len(pieces) == 5 and calls.forward == 0
    assert pieces == list(generate_text(loaded.model, loaded.vocab, "\n", SampleConfig(length=5, seed=1)))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_packed_decode_gives_the_text_a_step_per_token_gives(tiny_run, precision):
    """top-k = the whole vocabulary filters nothing but takes the per-token path."""
    loaded = checkpoint.load(tiny_run)
    size = loaded.model.config.vocab_size
    texts = {
        top_k: "".join(generate_text(loaded.model, loaded.vocab, "To be",
                                     SampleConfig(length=300, seed=3, top_k=top_k, precision=precision)))
        for top_k in (0, size)
    }
    assert texts[0] == texts[size]


# ---------------------------------------------------------------- trace


def trace_document(tiny_run, text: str, *args) -> dict:
    return json.loads(ok("trace", tiny_run, text, "--json", *args))


def test_trace_json(tiny_run):
    text = "Speak, speak."
    document = trace_document(tiny_run, text)
    loaded = checkpoint.load(tiny_run)
    config = loaded.model.config
    assert document["format"] == "lstm-repl-trace"
    assert document["text"] == text
    assert (document["layers"], document["hidden"], document["level"]) == (config.layers, config.hidden, "char")
    tokens = document["tokens"]
    assert [t["text"] for t in tokens] == list(text)
    assert [t["id"] for t in tokens] == loaded.vocab.encode(text)
    assert [t["index"] for t in tokens] == list(range(len(text)))
    assert tokens[0]["probability"] is None and tokens[0]["surprisal_bits"] is None
    for token in tokens[1:]:
        assert 0 < token["probability"] <= 1
        assert token["surprisal_bits"] == pytest.approx(-math.log2(token["probability"]))
    surprisals = [t["surprisal_bits"] for t in tokens[1:]]
    assert document["total_surprisal_bits"] == pytest.approx(sum(surprisals))
    assert document["mean_surprisal_bits"] == pytest.approx(sum(surprisals) / len(surprisals))
    for token in tokens:
        top = token["top"]
        assert len(top) == 5
        assert all(set(t) == {"text", "id", "probability"} for t in top)
        assert [t["probability"] for t in top] == sorted((t["probability"] for t in top), reverse=True)
        assert all(loaded.vocab.token_text(t["id"]) == t["text"] and t["id"] != UNK_ID for t in top)
        assert len(token["layers"]) == config.layers
        for layer in token["layers"]:
            assert set(layer) == {"i", "f", "g", "o", "c", "h"}
            values = {name: np.array(v) for name, v in layer.items()}
            assert all(len(v) == config.hidden for v in values.values())
            for name in "ifo":
                assert ((values[name] >= 0) & (values[name] <= 1)).all()
            assert ((values["g"] >= -1) & (values["g"] <= 1)).all()
            assert ((values["h"] >= -1) & (values["h"] <= 1)).all()
            np.testing.assert_allclose(values["h"], values["o"] * np.tanh(values["c"]), atol=1e-5, rtol=0)


def test_trace_json_matches_the_gate_path(tiny_run):
    text = "You are all resolved"
    document = trace_document(tiny_run, text, "--top-k", "3")
    loaded = checkpoint.load(tiny_run)
    ids = loaded.vocab.encode(text)
    with torch.inference_mode():
        logits, _, gates = loaded.model.step_sequence(torch.tensor([ids]))
    probs = logits[0].float().softmax(-1)
    for t, token in enumerate(document["tokens"]):
        if t:
            assert token["probability"] == pytest.approx(float(probs[t - 1, ids[t]]), abs=1e-6)
        expected_top = [i for i in torch.argsort(probs[t], descending=True).tolist() if i != UNK_ID][:3]
        assert [p["id"] for p in token["top"]] == expected_top
        for k, layer in enumerate(token["layers"]):
            for name, values in layer.items():
                np.testing.assert_allclose(values, gates[t][k][name][0].numpy(), atol=1e-5, rtol=0)


def test_trace_with_an_unknown_character(tiny_run):
    document = trace_document(tiny_run, "ab€")
    assert document["tokens"][-1]["unknown"] is True
    assert document["tokens"][-1]["text"] == "€"
    assert document["tokens"][-1]["id"] == UNK_ID


def test_trace_table(tiny_run):
    output = ok("trace", tiny_run, "Fir", "--units", "0-2")
    assert "forget" in output
    assert re.search(r"│\s*0\s*│\s*F\s*│", output), output
    assert re.search(r"│\s*2\s*│\s*r\s*│", output), output
    for unit in ("u0", "u1", "u2"):
        assert unit in output
    assert "mean surprisal" in output


def test_trace_table_layer(tiny_run):
    assert "layer 2 of 2" in ok("trace", tiny_run, "Fir", "--layer", "2", "--units", "3")
    assert "layer 1 of 2" in ok("trace", tiny_run, "Fir", "--units", "3")  # as the shell starts
    one_line_error(run("trace", tiny_run, "Fir", "--layer", "3"), "layers")


@pytest.mark.parametrize("units", ["99", "-1", "abc", "0-100", ",", "5-x"])
def test_trace_bad_units_is_one_line_error(tiny_run, units):
    one_line_error(run("trace", tiny_run, "Fir", "--units", units), "units")


def test_trace_empty_text(tiny_run):
    one_line_error(run("trace", tiny_run, ""), "empty")


# ---------------------------------------------------------------- eval


def test_eval_char(tiny_run, tiny_corpus):
    output = ok("eval", tiny_run, tiny_corpus)
    assert re.search(r"loss \d+\.\d+ nats", output)
    assert re.search(r"\d+\.\d+ bits per character", output)
    assert "tokens/s" in output
    assert re.search(r"unknown tokens: 0 of", output)


def test_eval_counts_unknown_characters(tiny_run, tmp_path):
    corpus = tmp_path / "odd.txt"
    text = "Quixotic jibes, €uros and xylophones. " * 20
    corpus.write_text(text, "utf-8")
    never_seen = sum(character not in checkpoint.load(tiny_run).vocab.ids for character in text)
    assert 0 < never_seen < len(text)
    output = ok("eval", tiny_run, corpus)
    unknown = int(re.search(r"unknown tokens: ([\d,]+) of", output).group(1).replace(",", ""))
    assert unknown == never_seen
    assert "never saw" in output
    result = json.loads(ok("eval", tiny_run, corpus, "--json"))
    assert result["unknown_tokens"] == unknown
    assert result["unknown_fraction"] == pytest.approx(never_seen / len(text))


def test_eval_json(tiny_run, tiny_corpus):
    result = json.loads(ok("eval", tiny_run, tiny_corpus, "--json"))
    assert result["level"] == "char"
    assert result["bits_per_character"] == pytest.approx(result["loss_nats"] / math.log(2))
    assert result["tokens"] == len(tiny_corpus.read_text("utf-8"))
    assert 0 < result["tokens_scored"] <= result["tokens"] - 1  # a token is scored from those before it
    assert result["unknown_tokens"] == 0
    # a trained model beats uniform guessing over its vocabulary
    assert result["bits_per_character"] < math.log2(len(checkpoint.load(tiny_run).vocab))


def test_eval_scores_every_next_token_as_the_models_forward_does(tiny_run, tiny_corpus, tmp_path):
    text = tiny_corpus.read_text("utf-8")[:200]  # short enough to be scored as one stream in one chunk
    corpus = tmp_path / "short.txt"
    corpus.write_text(text, "utf-8")
    started = time.perf_counter()
    result = json.loads(ok("eval", tiny_run, corpus, "--json"))
    elapsed = time.perf_counter() - started
    loaded = checkpoint.load(tiny_run)
    ids = torch.tensor([loaded.vocab.encode(text)])
    with torch.inference_mode():
        logits, _ = loaded.model.eval()(ids[:, :-1])
        total = float(F.cross_entropy(logits[0].float(), ids[0, 1:], reduction="sum"))
    assert result["tokens_scored"] == len(text) - 1  # every token but the first, predicted from those before
    assert result["loss_nats"] == pytest.approx(total / (len(text) - 1), rel=1e-5)
    assert result["bits_per_character"] == pytest.approx(total / math.log(2) / (len(text) - 1), rel=1e-5)
    assert result["tokens_per_s"] >= result["tokens_scored"] / elapsed  # timed inside the whole command


def test_eval_reports_per_word_perplexity_and_bits_per_character_for_both_levels(tiny_run, tiny_word_run,
                                                                                  tiny_corpus):
    output = ok("eval", tiny_word_run, tiny_corpus)
    assert re.search(r"bits per character +perplexity \d+\.\d+ per word", output)
    assert re.search(r"perplexity \d+\.\d+ per token \(spaces counted", output)
    word = json.loads(ok("eval", tiny_word_run, tiny_corpus, "--json"))
    char = json.loads(ok("eval", tiny_run, tiny_corpus, "--json"))
    assert word["perplexity"] == pytest.approx(math.exp(word["loss_nats"]))  # per token
    total = word["loss_nats"] * word["tokens_scored"]
    assert word["perplexity_per_word"] == pytest.approx(math.exp(total / word["words_scored"]))
    assert word["bits_per_character"] == pytest.approx(total / math.log(2) / word["characters_scored"])
    assert word["tokens_scored"] > word["words_scored"] > word["tokens_scored"] / 3  # spaces are tokens, not words
    # the same text, in the same units, from both levels: the figures compare
    assert char["characters_scored"] == pytest.approx(word["characters_scored"], rel=0.02)
    assert char["words_scored"] == pytest.approx(word["words_scored"], rel=0.02)
    assert "perplexity" not in char and char["perplexity_per_word"] > 1
    assert word["bits_per_character_is_lower_bound"] is (word["unknown_tokens"] > 0)


def test_eval_errors(tiny_run, tmp_path):
    one_line_error(run("eval", tiny_run, tmp_path / "missing.txt"), "missing.txt")
    short = tmp_path / "short.txt"
    short.write_text("a", "utf-8")
    one_line_error(run("eval", tiny_run, short))


# ---------------------------------------------------------------- info


def test_info_text(tiny_run):
    output = ok("info", tiny_run)
    for word in ("lstm", "2 layers x 24 units", "embedding 12", "parameters", "rnn", "decoder", "char level",
                 "35 tokens", "tiny.txt", "150 steps", "cpu", "fp32", "bits per character"):
        assert word in output, word


def test_info_json(tiny_run, tiny_corpus):
    description = json.loads(ok("info", tiny_run, "--json"))
    loaded = checkpoint.load(tiny_run)
    assert description["model"]["hidden"] == 24 and description["model"]["layers"] == 2
    assert description["model"]["cell"] == "lstm" and description["model"]["embed"] == 12
    params = description["parameters"]
    assert set(params) == {"embedding", "rnn", "decoder", "total"}
    assert params["embedding"] + params["rnn"] + params["decoder"] == params["total"]
    assert params["total"] == sum(p.numel() for p in loaded.model.parameters())
    vocabulary = description["vocabulary"]
    assert vocabulary["size"] == len(loaded.vocab) and vocabulary["level"] == "char"
    assert vocabulary["sample"] and set(vocabulary["sample"]) <= set(loaded.vocab.tokens)
    assert description["corpus"]["files"][0].endswith("tiny.txt")
    assert description["corpus"]["characters"] == len(tiny_corpus.read_text("utf-8"))
    training = description["training"]
    assert training["steps"] == 150 and training["time_s"] == loaded.info["train_time_s"]
    assert training["device"] == "cpu" and training["precision"] == "fp32"
    metrics = description["metrics"]
    log = [json.loads(line) for line in (tiny_run / "log.jsonl").read_text("utf-8").splitlines()]
    at_best = next(record for record in log if record["step"] == metrics["step"])
    assert training["time_s"] == pytest.approx(at_best["elapsed_s"], abs=0.01)  # the training time when saved
    assert training["tokens_seen"] == at_best["tokens_seen"] == 150 * 8 * 32
    assert metrics["best_val_loss"] == min(record["val_loss"] for record in log if record["val_loss"] is not None)
    assert metrics["best_val_bpc"] == pytest.approx(metrics["best_val_loss"] / math.log(2))


def test_info_word_level(tiny_word_run):
    output = ok("info", tiny_word_run)
    assert "word level" in output and "perplexity" in output


# ---------------------------------------------------------------- the checkpoint argument


@pytest.mark.parametrize("command", [["info"], ["generate", "--prompt", "x", "--length", "2"], ["trace", "x"]])
def test_checkpoint_run_folder_or_its_best(tiny_run, command):
    name, *rest = command
    from_run = ok(name, tiny_run, *rest)
    from_best = ok(name, tiny_run / "best", *rest)
    if name != "generate":
        assert from_run == from_best


def test_unknown_checkpoint_lists_bundled_models(tiny_run):
    line = one_line_error(run("info", "no-such-model"), "no-such-model", "bundled")
    names = checkpoint.bundled_names()
    if names:
        assert all(name in line for name in names)
    else:
        assert "none installed" in line
    for args in (["generate", "no-such-model", "--prompt", "x"], ["trace", "no-such-model", "x"],
                 ["eval", "no-such-model", str(tiny_run)], ["repl", "no-such-model"]):
        one_line_error(run(*args), "no-such-model", "bundled")


def test_a_folder_that_is_not_a_checkpoint(tmp_path):
    one_line_error(run("info", tmp_path), "not a checkpoint")


# ---------------------------------------------------------------- bench


def test_bench_repl_scores_learning_only_on_text_the_model_has_not_read(tmp_path, monkeypatch):
    from lstm_repl.cli import bench
    from lstm_repl.data import catalogue
    from lstm_repl.errors import LstmReplError

    assert "--paste FILE" in bench._held_out_paste("runs/mine-char", None)  # not its sample text, repeated
    monkeypatch.setattr(catalogue, "target_path", lambda entry: tmp_path / "not-fetched.txt")
    assert "lstm-repl corpus get shakespeare" in bench._held_out_paste("shakespeare-char", None)
    given = tmp_path / "held-out.txt"
    given.write_text("Thou art " * 1000, "utf-8")
    text, about = bench._held_out_paste("runs/mine-char", str(given))
    assert len(text) == bench.HELD_OUT_PASTE and about == "held-out.txt"
    given.write_bytes(b"\xff\xfe not text")
    with pytest.raises(LstmReplError, match="not UTF-8"):
        bench._held_out_paste("runs/mine-char", str(given))


def test_bench_generate_reports_each_precision_the_bare_loop_and_the_floor(tiny_run):
    out = ok("bench", "generate", str(tiny_run), "--tokens", "40")
    assert "generate fp32:" in out and "bare loop fp32:" in out and "(the default here)" in out
    assert "reading the fp32 weights once:" in out and "every gate returned: packed" in out


def test_export_writes_a_loadable_model_with_a_card_of_comparable_figures(tiny_run, tiny_word_run, tmp_path):
    for run, level in ((tiny_run, "char"), (tiny_word_run, "word")):
        dest = tmp_path / f"model-{level}"
        ok("export", run, dest, "--command", "lstm-repl train tiny.txt", "--prompt", "First")
        card = (dest / "README.md").read_text("utf-8")
        assert checkpoint.load(dest).vocab.level == level
        held_out = next(line for line in card.splitlines() if line.startswith("| held out"))
        assert re.search(r"\d\.\d{3} bits per character.*perplexity \d+\.\d per word", held_out)
        assert ("per token" in held_out) is (level == "word")
        assert "| val bpc |" in card or "| val bpc " in card
        assert "lstm-repl train tiny.txt" in card and "## Sample" in card
