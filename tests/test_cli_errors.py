"""Every error a user can cause ends as one line, `error: ...`, a non-zero exit and no traceback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from lstm_repl.cli.main import cli
from helpers import one_line_error

# Small enough that nothing here trains for more than a moment, even when the error comes late.
TINY = ["--hidden", "16", "--embed", "8", "--layers", "1", "--batch-size", "4", "--seq-len", "16",
        "--max-steps", "5", "--eval-interval", "5", "--precision", "fp32"]


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def text_file(tmp_path) -> Path:
    path = tmp_path / "ok.txt"
    path.write_text("one two three four five six seven eight nine ten.\n" * 40, "utf-8")
    return path


# ---------------------------------------------------------------- the corpus


def test_missing_corpus_file(tmp_path):
    result = run("train", tmp_path / "missing.txt", "--out", tmp_path / "out", *TINY)
    one_line_error(result, "missing.txt", "no such file")


def test_no_corpus_given(tmp_path):
    result = run("train", "--out", tmp_path / "out", *TINY)
    one_line_error(result, "corpus")


def test_binary_corpus(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(range(256)))
    result = run("train", path, "--out", tmp_path / "out", *TINY)
    one_line_error(result, "photo.jpg", "binary", "offset 4")


def test_non_utf8_corpus_names_the_offset(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes(b"plain ascii then " + "déjà vu\n".encode("latin-1"))
    result = run("train", path, "--out", tmp_path / "out", *TINY)
    one_line_error(result, "latin.txt", "offset 18", "--encoding")


def test_non_utf8_corpus_in_a_folder(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("fine text\n" * 50, "utf-8")
    (folder / "b.txt").write_bytes(b"abc\x80def")
    result = run("train", folder, "--out", tmp_path / "out", *TINY)
    one_line_error(result, "b.txt", "offset 3")


def test_unknown_encoding(text_file, tmp_path):
    result = run("train", text_file, "--encoding", "klingon-8", "--out", tmp_path / "out", *TINY)
    one_line_error(result, "klingon-8")


@pytest.mark.parametrize("content", ["", "\n\n   \n"])
def test_empty_corpus(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_text(content, "utf-8")
    result = run("train", path, "--out", tmp_path / "out", *TINY)
    one_line_error(result, "empty")


def test_empty_folder(tmp_path):
    (tmp_path / "nothing").mkdir()
    result = run("train", tmp_path / "nothing", "--out", tmp_path / "out", *TINY)
    one_line_error(result, "no files")


def test_too_small_corpus(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text("hello there\n", "utf-8")
    result = run("train", path, "--out", tmp_path / "out", *TINY)
    line = one_line_error(result, "too small", "12 training tokens", "would fit")
    assert "68" in line  # one batch of 4 streams x 17 tokens


def test_too_small_corpus_with_default_settings(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text("To be, or not to be, that is the question.\n" * 50, "utf-8")  # 2,200 characters
    result = run("train", path, "--out", tmp_path / "out", "--max-steps", "1", "--hidden", "8")
    one_line_error(result, "too small", "--batch-size")


# ---------------------------------------------------------------- flag values


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--lr", "abc"], ["--lr", "abc"]),
        (["--lr", "-1"], ["--lr"]),
        (["--time", "xyz"], ["--time", "xyz"]),
        (["--time", "0s"], ["--time"]),
        (["--max-steps", "0"], ["--max-steps"]),
        (["--hidden", "many"], ["--hidden"]),
        (["--level", "byte"], ["--level"]),
        (["--device", "tpu"], ["--device"]),
        (["--val-fraction", "1.5"], ["--val-fraction"]),
        (["--no-such-flag"], ["--no-such-flag"]),
        (["--tie-weights"], ["tie-weights"]),  # --embed 8 != --hidden 16
    ],
)
def test_bad_flag_values(text_file, tmp_path, flags, words):
    result = run("train", text_file, "--out", tmp_path / "out", *TINY, *flags)
    one_line_error(result, *words)


def test_unknown_command():
    one_line_error(run("trian"), "trian")


# ---------------------------------------------------------------- the output folder


def test_out_under_a_regular_file(text_file, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", "utf-8")
    result = run("train", text_file, "--out", blocker / "run", *TINY)
    one_line_error(result, "--out")


def test_out_is_a_regular_file(text_file, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", "utf-8")
    result = run("train", text_file, "--out", blocker, *TINY)
    one_line_error(result, "--out")


def test_out_in_a_read_only_folder(text_file, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        result = run("train", text_file, "--out", locked / "run", *TINY)
        one_line_error(result, "--out")
    finally:
        locked.chmod(0o700)


def test_out_that_already_holds_a_run(tiny_run, tiny_corpus, tmp_path):
    out = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    before = (out / "best" / "model.safetensors").read_bytes()
    result = run("train", tiny_corpus, "--out", out, *TINY)
    one_line_error(result, "already", "--resume", "--overwrite")
    assert (out / "best" / "model.safetensors").read_bytes() == before


# ---------------------------------------------------------------- resuming


def test_resume_of_a_broken_checkpoint(tiny_run, tmp_path):
    out = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    weights = out / "last" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    result = run("train", "--resume", out)
    one_line_error(result, "model.safetensors")


def test_resume_of_a_checkpoint_with_a_broken_config(tiny_run, tmp_path):
    out = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    (out / "last" / "config.json").write_text("{oops", "utf-8")
    result = run("train", "--resume", out)
    one_line_error(result, "config.json")


@pytest.mark.parametrize("content", ["{oops", "[]", "{}", '{"position": 3}', "null"])
def test_resume_of_a_broken_training_state(tiny_run, tmp_path, content):
    out = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    (out / "last" / "resume.json").write_text(content, "utf-8")
    result = run("train", "--resume", out)
    one_line_error(result)


def test_resume_of_truncated_optimizer_state(tiny_run, tmp_path):
    out = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    tensors = out / "last" / "resume.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:-10])
    result = run("train", "--resume", out)
    one_line_error(result, "resume.safetensors")


def test_resume_of_a_missing_folder(tmp_path):
    result = run("train", "--resume", tmp_path / "nowhere")
    one_line_error(result, "nowhere")


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "plain").mkdir()
    result = run("train", "--resume", tmp_path / "plain")
    one_line_error(result, "not a checkpoint")


def test_resume_changing_the_model_shape(tiny_run, tmp_path):
    out = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    result = run("train", "--resume", out, "--hidden", "32")
    one_line_error(result, "--hidden", "resum")


# ---------------------------------------------------------------- the device


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is available here")
def test_device_cuda_without_cuda(tiny_corpus, tmp_path):
    result = run("train", tiny_corpus, "--out", tmp_path / "out", *TINY, "--device", "cuda")
    one_line_error(result, "cuda", "--device cpu")
