"""A saved session: what `:save` keeps beside the traces, so that `repl --session FILE` or
`:open FILE` brings the shell back as it stood: the text, the sampling settings, the panel's
layer and pinned units, the interventions (and from where in the text they applied), and the
streams `:undo` can take back, with the model they were made with.

It is the first field of the saved trace document (docs/trace-format.md),
`{"session": {...}, "format": "lstm-repl-trace", ...}`, so it is read from the head of the
file, checked field by field, without parsing the traces after it (tens of MB for a long text).
"""

from __future__ import annotations

import codecs
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from lstm_repl.config import SampleConfig
from lstm_repl.errors import ConfigError, LstmReplError
from lstm_repl.model.interventions import Interventions
from lstm_repl.safe_read import MB, open_regular, parse_json_at, typed_object
from lstm_repl.session.intervention_parser import forceable_gates, parse
from lstm_repl.shell.shell_state import Shell, model_id
from lstm_repl.shell.recording import SETTINGS_FIELDS, ModelId, checked_settings

SESSION_FORMAT = "lstm-repl-session"
SESSION_VERSION = 1
SESSION_MARK = '{"session": '  # how a saved session's file begins
HEAD_LIMIT = 64 * MB  # bytes of the file's head read for the session (its text: tens of millions of characters)
FILE_LIMIT = 1 << 40  # the whole file may be this large: its traces are never read here
_FIELDS = {"format": str, "version": int, "model": {"name": str, "path": str, "sha256": str}, "text": str,
           "settings": dict, "layer": int, "units": (list, type(None)), "interventions": [str],
           "interventions_from": int, "streams": [int]}


class SessionFileError(LstmReplError):
    """A saved session cannot be read, or does not fit the model loaded."""


@dataclass
class SavedSession:
    path: Path
    model: ModelId
    text: str  # the transcript, read by the model
    sampling: SampleConfig
    layer: int  # the layer the panel shows (0-based)
    units: list[int] | None  # pinned units
    interventions: list[str]  # as commands, e.g. ":clamp 1:107=3"
    interventions_from: int  # characters of the text read before the interventions were set
    streams: list[int]  # where each stream :undo can take back began in the text


def session_json(shell: Shell) -> dict:
    """The session's part of what :save writes."""
    session = shell.session
    edits = session.interventions
    return {"format": SESSION_FORMAT, "version": SESSION_VERSION, "model": asdict(model_id(shell)),
            "text": shell.history, "settings": {name: getattr(session.settings.sampling, name)
                                                for name in SETTINGS_FIELDS},
            "layer": shell.panel.layer, "units": list(shell.panel.units) if shell.panel.units else None,
            "interventions": [f":{item}" for item in edits.items],
            "interventions_from": session.interventions_from() if edits else 0, "streams": list(shell.streams)}


def is_session_file(path: str | Path) -> bool:
    """The file begins as :save begins a session (a text file given to :open does not)."""
    with open_regular(path, FILE_LIMIT, SessionFileError, "file") as f:
        return f.read(len(SESSION_MARK)) == SESSION_MARK.encode()


def read_session(path: str | Path) -> SavedSession:
    """The session at the head of a file :save wrote, every field checked; any problem is one
    SessionFileError line."""
    path = Path(path)
    with open_regular(path, FILE_LIMIT, SessionFileError, "saved session") as f:
        head = f.read(HEAD_LIMIT)
    try:  # the head may end inside a character: the incremental decoder keeps that one back
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise SessionFileError(f"{path}: not UTF-8 (byte {exc.start}); not a session :save wrote") from None
    if not text.startswith(SESSION_MARK):
        raise SessionFileError(f"{path}: not a saved session (lstm-repl's :save writes them)")
    try:
        document, _ = parse_json_at(text, len(SESSION_MARK), SessionFileError, str(path), "saved session")
    except SessionFileError:
        if len(head) < HEAD_LIMIT:
            raise
        raise SessionFileError(f"{path}: no whole session in its first {HEAD_LIMIT:,} bytes; not one :save "
                               "wrote") from None
    return _checked(path, document)


def _checked(path: Path, document) -> SavedSession:
    where = f"{path}: the session"
    typed_object(document, _FIELDS, where, SessionFileError, required=tuple(_FIELDS), closed=True)
    typed_object({"units": document["units"] or []}, {"units": [int]}, where, SessionFileError)
    if document["format"] != SESSION_FORMAT:
        raise SessionFileError(f"{where} has no format {SESSION_FORMAT!r}; not a session :save wrote")
    if not 1 <= document["version"] <= SESSION_VERSION:
        raise SessionFileError(f"{where} is of version {document['version']}; this lstm-repl reads up to "
                               f"{SESSION_VERSION} (upgrade lstm-repl)")
    text, streams, cut = document["text"], document["streams"], document["interventions_from"]
    units = document["units"]
    if document["layer"] < 0 or any(unit < 0 for unit in units or []):
        raise SessionFileError(f"{where}: a layer or unit below 0; the file is broken")
    if not 0 <= cut <= len(text) or any(not 0 <= start <= len(text) for start in streams):
        raise SessionFileError(f"{where}: a position outside its text; the file is broken")
    model = typed_object(document["model"], {}, where, SessionFileError)
    return SavedSession(path, ModelId(**model), text, checked_settings(document["settings"], f"{where}'s settings",
                                                                       SessionFileError),
                        document["layer"], units, document["interventions"], cut, streams)


def restore(shell: Shell, saved: SavedSession) -> str:
    """Make the shell stand where the saved session stood; -> the message saying so. A session
    made with another model is refused (its units, layers and text mean other things there)."""
    session, config = shell.session, shell.session.model.config
    here = model_id(shell)
    if saved.model.sha256 != here.sha256:
        raise SessionFileError(f"{saved.path} was saved with the model {saved.model.name} ({saved.model.short}), "
                               f"not {here.name} ({here.short}): `lstm-repl repl --session {saved.path}` opens it "
                               "with its own model")
    if saved.layer >= config.layers or any(unit >= config.hidden for unit in saved.units or []):
        raise SessionFileError(f"{saved.path}: a layer or unit beyond the model's; the file is broken")
    edits = _interventions(saved, session.model)
    session.settings = replace(session.settings, sampling=saved.sampling)
    session.reseed(saved.sampling.seed)
    session.intervene(Interventions())
    session.set_text(saved.text[: saved.interventions_from])
    if edits:
        session.intervene(edits)
    session.edit(session.text_length(), saved.text[saved.interventions_from :])
    shell.history, shell.streams = saved.text, list(saved.streams)
    shell.panel.layer, shell.panel.units = saved.layer, saved.units or None
    return f"restored {saved.path}: {len(saved.text):,} characters, settings, layer, units, interventions"


def _interventions(saved: SavedSession, model) -> Interventions:
    config, gates, items = model.config, forceable_gates(model), Interventions()
    for line in saved.interventions:
        kind, _, spec = line.removeprefix(":").partition(" ")
        if kind not in ("clamp", "ablate", "force"):
            raise SessionFileError(f"{saved.path}: {line[:40]!r} is not an intervention (:clamp, :ablate or "
                                   ":force); the file is broken")
        try:
            items = items.with_(parse(kind, spec, config.layers, config.hidden, gates))
        except (ConfigError, LstmReplError) as exc:
            raise SessionFileError(f"{saved.path}: the intervention {line[:40]!r} does not fit this model "
                                   f"({exc})") from None
    return items
