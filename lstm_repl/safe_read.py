"""Reading files that strangers hand us. Every file is checked to be a regular file of bounded
size before a byte of it is read or hashed: a FIFO would block the reader forever, /dev/zero
would fill memory, a folder would raise an error nobody words. JSON is parsed with non-finite
numbers (NaN, Infinity, 1e999) and runaway nesting turned into the format's one-line error.

Each function takes the error class of the format being read (CheckpointError, CorpusError,
ConfigError, ...) so the message reaches the user as that format's problem.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from lstm_repl.errors import LstmReplError

MB = 1 << 20
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


MAX_SHOWN_PATH = 200  # characters of a path an error message echoes


def shown_path(path: str | Path) -> str:
    """A path as an error message shows it: whole, or (one typed by mistake, or a stranger's)
    its start, its end and its length, so the message stays one readable line."""
    text = str(path)
    if len(text) <= MAX_SHOWN_PATH:
        return text
    return f"{text[:80]}...{text[-80:]} ({len(text):,} characters)"


def file_kind(mode: int) -> str:
    """'a FIFO (named pipe)', 'a folder', ... for anything that is not a regular file."""
    return next((name for is_kind, name in _KINDS if is_kind(mode)), "not a regular file")


def open_regular(path: str | Path, limit: int, error: type[LstmReplError] = LstmReplError,
                 what: str = "file") -> BinaryIO:
    """`path` opened for reading in binary, once it is known to be a regular file of at most
    `limit` bytes. Opening does not block on a FIFO (O_NONBLOCK), and the checks are made on the
    opened file, so a swap between check and read changes nothing."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{shown_path(path)}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{shown_path(path)}: is a folder, not a {what}") from None
    except OSError as exc:
        raise error(f"{shown_path(path)}: cannot open the {what} ({exc.strerror})") from None
    try:
        check_regular(os.fstat(descriptor), path, limit, error, what)
        if hasattr(os, "set_blocking"):
            os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def check_regular(status: os.stat_result, path: str | Path, limit: int,
                  error: type[LstmReplError] = LstmReplError, what: str = "file") -> None:
    """Raise `error` unless `status` is a regular file of at most `limit` bytes."""
    if not stat.S_ISREG(status.st_mode):
        raise error(f"{shown_path(path)}: is {file_kind(status.st_mode)}, not a regular file; "
                    f"give the path of a {what}")
    if status.st_size > limit:
        raise error(f"{shown_path(path)}: {status.st_size:,} bytes, more than a {what} can be ({limit:,}); "
                    f"it is not a {what}, or not one this tool wrote")


def stat_regular(path: str | Path, limit: int, error: type[LstmReplError] = LstmReplError,
                 what: str = "file") -> int:
    """The size of `path`, once it is known to be a regular file of at most `limit` bytes; for
    files another library opens itself (safetensors)."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise error(f"{shown_path(path)}: no such {what}") from None
    except OSError as exc:
        raise error(f"{shown_path(path)}: cannot read the {what} ({exc.strerror})") from None
    check_regular(status, path, limit, error, what)
    return status.st_size


def read_bytes(path: str | Path, limit: int, error: type[LstmReplError] = LstmReplError, what: str = "file") -> bytes:
    with open_regular(path, limit, error, what) as handle:
        data = handle.read(os.fstat(handle.fileno()).st_size + 1)  # read(n) allocates n: the file's size, not the limit
        while len(data) <= limit and (more := handle.read(MB)):
            data += more
    if len(data) > limit:  # the file grew after it was checked
        raise error(f"{shown_path(path)}: more than {limit:,} bytes; it is not a {what}")
    return data


def read_text(path: str | Path, limit: int, error: type[LstmReplError] = LstmReplError, what: str = "file") -> str:
    data = read_bytes(path, limit, error, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{shown_path(path)}: not UTF-8 (byte {exc.start}); it is not a {what}") from None


def read_json(path: str | Path, limit: int, error: type[LstmReplError] = LstmReplError, what: str = "file") -> Any:
    """A JSON file, checked as `open_regular` checks files and parsed as `parse_json` parses."""
    return parse_json(read_text(path, limit, error, what), error, shown_path(path), what)


def parse_json(text: str | bytes, error: type[LstmReplError] = LstmReplError, where: str = "input",
               what: str = "JSON document") -> Any:
    """JSON with every number finite: NaN, Infinity and numbers too large for a float (1e999) are
    refused, as is nesting deep enough to exhaust Python's stack, and integers a 64-bit integer
    cannot hold (no format of ours has one; a float field given one could not do arithmetic).
    All of them end as one line naming `where`."""
    try:
        return json.loads(text, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_no_constant)
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply; it is not a {what}") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError; so is an int of 5,000 digits
        raise error(f"{where}: not valid JSON ({_short(exc)}); it is not a {what}") from None


def parse_json_at(text: str, start: int, error: type[LstmReplError] = LstmReplError, where: str = "input",
                  what: str = "JSON document") -> tuple[Any, int]:
    """The one JSON value that begins at text[start], checked as parse_json checks, and where it
    ends: for reading the head of a document too large to parse whole."""
    decoder = json.JSONDecoder(parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_no_constant)
    try:
        return decoder.raw_decode(text, start)
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply; it is not a {what}") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError; so is an int of 5,000 digits
        raise error(f"{where}: not valid JSON ({_short(exc)}); it is not a {what}") from None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is too large")
    return value


LARGEST_INT = 2**64  # seeds go up to 2**64 - 1 (what torch takes); nothing else comes near


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 20 or abs(value := int(text)) >= LARGEST_INT:
        raise ValueError(f"the integer {text[:20]}{'...' * (len(text) > 20)} is too large")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _short(exc: Exception) -> str:
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return message[:160]


def typed(document: Any, key: str, kind: type | tuple[type, ...], where: str,
          error: type[LstmReplError] = LstmReplError, default: Any = ...) -> Any:
    """document[key], checked to be of `kind` (bool is not taken for int or float); `default` when
    the key is absent and a default is given. `document` must be a dict."""
    if not isinstance(document, dict):
        raise error(f"{where}: expected a JSON object, found {_json_type(document)}")
    if key not in document:
        if default is not ...:
            return default
        raise error(f"{where}: '{key}' is missing")
    value = document[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds) or (float in kinds and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        wanted = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise error(f"{where}: '{key}' should be {wanted}, found {_json_type(value)}")
    return value


_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
               bool: "true or false", type(None): "null"}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def typed_object(document: Any, fields: dict, where: str, error: type[LstmReplError] = LstmReplError,
                 required: tuple[str, ...] = (), closed: bool = False) -> dict:
    """`document`, checked to be an object whose listed fields have their kinds: a kind as typed()
    takes it, [kind] for a list of that kind, or a dict of fields for an object inside. Listed
    fields may be absent unless `required`; others are left alone unless `closed`, when any is an
    error (a strict format: what its writer never writes is not there)."""
    if not isinstance(document, dict):
        raise error(f"{where}: expected a JSON object, found {_json_type(document)}")
    if closed and (unknown := sorted(set(document) - set(fields))):
        raise error(f"{where}: unknown field {unknown[0]!r}")  # repr: a key may hold a newline or an ESC
    for key, kind in fields.items():
        if key not in document:
            if key in required:
                raise error(f"{where}: '{key}' is missing")
        elif isinstance(kind, dict):
            typed_object(typed(document, key, dict, where, error), kind, f"{where} {key}", error)
        elif isinstance(kind, list):
            for index, item in enumerate(typed(document, key, list, where, error)):
                typed({f"{key}[{index}]": item}, f"{key}[{index}]", kind[0], where, error)
        else:
            typed(document, key, kind, where, error)
    return document
