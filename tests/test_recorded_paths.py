"""Checkpoints, model cards and unit labels record the corpus's file names and sha256, never where
on the machine they lay; only last/resume.json keeps the paths, for --resume on that machine."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from click.testing import CliRunner

from lstm_repl.model import checkpoint

from lstm_repl.training import runs
from lstm_repl.cli.main import cli
from lstm_repl.config import TrainConfig
from helpers import TINY_TEXT, train_tiny

ROOT = Path(__file__).resolve().parent.parent
MACHINE_PATH = re.compile(r"/(work|tmp|home|root|Users|opt|mnt|private)/")


def _texts(folder: Path) -> str:
    return "\n".join(p.read_text("utf-8") for p in sorted(folder.iterdir()) if p.suffix in (".json", ".md"))


def test_checkpoints_record_the_file_names_and_only_last_resume_json_the_paths(tiny_run, tiny_corpus):
    where = str(tiny_corpus.resolve().parent)
    for name in ("best", "last"):
        config = json.loads((tiny_run / name / "config.json").read_text("utf-8"))
        assert config["corpus"]["files"] == ["tiny.txt"] and len(config["corpus"]["sha256"]) == 64
        assert where not in (tiny_run / name / "config.json").read_text("utf-8")
    resume = json.loads((tiny_run / "last" / "resume.json").read_text("utf-8"))
    assert resume["corpus_paths"] == [str(tiny_corpus.resolve())]


def test_a_folder_corpus_records_the_folder_s_name_and_the_paths_inside_it(tmp_path, monkeypatch):
    texts = tmp_path / "deep" / "texts"
    (texts / "sub").mkdir(parents=True)
    (texts / "a.txt").write_text(TINY_TEXT * 10)
    (texts / "sub" / "b.txt").write_text(TINY_TEXT * 10)
    model = {"hidden": 8, "embed": 4, "layers": 1}
    config = TrainConfig(batch_size=2, seq_len=8, max_steps=1, precision="fp32")
    trainer = runs.new_run([str(texts)], config, model, tmp_path / "run", False)
    assert trainer.setup.corpus_info["files"] == ["texts/a.txt", "texts/sub/b.txt"]
    assert trainer.setup.corpus_paths == [str(texts / "a.txt"), str(texts / "sub" / "b.txt")]
    monkeypatch.chdir(texts)
    assert runs.new_run(["."], config, model, tmp_path / "run2", False).setup.corpus_info["files"] == \
        ["texts/a.txt", "texts/sub/b.txt"]


def test_a_run_that_recorded_paths_resumes_and_from_then_on_records_names(tiny_corpus, tmp_path):
    out = train_tiny(tiny_corpus, tmp_path / "run", steps=10)
    config_file, resume_file = out / "last" / "config.json", out / "last" / "resume.json"
    config = json.loads(config_file.read_text("utf-8"))
    config["corpus"]["files"] = [str(tiny_corpus.resolve())]  # as runs made before this release
    config_file.write_text(json.dumps(config), "utf-8")
    resume = json.loads(resume_file.read_text("utf-8"))
    del resume["corpus_paths"]
    resume_file.write_text(json.dumps(resume), "utf-8")
    result = CliRunner().invoke(cli, ["train", "--resume", str(out), "--max-steps", "14"])
    assert result.exit_code == 0, result.output
    assert json.loads(config_file.read_text("utf-8"))["corpus"]["files"] == ["tiny.txt"]
    assert json.loads(resume_file.read_text("utf-8"))["corpus_paths"] == [str(tiny_corpus.resolve())]


def test_a_resume_that_cannot_know_where_the_corpus_lies_asks_for_it(tiny_corpus, tmp_path):
    out = train_tiny(tiny_corpus, tmp_path / "run", steps=10)
    resume_file = out / "last" / "resume.json"
    resume = json.loads(resume_file.read_text("utf-8"))
    del resume["corpus_paths"]
    resume_file.write_text(json.dumps(resume), "utf-8")
    result = CliRunner().invoke(cli, ["train", "--resume", str(out), "--max-steps", "14"])
    assert result.exit_code == 1 and "pass the corpus files after --resume" in result.output, result.output
    result = CliRunner().invoke(cli, ["train", "--resume", str(out), str(tiny_corpus), "--max-steps", "14"])
    assert result.exit_code == 0, result.output


def test_an_export_and_its_card_hold_no_path_and_the_card_is_measured_on_the_run_s_corpus(tiny_run, tmp_path):
    dest = tmp_path / "model"
    result = CliRunner().invoke(cli, ["export", str(tiny_run), str(dest), "--command", "lstm-repl train tiny.txt"])
    assert result.exit_code == 0, result.output
    assert not MACHINE_PATH.search(_texts(dest)), MACHINE_PATH.search(_texts(dest))
    card = (dest / "README.md").read_text("utf-8")
    assert "| corpus | tiny.txt (" in card and "| held out" in card


def test_a_card_leaves_out_the_held_out_row_when_the_corpus_is_no_longer_the_one_trained_on(tiny_run, tmp_path):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    other = tmp_path / "tiny.txt"
    other.write_text("Another text altogether.\n" * 50)
    resume_file = run / "last" / "resume.json"
    resume = json.loads(resume_file.read_text("utf-8"))
    resume_file.write_text(json.dumps({**resume, "corpus_paths": [str(other)]}), "utf-8")
    result = CliRunner().invoke(cli, ["export", str(run), str(tmp_path / "model"), "--command", "c"])
    assert result.exit_code == 0, result.output
    assert "| held out" not in (tmp_path / "model" / "README.md").read_text("utf-8")


def test_unit_labels_record_the_text_s_name(tiny_run, tiny_corpus, tmp_path):
    model = Path(shutil.copytree(tiny_run / "best", tmp_path / "model"))
    result = CliRunner().invoke(cli, ["units", str(model), str(tiny_corpus), "--feature", "newline", "--save"])
    assert result.exit_code == 0, result.output
    labels = json.loads((model / "units.json").read_text("utf-8"))["labels"]
    assert labels and {entry["measured_on"] for entry in labels} == {f"{len(TINY_TEXT * 30):,} characters of tiny.txt"}


def test_the_bundled_models_carry_no_path_of_the_machines_they_were_made_on():
    folders = sorted(p.parent for p in (ROOT / "checkpoints").glob("*/config.json"))
    assert folders
    for folder in folders:
        found = MACHINE_PATH.search(_texts(folder))
        assert not found, (folder.name, found)
        assert checkpoint.load(folder).info["corpus"]["files"] == [
            {"python-char": "python.txt"}.get(folder.name, "shakespeare.txt")]
        labels = json.loads((folder / "units.json").read_text("utf-8"))["labels"]
        assert labels and not any("/" in e["measured_on"] or "\\" in e["measured_on"] for e in labels)
