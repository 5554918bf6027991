"""The folder `lstm-repl export` writes, and what it may replace. Export never deletes or
overwrites anything it did not write: DEST must be new, an empty folder, or a folder that holds
exactly an earlier export (its three files, and model.onnx when it was made with --onnx;
config.json an lstm-repl checkpoint's), which is then replaced atomically. DEST may not be the
run, lie inside it or hold it, be the working folder or one of its ancestors, be a file or a
symbolic link. Every check is made before anything is written, and again just before the swap."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable

from lstm_repl.atomic import aside_path, atomic_folder
from lstm_repl.model import checkpoint
from lstm_repl.model.onnx_export import ONNX_FILE
from lstm_repl.errors import CheckpointError, ConfigError, LstmReplError
from lstm_repl.safe_read import MB, file_kind, read_json

CARD_FILE = "README.md"
EXPORT_FILES = frozenset({checkpoint.CONFIG_FILE, checkpoint.WEIGHTS_FILE, CARD_FILE})
OPTIONAL_EXPORT_FILES = frozenset({ONNX_FILE, checkpoint.TOKENIZER_FILE})  # written with --onnx; a BPE model's
CONFIG_LIMIT = 64 * MB  # far above a 100,000-word vocabulary's config.json


def check_destination(run_dir: Path, dest: Path) -> Path:
    """Refuse, in one line, a DEST that export may not write; -> DEST with its links resolved."""
    _check_not_a_link_or_file(dest)
    target, run = dest.resolve(), run_dir.resolve()
    if target == run or run in target.parents:
        raise ConfigError(f"{dest} is the run {run_dir} or inside it; export writes a folder of its own: "
                          "give a folder outside the run")
    if target in run.parents:
        raise ConfigError(f"{dest} holds the run {run_dir}; give a new folder for the export")
    working = Path.cwd().resolve()
    if target == working or target in working.parents:
        raise ConfigError(f"{dest} is the working folder or one it lies in; give a new folder for the export")
    if target.is_dir() and not _empty_or_export(target):
        raise ConfigError(f"{dest} already holds files export did not write ({_listing(target)}); "
                          "export never replaces them: give a new folder")
    aside = aside_path(target)
    if os.path.lexists(aside) and not (aside.is_dir() and not aside.is_symlink() and _empty_or_export(aside)):
        raise ConfigError(f"{aside} is in the way (export sets the previous export aside under that name); "
                          "move it, or give another folder")
    return target


def write_export(run_dir: Path, dest: Path, fill: Callable[[Path], None]) -> Path:
    """Let `fill` write the export's files into a fresh temporary folder beside DEST, then swap it
    into place (checked again first): a crash leaves the earlier export or the new one whole."""
    target = check_destination(run_dir, dest)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        writing = atomic_folder(target, discard=_discard_export)
    except OSError as exc:
        raise CheckpointError(f"cannot write in {target.parent} ({exc.strerror}); give a writable folder") from None
    try:
        with writing as tmp:
            fill(tmp)
            check_destination(run_dir, dest)  # anything that appeared meanwhile is still not ours
    except OSError as exc:
        raise CheckpointError(f"could not write the export {dest} ({exc.strerror}); free some space or give "
                              "another folder (an earlier export there is untouched)") from None
    return dest


def _check_not_a_link_or_file(dest: Path) -> None:
    try:
        mode = os.lstat(dest).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"{dest}: cannot look at it ({exc.strerror}); give a new folder for the export") from None
    if stat.S_ISLNK(mode):
        raise ConfigError(f"{dest} is a symbolic link; export writes a folder of its own: give a new folder")
    if not stat.S_ISDIR(mode):
        kind = "a file" if stat.S_ISREG(mode) else file_kind(mode)
        raise ConfigError(f"{dest} is {kind}, not a folder; give a new folder for the export")


def _empty_or_export(folder: Path) -> bool:
    """Whether `folder` is empty or holds exactly what export writes, config.json a checkpoint's."""
    try:
        with os.scandir(folder) as scan:
            entries = {entry.name: entry.is_file(follow_symlinks=False) for entry in scan}
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot look inside it ({exc.strerror}); give a new folder") from None
    if not entries:
        return True
    if not EXPORT_FILES <= set(entries) <= EXPORT_FILES | OPTIONAL_EXPORT_FILES or not all(entries.values()):
        return False
    try:
        config = read_json(folder / checkpoint.CONFIG_FILE, CONFIG_LIMIT, CheckpointError, "checkpoint config")
    except LstmReplError:
        return False
    return isinstance(config, dict) and config.get("format") == checkpoint.FORMAT_NAME


def _listing(folder: Path) -> str:
    """The names in `folder` that are not an export's (all of them, when those are all an export's)."""
    names = sorted(os.listdir(folder))
    names = [name for name in names if name not in EXPORT_FILES | OPTIONAL_EXPORT_FILES] or names
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _discard_export(folder: Path) -> None:
    """Remove an export set aside: its own files, then the folder if nothing else is in it."""
    for name in EXPORT_FILES | OPTIONAL_EXPORT_FILES:
        try:
            (folder / name).unlink(missing_ok=True)
        except OSError:
            pass
    try:
        folder.rmdir()
    except OSError:
        pass  # absent; or something appeared in it since it was checked: it stays, with that
