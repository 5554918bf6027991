"""atomic: one way to write a file or a folder all or nothing, one naming of temporaries, one cleanup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lstm_repl.atomic import aside_path, atomic_file, atomic_folder, remove_stale, temporary_sibling


def _dead_pid() -> int:
    """The id of a process that has ended (a writer killed earlier)."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


def test_a_file_is_replaced_only_when_the_block_ends_well(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("before")
    with pytest.raises(RuntimeError):
        with atomic_file(path) as handle:
            handle.write("half")
            raise RuntimeError("stopped")
    assert path.read_text() == "before" and sorted(os.listdir(tmp_path)) == ["notes.txt"]
    with atomic_file(path) as handle:
        handle.write("after")
    assert path.read_text() == "after" and sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_a_folder_is_swapped_in_whole_and_the_old_one_removed(tmp_path):
    path = tmp_path / "best"
    with atomic_folder(path) as folder:
        (folder / "a").write_text("1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(path) as folder:
            (folder / "a").write_text("2")
            raise KeyboardInterrupt
    assert (path / "a").read_text() == "1" and sorted(os.listdir(tmp_path)) == ["best"]
    with atomic_folder(path) as folder:
        (folder / "a").write_text("3")
    assert (path / "a").read_text() == "3" and sorted(os.listdir(tmp_path)) == ["best"]


def test_every_temporary_is_named_one_way_beside_its_target(tmp_path):
    name = temporary_sibling(tmp_path / "log.jsonl").name
    assert name.startswith(f".log.jsonl.tmp-{os.getpid()}-") and temporary_sibling(tmp_path / "x") != \
        temporary_sibling(tmp_path / "x")


def test_what_a_killed_writer_left_is_removed_and_a_live_writers_temporary_stays(tmp_path):
    path = tmp_path / "ids.uint8"
    killed = tmp_path / f".ids.uint8.tmp-{_dead_pid()}-0badc0de"
    live = tmp_path / f".ids.uint8.tmp-{os.getpid()}-0badc0de"  # (this process: still running)
    others = [tmp_path / name for name in ("ids.uint8.tmp", ".ids.uint8.tmp", ".other.tmp-1-ab", ".ids.uint8.old")]
    for file in (killed, live, *others):
        file.write_bytes(b"half written")
    (tmp_path / f".ids.uint8.tmp-{_dead_pid()}-1234abcd").mkdir()
    with atomic_file(path, "wb") as handle:
        handle.write(b"whole")
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, live.name, *(p.name for p in others)])


def test_a_copy_set_aside_is_removed_only_once_its_successor_is_whole(tmp_path):
    path = tmp_path / "best"
    aside_path(path).mkdir()
    assert remove_stale(path, whole=lambda p: (p / "config.json").is_file()) == []
    path.mkdir()
    (path / "config.json").write_text("{}")
    assert remove_stale(path, whole=lambda p: (p / "config.json").is_file()) == [aside_path(path)]
    assert remove_stale(path) == []  # without `whole`, an aside copy is never touched


def test_a_failed_write_raises_oserror_for_the_caller_and_leaves_the_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("as it was")
    with pytest.raises(OSError):
        with atomic_file(path) as handle:
            handle.write("x")
            os.close(handle.fileno())  # the next write fails, as a full disk would
    assert path.read_text() == "as it was" and sorted(os.listdir(tmp_path)) == ["corpus.txt"]


def test_a_folder_that_cannot_be_written_fails_when_the_writer_is_made(tmp_path):
    with pytest.raises(OSError):
        atomic_folder(tmp_path / "missing" / "best")
    assert not Path(tmp_path / "missing").exists()
