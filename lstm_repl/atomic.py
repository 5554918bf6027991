"""Writing a file or a folder all or nothing: the new content goes to a temporary sibling, is
synced, and is renamed over the old one, so a crash or a full disk leaves the old one whole.

Every temporary is named one way, `.<name>.tmp-<pid>-<random>`, so one cleanup (remove_stale)
finds what a killed writer left and leaves alone what a live process is still writing (another
torchrun process). A folder being replaced is first renamed aside to `.<name>.old`.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path
from typing import IO, Callable


def temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def aside_path(path: Path) -> Path:
    """Where a folder being replaced waits until its successor is in place."""
    return path.with_name(f".{path.name}.old")


class atomic_file:  # lower case: used like open(), as contextlib's closing is
    """`with atomic_file(path, "w") as handle:` writes a temporary sibling, which replaces `path`
    only when the block ends without an error; otherwise it is removed and `path` is untouched.
    The temporary is opened when the object is made, so a caller can word that failure apart.
    OSError goes to the caller, who words it. durable=False skips the fsync (caches)."""

    def __init__(self, path: Path, mode: str = "w", durable: bool = True):
        self.path, self.durable = Path(path), durable
        remove_stale(self.path)
        self.temporary = temporary_sibling(self.path)
        self.handle: IO = open(self.temporary, mode, encoding=None if "b" in mode else "utf-8")

    def __enter__(self) -> IO:
        return self.handle

    def __exit__(self, kind, error, trace) -> None:
        try:
            if kind is None:
                self._commit()
        finally:
            try:
                self.handle.close()  # (a full disk may fail here too, flushing what is buffered)
            finally:
                _remove(self.temporary)  # (gone already when it was renamed)

    def _commit(self) -> None:
        self.handle.flush()
        if self.durable:
            os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.temporary, self.path)
        if self.durable:
            sync_folder(self.path.parent)


class atomic_folder:
    """`with atomic_folder(path) as tmp:` fills a fresh temporary folder beside `path`, swapped into
    place when the block ends without an error (see swap_into_place); otherwise it is removed.
    The folder is made when the object is made. `discard` removes a copy set aside."""

    def __init__(self, path: Path, discard: Callable[[Path], None] | None = None):
        self.path, self.discard = Path(path), discard or _remove_tree
        remove_stale(self.path)
        self.temporary = temporary_sibling(self.path)
        self.temporary.mkdir(mode=0o700)

    def __enter__(self) -> Path:
        return self.temporary

    def __exit__(self, kind, error, trace) -> None:
        try:
            if kind is None:
                swap_into_place(self.temporary, self.path, self.discard)
        finally:
            _remove_tree(self.temporary)  # (gone already when it was swapped in)


def swap_into_place(tmp: Path, path: Path, discard: Callable[[Path], None]) -> None:
    """Rename tmp to path. If path exists it is first renamed aside, so one copy is always whole;
    the folder is synced after each rename, so the renames reach the disk in that order. `discard`
    removes the copy set aside (whatever a killed swap left there too), ignoring errors."""
    sync_folder(tmp)
    old = aside_path(path)
    if path.exists():
        discard(old)
        os.replace(path, old)
        sync_folder(path.parent)
    os.replace(tmp, path)
    sync_folder(path.parent)
    discard(old)


def sync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # a platform without directory descriptors (Windows): renames are what it offers
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some filesystems refuse to sync a folder; the files themselves are synced
    finally:
        os.close(descriptor)


def remove_stale(path: Path, whole: Callable[[Path], bool] | None = None) -> list[Path]:
    """Remove the temporaries of `path` whose writer is no longer running; given `whole`, also
    its copy set aside once `path` is whole again (until then that copy may be the only one).
    Errors are ignored: a folder that cannot be listed has nothing this could remove.
    -> what was removed."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:tmp-(\d+)-[0-9a-f]+|old)")
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or _kept(match.group(1), path, whole):
            continue
        _remove(entry)
        removed.append(entry)
    return removed


def _kept(pid: str | None, path: Path, whole: Callable[[Path], bool] | None) -> bool:
    if pid is not None:
        return _running(int(pid))
    return whole is None or not whole(path)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # (a number no process has)
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def _remove(entry: Path) -> None:
    try:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    except OSError:
        pass


def _remove_tree(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
