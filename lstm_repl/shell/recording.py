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
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TextIO

from lstm_repl.config import SampleConfig
from lstm_repl.errors import ConfigError, LstmReplError
from lstm_repl.safe_read import MB, parse_json, read_text, typed_object
from lstm_repl.session.session import Settings

FORMAT = "lstm-repl-recording"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
# of the session's SampleConfig, in the header (a recording made before min_p ... has only the first five)
SETTINGS_FIELDS = ("temperature", "top_k", "top_p", "length", "seed", "min_p", "repeat_penalty", "repeat_window",
                   "stop")


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
    learning: bool = False  # :learn was on (the replay learns from its start; weights adapted before are not kept)


@dataclass
class Header:
    model: ModelId
    settings: dict  # SampleConfig fields: SETTINGS_FIELDS
    columns: int
    rows: int
    start: Start = field(default_factory=Start)

    def to_json(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}


@dataclass(slots=True)
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
    end: float | None = None  # the end line's time (None: made up, not recorded, as the tour is)

    @property
    def keys(self) -> list[Event]:
        return [e for e in self.events if e.keys is not None]

    @property
    def streams(self) -> list[Event]:
        return [e for e in self.events if e.stream is not None]

    @property
    def duration(self) -> float:
        return self.events[-1].t if self.events else 0.0

    def with_idle_limit(self, limit: float) -> Recording:
        """This recording with every pause longer than `limit` seconds cut to `limit`, as
        asciinema's idle_time_limit does: before the first event, between events, before the end."""
        t, previous, events = 0.0, 0.0, []
        for event in self.events:  # each time from the last one cut, not t - cut: 1e300 - 1e300 is not 0.5
            t, previous = t + min(event.t - previous, limit), event.t
            events.append(replace(event, t=t))
        end = None if self.end is None else t + min(self.end - previous, limit)
        return Recording(self.path, self.header, events, end)


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

RECORDING_LIMIT = 8 * MB  # an hour of typing takes under 1 MB; a recording is read and checked whole first
MAX_COLUMNS, MAX_ROWS = 1000, 500  # no screen is larger (4K at a small font: about 400 x 120)
_INTERVENTION = re.compile(r":(clamp|ablate|force) ")  # as start_state writes them: ":clamp 1:244=0.5"
_HEADER_FIELDS = {"format": str, "format_version": int, "model": dict, "settings": dict, "columns": int,
                  "rows": int, "start": dict}
_MODEL_FIELDS = {"name": str, "path": str, "sha256": str}
_SETTINGS_FIELDS = {"temperature": float, "top_k": int, "top_p": float, "length": int, "seed": (int, type(None)),
                    "min_p": float, "repeat_penalty": float, "repeat_window": int, "stop": (str, list, type(None))}
_START_FIELDS = {"transcript": str, "layer": int, "units": (list, type(None)), "interventions": [str], "message": str,
                 "learning": bool}
_EVENT_FIELDS = {"t": float, "keys": str, "streamed": int, "command": str, "stream": int, "rate": float}
_END_FIELDS = {"t": float, "end": bool}


def read_recording(path: str | Path) -> Recording:
    """Read a recording, every line checked against the format: the types of its fields (none
    that the writer does not write), times that are finite, start at 0 and never go back, a
    terminal size within bounds, settings as the command line checks its own. Every problem is
    one RecordingError line."""
    path = Path(path)
    # split at "\n" alone: str.splitlines also splits at U+2028, U+0085 and others, which keys may hold
    lines = read_text(path, RECORDING_LIMIT, RecordingError, "recording").split("\n")
    if lines[-1] == "":  # after the newline that ends the last line
        lines.pop()
    if not lines:
        raise RecordingError(f"{path}: empty; not an lstm-repl recording")
    header = _header(path, _json(path, lines[0], 1, len(lines)))
    events: list[Event] = []
    for number, line in enumerate(lines[1:], start=2):
        data, where = _json(path, line, number, len(lines)), f"{path}: line {number}"
        if "end" not in data:
            events.append(_event(data, events, where))
            continue
        if number != len(lines):
            raise RecordingError(f"{where} ends the recording but more lines follow; the file was edited or "
                                 "joined, re-record it")
        _fields(data, _END_FIELDS, where, required=tuple(_END_FIELDS))
        if data["end"] is not True:
            raise _broken(where, "'end' is false")
        return Recording(path, header, events, end=_time(data, events, where))
    raise RecordingError(f"{path}: truncated (no end line after line {len(lines)}: the session did not end "
                         "normally or the file was cut); re-record it")


def _json(path: Path, line: str, number: int, count: int) -> dict:
    if number == 1 and not line.startswith("{"):
        raise RecordingError(f"{path}: not an lstm-repl recording (its first line is not a JSON object)")
    if number == count > 1 and not line.rstrip().endswith("}"):
        raise RecordingError(f"{path}: truncated (line {number} is cut short); re-record it")
    data = parse_json(line, RecordingError, f"{path}: line {number}", "recording line")
    if not isinstance(data, dict):
        raise RecordingError(f"{path}: line {number} is not a JSON object; not an lstm-repl recording")
    return data


def _header(path: Path, data: dict) -> Header:
    if data.get("format") != FORMAT:
        raise RecordingError(f"{path}: not an lstm-repl recording (its first line has no format {FORMAT!r})")
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordingError(f"{path}: the header has no valid format_version; the recording is broken")
    if version > FORMAT_VERSION:
        raise RecordingError(f"{path}: written in recording format {version}, this lstm-repl reads up to "
                             f"{FORMAT_VERSION}; upgrade lstm-repl")
    where = f"{path}: the header"
    _fields(data, _HEADER_FIELDS, where, required=("model", "settings", "columns", "rows"))
    model = _fields(data["model"], _MODEL_FIELDS, f"{where}'s model", required=tuple(_MODEL_FIELDS))
    columns, rows = data["columns"], data["rows"]
    if not (1 <= columns <= MAX_COLUMNS and 1 <= rows <= MAX_ROWS):
        raise _broken(where, f"a terminal of {columns}x{rows}; no terminal is larger than {MAX_COLUMNS}x{MAX_ROWS}")
    return Header(model=ModelId(**model), settings=_settings(data["settings"], f"{where}'s settings"),
                  columns=columns, rows=rows, start=_start(data.get("start", {}), f"{where}'s start"))


def _settings(settings: dict, where: str) -> dict:
    checked_settings(settings, where, RecordingError)
    return settings


def checked_settings(settings, where: str, error: type[LstmReplError]) -> SampleConfig:
    """Sampling settings as a file keeps them (a recording's header, a saved session), of their
    types and then through the shell's own checks (Settings, whose SampleConfig the command
    line's options and the shell's :set go through too). A missing one takes its default."""
    try:
        _fields(settings, _SETTINGS_FIELDS, where)
        if isinstance(settings.get("stop"), list):
            _fields({"stop": settings["stop"]}, {"stop": [str]}, where)
    except RecordingError as exc:
        raise exc if error is RecordingError else error(str(exc).replace("recording", "file")) from None
    try:
        return Settings(SampleConfig(**settings)).sampling
    except ConfigError as exc:
        broken = "the recording is broken" if error is RecordingError else "the file is broken"
        raise error(f"{where}: {str(exc).rstrip('.')}; {broken}") from None


def _start(start: dict, where: str) -> Start:
    """Where the session stood. Its interventions are only :clamp, :ablate and :force lines (the
    replay parses them with the intervention parser): a recording's start runs no command."""
    _fields(start, _START_FIELDS, where)
    units = start.get("units") or []
    _fields({"units": units}, {"units": [int]}, where)
    if start.get("layer", 0) < 0 or any(unit < 0 for unit in units):
        raise _broken(where, "a layer or unit below 0")
    for line in start.get("interventions", []):
        if not _INTERVENTION.match(line):
            raise _broken(where, f"{line[:40]!r} is not an intervention (:clamp, :ablate or :force)")
    return Start(**start)


def _event(data: dict, events: list[Event], where: str) -> Event:
    _fields(data, _EVENT_FIELDS, where, required=("t",))
    kinds = [kind for kind in ("keys", "command", "stream") if kind in data]
    if len(kinds) != 1:
        raise _broken(where, f"an event holds one of keys, command or stream, not {' and '.join(kinds) or 'none'}")
    if ("streamed" in data and "keys" not in data) or ("rate" in data and "stream" not in data):
        raise _broken(where, "'streamed' goes with keys, 'rate' with stream")
    if any(data.get(name, 0) < 0 for name in ("streamed", "stream", "rate")):
        raise _broken(where, "a count or rate below 0")
    return Event(**{**data, "t": _time(data, events, where)})


def _time(data: dict, events: list[Event], where: str) -> float:
    """The line's time: never before the last event's (nor 0)."""
    t, last = float(data["t"]), events[-1].t if events else 0.0
    if t < last:
        raise _broken(where, f"its time {t:g} s comes before {last:g} s; times start at 0 and never go back")
    return t


def _fields(document, fields: dict, where: str, required: tuple[str, ...] = ()) -> dict:
    """typed_object for a strict format: the fields the writer writes, of their types, and no other."""
    try:
        return typed_object(document, fields, where, RecordingError, required, closed=True)
    except RecordingError as exc:
        raise RecordingError(f"{exc}; the recording is broken") from None


def _broken(where: str, what: str) -> RecordingError:
    return RecordingError(f"{where}: {what}; the recording is broken")
