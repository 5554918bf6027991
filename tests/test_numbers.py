"""Every number a user can give (issue 22, point 6): non-finite floats, seeds beyond what torch
takes, sizes that cannot be allocated, ranges of a billion units, regular expressions that
overflow, a resumed run whose config says eval_interval 0. Each ends in one line."""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from lstm_repl.cli import cli
from lstm_repl.commands.options import SEED, FiniteFloat
from lstm_repl.config import MAX_SEED, SampleConfig
from lstm_repl.errors import ConfigError
from lstm_repl.sampling import Sampler

NON_FINITE = ["nan", "NaN", "inf", "-inf", "+Infinity", "1e999", "-1e999"]
THOUSANDS_OF_DIGITS = "9" * 5000


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def one_line_error(result, *words: str) -> str:
    assert result.exit_code not in (0, None), result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert len(lines[0]) < 400, lines[0]  # a number of 5,000 digits is named by its start
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


def all_commands(group: click.Group = cli, ctx: click.Context | None = None):
    ctx = ctx or click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield command
        if isinstance(command, click.Group):
            yield from all_commands(command, ctx)


def test_every_float_option_is_a_finite_float_and_every_seed_is_bounded():
    """A plain click.FloatRange lets NaN through (every comparison with it is false)."""
    floats, seeds = [], []
    for command in [cli, *all_commands()]:
        for param in command.params:
            if isinstance(param.type, click.types.FloatParamType):
                floats.append(param)
                assert isinstance(param.type, FiniteFloat), f"{command.name} {param.opts}: {param.type!r}"
            if param.name == "seed":
                seeds.append(param)
                assert param.type is SEED, f"{command.name} --seed: {param.type!r}"
    assert len(floats) > 10 and len(seeds) >= 4


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("command, option", [
    (["generate", "CKPT", "--prompt", "x"], "--temperature"),
    (["generate", "CKPT", "--prompt", "x"], "--top-p"),
    (["repl", "CKPT"], "--temperature"),
    (["train", "CORPUS", "--max-steps", "1"], "--lr"),
    (["train", "CORPUS", "--max-steps", "1"], "--dropout"),
    (["train", "CORPUS", "--max-steps", "1"], "--warmup"),
    (["train", "CORPUS", "--max-steps", "1"], "--grad-clip"),
    (["train", "CORPUS", "--max-steps", "1"], "--weight-decay"),
    (["train", "CORPUS", "--max-steps", "1"], "--val-fraction"),
    (["train", "CORPUS", "--max-steps", "1"], "--epochs"),
    (["replay", "RECORDING"], "--speed"),
])
def test_non_finite_floats_are_one_line(tiny_run, tiny_corpus, tmp_path, command, option, value):
    args = [{"CKPT": tiny_run, "CORPUS": tiny_corpus, "RECORDING": tmp_path / "none.jsonl"}.get(a, a) for a in command]
    out = ["--out", tmp_path / "out"] if command[0] == "train" else []
    result = run(*args, *out, option, value)
    one_line_error(result, option)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seed", [str(MAX_SEED + 1), "-1", THOUSANDS_OF_DIGITS])
def test_seeds_torch_cannot_take_are_one_line(tiny_run, tiny_corpus, tmp_path, seed):
    one_line_error(run("generate", tiny_run, "--prompt", "x", "--seed", seed), "--seed")
    one_line_error(run("repl", tiny_run, "--seed", seed, input="All\n"), "--seed")
    one_line_error(run("train", tiny_corpus, "--out", tmp_path / "out", "--max-steps", "1", "--seed", seed), "--seed")


def test_the_largest_seed_torch_takes_generates(tiny_run):
    args = ["generate", tiny_run, "--prompt", "All", "--length", "20", "--seed", str(MAX_SEED), "--no-echo"]
    first, again = run(*args), run(*args)
    assert first.exit_code == 0, first.output
    assert first.output == again.output and len(first.output.strip()) > 0


def test_the_sampler_refuses_a_non_finite_temperature():
    for value in (math.nan, math.inf):
        with pytest.raises(ConfigError, match="temperature"):
            SampleConfig(temperature=value)
    config = SampleConfig()
    config.temperature = math.nan  # past the dataclass's check: the sampler checks again
    with pytest.raises(ConfigError, match="temperature"):
        Sampler(config)
    with pytest.raises(ConfigError, match="seed"):
        SampleConfig(seed=MAX_SEED + 1)


def test_a_model_too_big_to_allocate_is_one_line(tiny_corpus, tmp_path):
    """--hidden 30000 asks for 14.4 GB at once; with the address space capped the allocation
    fails for real, whatever the machine's memory."""
    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.run(
        [sys.executable, "-m", "lstm_repl", "train", str(tiny_corpus), "--out", str(tmp_path / "out"),
         "--hidden", "30000", "--max-steps", "1", "--batch-size", "2", "--seq-len", "8", "--precision", "fp32"],
        capture_output=True, text=True, timeout=120, preexec_fn=cap_memory, env=env)
    assert child.returncode == 1, child.stderr
    lines = [line for line in child.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: not enough memory"), child.stderr
    assert "--hidden" in lines[0]


def test_layers_beyond_any_buildable_model_are_refused_at_once(tiny_corpus, tmp_path):
    one_line_error(run("train", tiny_corpus, "--out", tmp_path / "out", "--layers", "100000", "--max-steps", "1"),
                   "100,000 layers", "at most 256")
    assert not (tmp_path / "out" / "best").exists()


@pytest.mark.parametrize("units, words", [
    ("0-999999999", ["between 0 and 23"]),
    ("0-" + THOUSANDS_OF_DIGITS, ["not a unit number"]),
    ("0-23 " * 3, ["more units than the layer's 24"]),
])
def test_unit_ranges_are_checked_before_they_are_expanded(tiny_run, units, words):
    one_line_error(run("trace", tiny_run, "Fir", "--units", units), "--units", *words)


@pytest.mark.parametrize("spec, words", [
    ("1:0=" + THOUSANDS_OF_DIGITS, ["finite number", "5,004 characters"]),
    ("1:" + THOUSANDS_OF_DIGITS + "=1", ["units are 0-23"]),
    (THOUSANDS_OF_DIGITS + ":0=1", ["layers 1-2"]),
    ("1:0=nan", ["finite number"]),
])
def test_clamp_values_and_units_of_thousands_of_digits_are_one_line(tiny_run, spec, words):
    one_line_error(run("trace", tiny_run, "Fir", "--clamp", spec), "clamp", *words)


@pytest.mark.parametrize("pattern, words", [
    ("a{4294967296}", ["repetition number is too large"]),
    ("(" * 100_000 + ")" * 100_000, ["200,000 characters", "nested too deeply"]),
    ("[", ["unterminated"]),
])
def test_regular_expressions_that_cannot_compile_are_one_line(tiny_run, tiny_corpus, pattern, words):
    one_line_error(run("units", tiny_run, tiny_corpus, "--regex", pattern), "--regex", *words)


@pytest.mark.parametrize("field, value, words", [
    ("eval_interval", 0, "--eval-interval must be at least 1"), ("log_interval", 0, "--log-interval"),
    ("eval_tokens", 0, "eval_tokens"), ("seed", -1, "seed"), ("seed", 1 << 64, "seed"),
    ("min_lr_ratio", 2.0, "min_lr_ratio"), ("sample_length", -1, "sample_length"),
])
def test_a_resumed_config_with_a_value_training_cannot_use_is_one_line(tiny_run, tmp_path, field, value, words):
    """Before: eval_interval 0 was a ZeroDivisionError once training started."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    config_path = run_dir / "last" / "config.json"
    config = json.loads(config_path.read_text())
    config["training"][field] = value
    config_path.write_text(json.dumps(config))
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    one_line_error(run("train", "--resume", run_dir, "--max-steps", "200"), words)
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
