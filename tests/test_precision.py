"""Precision is decided by what runs here: probed once, cached, refused in one line when it does not."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from lstm_repl.model import checkpoint

from lstm_repl.model import precision
from lstm_repl.cli.main import cli
from lstm_repl.errors import ConfigError
from lstm_repl.model.precision import Probe, resolve_generation_precision, resolve_training_precision
from helpers import train_tiny
from helpers import one_line_error

NO = Probe(False, "could not create a primitive descriptor")


def fake(**answers: Probe):
    """A probe that answers per precision; what it is not told runs at fp32 speed."""
    return lambda device, name, cell: answers.get(name, Probe(True, speedup=1.0))


@pytest.mark.parametrize("device, answers, chosen", [
    ("cpu", {"bf16": NO, "fp16": NO}, "fp32"),  # AVX2: oneDNN has no bf16 LSTM
    ("cpu", {"bf16": Probe(True, speedup=2.4), "fp16": NO}, "bf16"),  # AMX
    ("cpu", {"bf16": Probe(True, speedup=0.8), "fp16": Probe(True, speedup=0.5)}, "fp32"),  # emulated: slower
    ("cuda", {"bf16": Probe(True, speedup=3.0), "fp16": Probe(True, speedup=3.1)}, "bf16"),  # A100: alike, no scaling
    ("cuda", {"bf16": Probe(True, speedup=0.9), "fp16": Probe(True, speedup=4.0)}, "fp16"),  # V100: fp16 cores
    ("cuda", {"bf16": NO, "fp16": NO}, "fp32"),
    ("mps", {"bf16": NO, "fp16": Probe(True, speedup=1.1)}, "fp32"),  # runs, but not worth it
    ("mps", {"bf16": NO, "fp16": Probe(True, speedup=1.6)}, "fp16"),
])
def test_auto_takes_a_lower_precision_only_where_it_runs_and_is_faster(device, answers, chosen):
    assert resolve_training_precision("auto", torch.device(device), "lstm", fake(**answers)) == chosen


@pytest.mark.parametrize("device, named", [("cpu", "this CPU ("), ("cuda", "the GPU ("), ("mps", "Apple's MPS")])
def test_an_explicit_precision_that_does_not_run_is_refused_naming_the_device(device, named):
    with pytest.raises(ConfigError) as error:
        resolve_training_precision("bf16", torch.device(device), "lstm", fake(bf16=NO))
    message = str(error.value)
    assert message.startswith("--precision bf16: ") and named in message and "use --precision fp32 or auto" in message
    assert "\n" not in message and "primitive descriptor" in message
    assert resolve_training_precision("fp16", torch.device(device), "gru", fake(bf16=NO)) == "fp16"


@pytest.mark.parametrize("device, answer, chosen", [
    ("cpu", Probe(True), "fp16"), ("cpu", NO, "fp32"), ("cuda", Probe(True), "fp32"), ("mps", Probe(True), "fp32"),
])
def test_generation_takes_fp16_weights_on_a_cpu_where_the_packed_step_runs(device, answer, chosen):
    probe = lambda d, name, cell: answer  # noqa: E731
    assert resolve_generation_precision("auto", torch.device(device), "lstm", probe) == chosen
    if not answer.works:
        with pytest.raises(ConfigError, match="cannot generate in float16"):
            resolve_generation_precision("fp16", torch.device(device), "lstm", probe)


def test_a_probe_runs_once_then_its_answer_is_kept_in_memory_and_on_disk(monkeypatch, tmp_path):
    monkeypatch.setenv("LSTM_REPL_CACHE", str(tmp_path))
    calls = []

    def counted(device, name, cell):
        calls.append(name)
        return Probe(True)

    monkeypatch.setattr(precision, "try_training", counted)
    monkeypatch.setattr(precision, "measure_speedup", lambda device, name, cell: 1.7)
    cpu = torch.device("cpu")
    precision.forget_probes()
    assert precision.probe_training(cpu, "bf16", "gru") == Probe(True, speedup=1.7)
    precision.forget_probes()  # a new process: the answer comes from the cache folder
    assert precision.probe_training(cpu, "bf16", "gru") == Probe(True, speedup=1.7) and calls == ["bf16"]
    (tmp_path / "probes.json").write_text("{not json", "utf-8")  # damaged: probed again, not trusted
    precision.forget_probes()
    assert precision.probe_training(cpu, "bf16", "gru").works and calls == ["bf16", "bf16"]
    precision.forget_probes()


def test_the_probe_of_a_cpu_capped_at_avx2_depends_on_the_caps(monkeypatch):
    cpu = torch.device("cpu")
    for cap in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"):  # scripts/test runs this file under the caps too
        monkeypatch.delenv(cap, raising=False)
    plain = precision.machine_key(cpu)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert precision.machine_key(cpu) != plain


def test_explicit_bf16_trains_where_it_runs_or_says_why_in_one_line(tiny_corpus, tmp_path):
    """The fused LSTM in bf16 on this CPU, for real: it trains where the probe says it runs."""
    works = precision.probe_training(torch.device("cpu"), "bf16", "lstm").works
    args = ["train", str(tiny_corpus), "--out", str(tmp_path / "run"), "--hidden", "16", "--embed", "8",
            "--batch-size", "4", "--seq-len", "16", "--max-steps", "6", "--eval-interval", "3", "--precision", "bf16"]
    result = CliRunner().invoke(cli, args)
    if works:
        assert result.exit_code == 0, result.output
        assert checkpoint.load(tmp_path / "run").info["precision"] == "bf16"
    else:
        one_line_error(result, "--precision bf16", "this cpu", "use --precision fp32 or auto")
        assert not (tmp_path / "run" / "last").exists()


def test_auto_trains_in_what_was_timed_on_its_own_model(tiny_corpus, tmp_path):
    """Not the probe's stand-in (hidden 256), which on an AVX-512 CPU with bf16 measures bf16 faster
    where this 24-wide model runs slower in it: the run trains in the precision its plan took."""
    out = train_tiny(tiny_corpus, tmp_path / "run", "--precision", "auto", steps=6)
    info = checkpoint.load(out).info
    rates = info["plan"]["precision_rates"]
    assert info["precision"] == info["plan"]["precision"]
    assert rates.keys() >= {"fp32", info["precision"]}
    bar = precision.MIN_SPEEDUP * rates["fp32"]
    if info["precision"] == "fp32":
        assert all(rate < bar for name, rate in rates.items() if name != "fp32")
    else:
        assert rates[info["precision"]] >= bar


def test_bench_train_measures_what_runs_and_says_what_it_skipped():
    result = CliRunner().invoke(cli, ["bench", "train", "--hidden", "16", "--embed", "8", "--batch-size", "4",
                                      "--seq-len", "8", "--steps", "2", "--precision", "fp32,bf16,fp16"])
    assert result.exit_code == 0, result.output
    for name in ("bf16", "fp16"):
        probe = precision.probe_training(torch.device("cpu"), name, "lstm")
        line = next(line for line in result.output.splitlines() if line.strip().startswith(f"{name}:"))
        assert ("skipped" in line and probe.why in line) if not probe.works else "project" in line, line
    assert any(line.strip().startswith("fp32: project") for line in result.output.splitlines())


CAPPED = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


@pytest.mark.slow  # starts a real process
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the AVX2 cap is for x86 CPUs")
def test_under_an_avx2_cap_bf16_is_refused_in_one_line_and_auto_trains_in_fp32(tiny_corpus, tmp_path):
    """An ordinary laptop's CPU, on a newer one: oneDNN's AVX2 kernels have no bf16 LSTM."""
    env = {**os.environ, **CAPPED, "LSTM_REPL_CACHE": str(tmp_path / "cache")}
    common = [str(tiny_corpus), "--hidden", "16", "--embed", "8", "--batch-size", "4", "--seq-len", "16",
              "--max-steps", "4", "--eval-interval", "2"]

    def train(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lstm_repl", "train", *common, *args], env=env,
                              capture_output=True, text=True, timeout=300)

    refused = train("--out", str(tmp_path / "bf16"), "--precision", "bf16")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.startswith("error: --precision bf16: this CPU (") and refused.stderr.count("\n") == 1
    auto = train("--out", str(tmp_path / "auto"))
    assert auto.returncode == 0, auto.stderr
    assert checkpoint.load(tmp_path / "auto").info["precision"] == "fp32"


def test_a_probe_leaves_the_caller_s_random_stream_alone():
    cpu = torch.device("cpu")
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    precision.try_training(cpu, "bf16", "lstm")
    precision.try_generation(cpu, "fp16")
    precision.measure_speedup(cpu, "bf16", "rnn", reps=1)
    assert torch.equal(torch.rand(3), expected)
