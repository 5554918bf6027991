"""Reading a corpus as a stream of text chunks, never whole: the same text read_corpus joins
(files in order, a newline added after a file that lacks one when there are several), decoded
incrementally so a chunk border never splits a character, errors naming the byte offset."""

from __future__ import annotations

import codecs
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from lstm_repl.errors import CorpusError
from lstm_repl.safe_read import open_regular

CHUNK_BYTES = 8 << 20  # read per step: small enough that a word-level chunk's pieces stay ~100 MB
MAX_FILE_BYTES = 1 << 40  # a corpus file is streamed, so only a sanity bound: 1 TiB
Progress = Callable[[int], None]  # called with the bytes read so far


def _no_progress(done: int) -> None:
    pass


@dataclass
class CorpusScan:
    """What one streaming pass learns of a corpus, without keeping its text."""

    files: list[Path]
    encoding: str
    sha256: str  # of the joined text, UTF-8 (as read_corpus's)
    characters: int

    @property
    def bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files)


def text_chunks(files: list[Path], encoding: str = "utf-8", progress: Progress = _no_progress,
                chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """The corpus text in pieces whose concatenation is read_corpus's text."""
    done = 0
    for path in files:
        last = ""
        for text, read in _file_chunks(path, encoding, chunk_bytes):
            last = text or last
            done += read
            progress(done)
            if text:
                yield text
        if len(files) > 1 and last and not last.endswith("\n"):
            yield "\n"


def _file_chunks(path: Path, encoding: str, chunk_bytes: int) -> Iterator[tuple[str, int]]:
    """(text, bytes read) per chunk of one file; the last one flushes the decoder."""
    decoder = _decoder(encoding)
    check_nul = not encoding.lower().replace("_", "-").startswith("utf-16")
    offset = 0
    try:
        with open_corpus_file(path) as handle:
            while True:
                data = handle.read(chunk_bytes)
                if check_nul and (nul := data.find(b"\x00")) >= 0:
                    raise CorpusError(f"{path}: looks binary (NUL byte at offset {offset + nul}); give a text file")
                yield _decode(decoder, data, offset, path, encoding), len(data)
                offset += len(data)
                if not data:
                    return
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read it ({exc.strerror})") from None


def open_corpus_file(path: Path) -> BinaryIO:
    """A corpus file opened for reading, once it is known to be a regular file: a FIFO, a device
    or a folder is named in one line, never read (a FIFO would block, /dev/zero never end)."""
    return open_regular(path, MAX_FILE_BYTES, CorpusError, "text file")


def _decoder(encoding: str) -> codecs.IncrementalDecoder:
    try:
        return codecs.getincrementaldecoder(encoding)()
    except LookupError:
        raise CorpusError(f"unknown encoding {encoding!r}; use a Python codec name such as utf-8 or latin-1") from None


def _decode(decoder: codecs.IncrementalDecoder, data: bytes, offset: int, path: Path, encoding: str) -> str:
    pending = len(decoder.getstate()[0])  # bytes of a character the last chunk ended inside
    try:
        return decoder.decode(data, final=not data)
    except UnicodeDecodeError as exc:
        where = offset - pending + exc.start
        raise CorpusError(
            f"{path}: not valid {encoding} (byte 0x{exc.object[exc.start]:02x} at offset {where}); "
            "convert it to UTF-8 or pass --encoding (e.g. --encoding latin-1)"
        ) from None


def scan_corpus(files: list[Path], encoding: str = "utf-8", progress: Progress = _no_progress) -> CorpusScan:
    """One pass: checks every byte decodes, hashes the text, counts its characters."""
    digest, characters, blank = hashlib.sha256(), 0, True
    for text in text_chunks(files, encoding, progress):
        digest.update(text.encode("utf-8", "surrogatepass"))
        characters += len(text)
        blank = blank and not text.strip()
    if blank:
        raise CorpusError(f"{', '.join(str(p) for p in files)}: the corpus is empty; give it some text")
    return CorpusScan(files, encoding, digest.hexdigest(), characters)


def read_tail(files: list[Path], size: int) -> tuple[bytes, bool]:
    """The last `size` bytes of the joined corpus (UTF-8 files), and whether that is all of it."""
    parts: list[bytes] = []
    collected = 0
    for index in reversed(range(len(files))):
        with open_corpus_file(files[index]) as handle:
            length = handle.seek(0, 2)
            if len(files) > 1 and length:  # read_corpus ends every file of several in a newline
                handle.seek(length - 1)
                if handle.read(1) != b"\n":
                    parts.append(b"\n")
                    collected += 1
            take = min(length, max(0, size - collected))
            handle.seek(length - take)
            parts.append(handle.read(take))
            collected += take
            if take < length:
                return b"".join(reversed(parts)), False
    return b"".join(reversed(parts)), True
