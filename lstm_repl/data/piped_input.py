"""Text piped in on standard input (`cat book.txt | lstm-repl`, `... | lstm-repl generate CKPT`):
decoded as UTF-8 a block at a time, with a NUL byte refused as a corpus file's is, so binary
input (`< /dev/zero`) ends in one line at once instead of being read forever."""

from __future__ import annotations

import codecs
import io
from typing import BinaryIO, Iterator, TextIO

from lstm_repl.errors import CorpusError

BLOCK_BYTES = 1 << 16  # read at a time


def binary(stream: TextIO) -> BinaryIO:
    """The bytes under a text stream (a test's stdin may have none: then its text, encoded)."""
    if hasattr(stream, "buffer"):
        return stream.buffer
    return io.BytesIO(stream.read().encode("utf-8"))


def decoded_blocks(source: BinaryIO) -> Iterator[str]:
    """The text of `source`, block by block, until it ends."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    while True:
        block = source.read(BLOCK_BYTES)
        nul = block.find(b"\x00")
        if nul >= 0:
            raise CorpusError(f"standard input looks binary (NUL byte at offset {offset + nul}); pipe in text")
        try:
            text = decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:  # exc.object: the bytes the decoder held back, then this block
            where = offset - (len(exc.object) - len(block)) + exc.start
            raise CorpusError(f"standard input is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                              f"{where}); convert it to UTF-8 first (e.g. iconv -t utf-8)") from None
        offset += len(block)
        if text:
            yield text
        if not block:
            return


def read_piped(source: BinaryIO, limit: int, hint: str) -> str:
    """All of `source` as text, refused in one line (with `hint`) once it passes `limit` bytes."""
    parts, size = [], 0
    for text in decoded_blocks(source):
        size += len(text.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise CorpusError(f"standard input holds more than {limit:,} bytes; {hint}")
        parts.append(text)
    return "".join(parts)
