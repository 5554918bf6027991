"""Recordings of shell sessions: the file format, written and read. No prompt_toolkit, no torch.

A recording is JSON lines. The first line is the header: the format and its version, the model
(its name, where it was loaded from, the sha256 of its weights), the sampling settings with
the seed, the terminal size, and where the session stood when recording began (the transcript,
the panel's layer and pinned units, interventions set). Then one line per event, each with its
time `t` in seconds from the start:

    {"t": 1.25, "keys": "To be"}                 a batch of keys as the terminal sent them
    {"t": 3.5, "keys": "\\u0003", "streamed": 41}  ... that came while a stream had written 41 tokens
    {"t": 3.5, "command": ":temp 0.5"}            a command run (for reading; replay types its keys)
    {"t": 4.0, "stream": 41, "rate": 812.0}       a stream ended after 41 tokens, at this rate
    {"t": 9.1, "end": true}                       the last line: the recording is whole

Every line is flushed as it is written, so a session that crashes leaves whole lines.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from lstm_repl.errors import LstmReplError

FORMAT = "lstm-repl-recording"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"


class RecordingError(LstmReplError):
    """A recording cannot be written or read, or does not fit the model it is replayed on."""


@dataclass
class ModelId:
    name: str  # as the shell names it: "shakespeare-char", "mytext-char/best"
    path: str  # the folder it was loaded from
    sha256: str  # of its weights file

    @property
    def short(self) -> str:
        return self.sha256[:12]


@dataclass
class Start:
    """Where the session stood when recording began."""

    transcript: str = ""  # text above the prompt, already read by the model
    layer: int = 0  # the layer the panel shows (0-based)
    units: list[int] | None = None  # pinned units
    interventions: list[str] = field(default_factory=list)  # as commands, e.g. ":clamp 1:107=3"
    message: str = ""  # the status line's message then


@dataclass
class Header:
    model: ModelId
    settings: dict  # Settings fields: temperature, top_k, top_p, length, seed
    columns: int
    rows: int
    start: Start = field(default_factory=Start)

    def to_json(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}


@dataclass
class Event:
    t: float
    keys: str | None = None
    streamed: int | None = None  # tokens the running stream had written when these keys came
    command: str | None = None
    stream: int | None = None  # a stream ended after this many tokens
    rate: float | None = None  # ... at this many tokens a second

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Recording:
    path: Path
    header: Header
    events: list[Event]

    @property
    def keys(self) -> list[Event]:
        return [e for e in self.events if e.keys is not None]

    @property
    def streams(self) -> list[Event]:
        return [e for e in self.events if e.stream is not None]

    @property
    def duration(self) -> float:
        return self.events[-1].t if self.events else 0.0


def weights_sha256(folder: Path, info: dict) -> str:
    """The sha256 of a checkpoint's weights: config.json keeps it (and loading checked it)."""
    recorded = info.get("files", {}).get(WEIGHTS_FILE, {}).get("sha256")
    if isinstance(recorded, str):
        return recorded
    digest = hashlib.sha256()
    with open(folder / WEIGHTS_FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- writing


class RecordingWriter:
    """Writes a recording line by line, each flushed; `t` is given by the caller's clock."""

    def __init__(self, path: Path, header: Header):
        self.path = path
        try:
            self._file: TextIO | None = open(path, "w", encoding="utf-8")
        except OSError as exc:
            raise RecordingError(f"cannot write {path} ({exc.strerror}); choose another file") from None
        self._line(header.to_json())

    def event(self, event: Event) -> None:
        self._line(event.to_json())

    def end(self, t: float) -> None:
        if self._file is not None:
            self._line({"t": round(t, 4), "end": True})
            self._file.close()
            self._file = None

    def _line(self, data: dict) -> None:
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(data, ensure_ascii=False) + "\n")
            self._file.flush()
        except OSError as exc:  # a full disk: the recording stops, the session goes on
            self._file = None
            raise RecordingError(f"recording to {self.path} stopped ({exc.strerror}); "
                                 "what was written so far is kept") from None


# ---------------------------------------------------------------- reading


def read_recording(path: str | Path) -> Recording:
    """Read and check a recording; every problem is one RecordingError line."""
    path = Path(path)
    lines = _lines(path)
    if not lines:
        raise RecordingError(f"{path}: empty; not an lstm-repl recording")
    header = _header(path, _json(path, lines[0], 1, len(lines)))
    events, ended = [], False
    for number, line in enumerate(lines[1:], start=2):
        data = _json(path, line, number, len(lines))
        if data.get("end") is True:
            ended = True
            if number != len(lines):
                raise RecordingError(f"{path}: line {number} ends the recording but more lines follow; "
                                     "the file was edited or joined, re-record it")
            break
        events.append(_event(path, data, number))
    if not ended:
        raise RecordingError(f"{path}: truncated (no end line after line {len(lines)}: the session did not end "
                             "normally or the file was cut); re-record it")
    return Recording(path, header, events)


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such recording; make one with :record FILE or "
                             "lstm-repl repl --record FILE") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: unreadable ({exc}); not an lstm-repl recording") from None
    return text.splitlines()


def _json(path: Path, line: str, number: int, count: int) -> dict:
    try:
        data = json.loads(line)
    except ValueError:
        if number == count and number > 1:
            raise RecordingError(f"{path}: truncated (line {number} is cut short); re-record it") from None
        raise RecordingError(f"{path}: line {number} is not JSON; not an lstm-repl recording") from None
    if not isinstance(data, dict):
        raise RecordingError(f"{path}: line {number} is not a JSON object; not an lstm-repl recording")
    return data


def _header(path: Path, data: dict) -> Header:
    if data.get("format") != FORMAT:
        raise RecordingError(f"{path}: not an lstm-repl recording (its first line has no format {FORMAT!r})")
    version = data.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise RecordingError(f"{path}: the header has no valid format_version; the recording is broken")
    if version > FORMAT_VERSION:
        raise RecordingError(f"{path}: written in recording format {version}, this lstm-repl reads up to "
                             f"{FORMAT_VERSION}; upgrade lstm-repl")
    try:
        return Header(model=ModelId(**data["model"]), settings=dict(data["settings"]), columns=int(data["columns"]),
                      rows=int(data["rows"]), start=Start(**data.get("start", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordingError(f"{path}: the header is malformed ({exc}); the recording is broken") from None


def _event(path: Path, data: dict, number: int) -> Event:
    try:
        event = Event(**data)
        float(event.t)
    except (TypeError, ValueError) as exc:
        raise RecordingError(f"{path}: line {number} is not a recording event ({exc}); "
                             "the recording is broken") from None
    if event.keys is not None and not isinstance(event.keys, str):
        raise RecordingError(f"{path}: line {number}: keys must be a string; the recording is broken")
    return event
