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
import tempfile
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lstm_repl.model import checkpoint
from lstm_repl.cli.main import cli
from lstm_repl.cli.options import SEED, FiniteFloat
from lstm_repl.config import MAX_SEED, MAX_TEMPERATURE, MIN_TEMPERATURE, SampleConfig
from lstm_repl.errors import ConfigError, LstmReplError
from lstm_repl.shell.colon_commands import COMMAND_NAMES, CommandError, run_command
from lstm_repl.shell.shell_state import Shell
from lstm_repl.session.sampling import Sampler
from lstm_repl.session.session import Session

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


@pytest.mark.parametrize("temperature", ["1e-320", "1e-40", "0.0005", "1e300", "1001"])
def test_temperatures_whose_logits_would_leave_float32_are_one_line(tiny_run, temperature):
    """Before: 1e-40 was 'value cannot be converted to type float without overflow', 1e-320 and
    1e300 an IndexError (NaN probabilities: the sampler ran past the vocabulary)."""
    one_line_error(run("generate", tiny_run, "--prompt", "All", "--temperature", temperature), "temperature")


def test_a_top_p_below_float32s_smallest_number_keeps_the_likeliest_token(tiny_run):
    """Before: 1e-320 is 0 in float32, every token was dropped, and the sampler ran past the vocabulary."""
    args = ["generate", tiny_run, "--prompt", "All", "--length", "20", "--no-echo", "--seed", "1"]
    tiny_p = run(*args, "--temperature", "1", "--top-p", "1e-320")
    greedy = run(*args, "--temperature", "0")
    assert tiny_p.exit_code == 0, tiny_p.output
    assert tiny_p.output == greedy.output


@pytest.mark.slow  # starts a real process
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
    ("0-999999999", ["units are 0-23"]),
    ("0-" + THOUSANDS_OF_DIGITS, ["units are 0-23", "characters"]),
    ("0-23 " * 3, ["more units than the layer's 24"]),
])
def test_unit_ranges_are_checked_before_they_are_expanded(tiny_run, units, words):
    one_line_error(run("trace", tiny_run, "Fir", "--units", units), "--units", *words)


@pytest.mark.parametrize("spec, words", [
    ("1:0=" + THOUSANDS_OF_DIGITS, ["from -1000 to 1000", "5,004 characters"]),
    ("1:" + THOUSANDS_OF_DIGITS + "=1", ["units are 0-23"]),
    (THOUSANDS_OF_DIGITS + ":0=1", ["layers 1-2"]),
    ("1:0=nan", ["from -1000 to 1000"]),
    ("1:0=1e39", ["from -1000 to 1000"]),  # finite, but not in float32: a RuntimeError once written into c
    ("1:0=-1e300", ["from -1000 to 1000"]),
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
    ("eval_tokens", 0, "eval_tokens"), ("seed", -1, "seed"), ("seed", 1 << 64, "too large"),  # JSON: past 64 bits
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


# ---------------------------------------------------------------- property-based: any number, any command line

# What a person, a script or a fuzzer may type where a number is expected.
NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "-nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999", "1e308", "-0", "-0.0",
                     "0", "1", "0.5", "1e-320", "+.5", " 2 ", "1_000", "0x10", "", " ", "--", "2**64"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),  # thousands of digits
    st.text(max_size=12),
)


def finite_float(text: str) -> float | None:
    """What a float option takes: a finite number (as float() reads it) of at most 64 characters."""
    try:
        value = float(text) if len(text) <= 64 else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def whole_number(text: str, high: int | None = None) -> int | None:
    """What a whole-number option from 0 (to `high`) takes, of at most 64 characters."""
    try:
        value = int(text) if len(text) <= 64 else -1
    except ValueError:
        return None
    return value if 0 <= value and (high is None or value <= high) else None


def seed_value(text: str) -> int | None:
    return whole_number(text, MAX_SEED)


def assert_result_or_one_line(result) -> bool:
    """True for a right result (exit 0), False for one line of error; anything else fails."""
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    if result.exit_code == 0:
        return True
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and len(lines[0]) < 600, result.output
    return False


@st.composite
def one_hostile(draw, valid: dict):
    """A value each option takes, then (six times in seven, say) one of them replaced by anything."""
    values = {name: draw(strategy) for name, strategy in valid.items()}
    hostile = draw(st.sampled_from([None, *valid]))
    if hostile is not None:
        values[hostile] = draw(NUMBER_TEXT)
    return values


def floats_between(low: float, high: float):
    return st.floats(min_value=low, max_value=high).map(repr)


SEEDS = st.integers(0, MAX_SEED).map(str)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(one_hostile({"temperature": st.one_of(st.just("0"), floats_between(MIN_TEMPERATURE, MAX_TEMPERATURE)),
                    "top-p": floats_between(1e-320, 1.0), "top-k": st.integers(0, 50).map(str), "seed": SEEDS}))
def test_generate_takes_any_number_text_or_says_why_in_one_line(tiny_run, values):
    result = run("generate", tiny_run, "--prompt", "All", "--length", "3", "--no-echo",
                 *(f"--{name}={value}" for name, value in values.items()))
    accepted = assert_result_or_one_line(result)
    t, p, s = finite_float(values["temperature"]), finite_float(values["top-p"]), seed_value(values["seed"])
    temperature_ok = t is not None and (t == 0 or MIN_TEMPERATURE <= t <= MAX_TEMPERATURE)
    k = whole_number(values["top-k"])
    assert accepted == (temperature_ok and p is not None and 0 < p <= 1 and s is not None and k is not None), \
        result.output
    if accepted:
        assert len(result.output.strip()) > 0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(one_hostile({"lr": floats_between(1e-4, 1e-2), "dropout": floats_between(0, 0.5),
                    "warmup": floats_between(0, 0.5), "grad-clip": floats_between(0.1, 10),
                    "val-fraction": floats_between(0.05, 0.5), "seed": SEEDS}))
def test_train_takes_any_number_text_or_says_why_in_one_line(tiny_corpus, values):
    with tempfile.TemporaryDirectory() as folder:
        result = run("train", tiny_corpus, "--out", Path(folder) / "run", "--max-steps", "1", "--hidden", "8",
                     "--embed", "4", "--layers", "1", "--batch-size", "2", "--seq-len", "8", "--eval-interval", "1",
                     "--precision", "fp32", *(f"--{name}={value}" for name, value in values.items()))
        accepted = assert_result_or_one_line(result)
        numbers = {name: finite_float(value) for name, value in values.items() if name != "seed"}
        ok = None not in numbers.values() and seed_value(values["seed"]) is not None
        if ok:
            ok = (0 < numbers["lr"] <= 100 and 0 <= numbers["dropout"] < 1 and 0 <= numbers["warmup"] < 1
                  and numbers["grad-clip"] > 0 and 0 < numbers["val-fraction"] < 1)
        if accepted or not ok:  # settings that are each fine may still leave too few tokens: one line
            assert accepted == ok, result.output
        if accepted:
            assert (Path(folder) / "run" / "best" / "config.json").is_file()


COMMAND_LINE = st.one_of(
    st.tuples(st.sampled_from(COMMAND_NAMES + [":q", ":"]), st.one_of(NUMBER_TEXT, st.text(max_size=30)))
    .map(" ".join),
    st.tuples(st.sampled_from([":clamp", ":ablate", ":force"]), NUMBER_TEXT, NUMBER_TEXT, NUMBER_TEXT)
    .map(lambda parts: f"{parts[0]} {parts[1]}:{parts[2]}={parts[3]}"),
    st.text(max_size=40).map(lambda text: ":" + text),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=COMMAND_LINE)
@example(line=":set " + "9" * 506)  # an unknown setting's name was echoed whole
@example(line=":open " + "9" * 560)  # and a file name too long to open
def test_any_command_line_in_the_shell_is_a_result_or_one_line_and_enter_still_streams(loaded, line):
    shell = Shell(Session(loaded), load_checkpoint=checkpoint.load, writes_files=False)
    shell.session.set_text("All: Speak, speak. You are")  # enough tokens for :find, too few for a regex to run away
    try:
        result = run_command(shell, line)
        assert "\n" not in result.message
    except CommandError as exc:
        assert str(exc) and "\n" not in str(exc) and len(str(exc)) < 600, str(exc)
    except LstmReplError as exc:  # a library error (:load's): the shell shows its first line
        assert str(exc).splitlines()[0] and len(str(exc).splitlines()[0]) < 600, str(exc)
    pieces = list(shell.session.stream(3))  # Enter: whatever the command set, sampling works
    assert len(pieces) == 3
    settings_now = shell.session.settings.sampling
    assert math.isfinite(settings_now.temperature) and 0 < settings_now.top_p <= 1


@pytest.mark.parametrize("line", [
    ":len " + THOUSANDS_OF_DIGITS, ":units 1 " + THOUSANDS_OF_DIGITS, ":layer " + THOUSANDS_OF_DIGITS,
    ":seed " + THOUSANDS_OF_DIGITS, ":clamp 1:" + THOUSANDS_OF_DIGITS + "=1", ":clamp 1:0=" + THOUSANDS_OF_DIGITS,
    ":temp " + THOUSANDS_OF_DIGITS,
])
def test_shell_numbers_of_thousands_of_digits_are_named_by_their_start(loaded, line):
    shell = Shell(Session(loaded), writes_files=False)
    with pytest.raises(LstmReplError) as info:
        run_command(shell, line)
    message = str(info.value)
    assert "5,00" in message and len(message) < 200, message  # "(5,000 characters)" or "(5,004 characters)"
