"""One writer per run folder. `train` (a new run, `--resume`, and torchrun's first process) holds
an exclusive lock on the folder's `.lock` file for the run's life, taken before anything in the
folder is written or cleaned, so a second writer stops at once in one line naming the process
that holds it. Readers (`repl --follow`, `info`, `export`) take no lock and are never blocked.

The lock is `fcntl.flock`'s: the kernel drops it when its holder exits, however it exits (SIGKILL
included), so a killed run never blocks the next one; the holder's pid in the file is only for
the message. Where fcntl does not exist (Windows) no lock is taken: there, two trainings into one
folder are not stopped.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from lstm_repl.errors import ConfigError
from lstm_repl.safe_read import file_kind

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = ".lock"
_OPEN_FLAGS = (os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0))
_NOT_A_FILE = {errno.ELOOP: "a symbolic link",  # O_NOFOLLOW: the pid is never written through a link
               errno.EISDIR: "a folder"}


@contextmanager
def holding(folder: Path) -> Iterator[None]:
    """The run folder `folder` (created if missing) locked for the block's life; ConfigError
    naming the holder when another process has it."""
    if fcntl is None:
        yield
        return
    descriptor = _take(folder)
    try:
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _take(folder: Path) -> int:
    path = folder / LOCK_FILE
    descriptor = _open(folder, path)
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{path} is {file_kind(mode)}, not the lock file lstm-repl writes; remove it")
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"{folder} is in use: {_holder(descriptor)} is training into it; wait for it to end "
                              "(or stop it), or choose another --out") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        return descriptor
    except BaseException:
        os.close(descriptor)
        raise


def _open(folder: Path, path: Path) -> int:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{folder} is a file, not a folder; choose another --out") from None
    except OSError as exc:
        raise ConfigError(f"cannot make the run folder {folder} ({exc.strerror}); choose another --out") from None
    try:
        return os.open(path, _OPEN_FLAGS, 0o644)
    except OSError as exc:
        kind = _NOT_A_FILE.get(exc.errno)
        if kind:
            raise ConfigError(f"{path} is {kind}, not the lock file lstm-repl writes; remove it") from None
        raise ConfigError(f"cannot lock the run folder {folder} ({exc.strerror}); choose a writable --out") from None


def _holder(descriptor: int) -> str:
    """'process 1234' as the holder wrote it, or 'another process' (it has not written it yet)."""
    try:
        text = os.pread(descriptor, 24, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    return f"process {text}" if text.isdigit() and len(text) <= 10 else "another process"
