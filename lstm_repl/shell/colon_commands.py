"""The shell's colon commands: parsed and applied to a session, returning what to show.

No prompt_toolkit here: a command takes the shell's state and returns a CommandResult.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from lstm_repl.atomic import atomic_file
from lstm_repl.config import MAX_SEED, MIN_SEED, SampleConfig
from lstm_repl.errors import ConfigError, LstmReplError
from lstm_repl.session.intervention_parser import parse_unit_list
from lstm_repl.session.session_trace import trace_header, trace_tokens
from lstm_repl.shell.shell_state import Shell, saved_labels

HELP = {
    ":help": "this list",
    ":temp T": "sampling temperature (0 = greedy)",
    ":topk K": "sample only from the K most likely tokens (0 = all)",
    ":topp P": "sample only from the smallest set of tokens whose probability reaches P",
    ":minp P": "drop tokens less likely than P times the most likely one (0 = off)",
    ":len N": "tokens streamed by Enter",
    ":stop TEXT": "end a stream once it writes TEXT (\\n is a newline; repeatable); ':stop' alone removes them",
    ":set NAME VALUE": "change a setting (temp, topk, topp, minp, repeat-penalty, repeat-window, len, seed, stop)",
    ":show": "the model, the settings, the panel's layer and units, and the interventions",
    ":regen": "take back the last stream and sample it again with a new seed",
    ":undo": "take back the last stream (the text returns to before it)",
    ":open FILE": "read a text file in as a paste, or restore a session :save wrote",
    ":layer N": "show layer N (1 = nearest the input)",
    ":units A B-C": "pin these units in the bar charts (no units: back to the units that changed most)",
    ":find FEATURE": "rank units on the text so far against a feature (in-quotes, in-brackets, line-position, "
                     "indent, word-start, uppercase, digit, newline, or /regex/) and pin the best",
    ":clamp L:U=V": "hold unit U of layer L's cell state at V at every step",
    ":ablate L:U": "zero unit U of layer L at every step",
    ":force L G=V": "hold gate G of every unit of layer L at V (:force 1 f=1: layer 1 never forgets)",
    ":clear": "remove every :clamp, :ablate and :force",
    ":explain L:U": "the equations of unit U of layer L at the last token, with the numbers",
    ":seed N": "seed the sampler (same seed, same text); ':seed' alone unseeds it",
    ":reset": "forget all text read so far",
    ":load CKPT": "open another checkpoint (folder or bundled name)",
    ":info": "what the model is and how it was trained",
    ":save FILE": "save the session (text, settings, layer, units, interventions) and its per-token traces as "
                  "JSON; :open or repl --session restores it",
    ":record FILE": "record keys, commands and streams with their times (lstm-repl replay FILE plays them); "
                    "':record' alone stops",
    ":learn on|off|reset": "learn from what is read, as you type (dynamic evaluation); reset: the trained weights",
    ":export DIR": "save the weights learning adapted as a checkpoint, with a card saying what they learned from",
    ":quit": "leave (Ctrl-D too)",
}
COMMAND_NAMES = [usage.split()[0] for usage in HELP]


class CommandError(LstmReplError):
    """A bad command or value: shown in the status line."""


@dataclass
class CommandResult:
    message: str = ""  # one line for the status line
    output: str = ""  # printed above the prompt
    quit: bool = False
    record: str | None = None  # :record's file, for the shell to start recording into ("": stop)
    paste: str | None = None  # text to read in as a paste (:open)
    stream: bool = False  # start a stream (:regen)
    transcript_replaced: bool = False  # the text above the prompt is another now (:undo, :open of a session)


def run_command(shell: Shell, line: str) -> CommandResult:
    name, arg = (line.split(maxsplit=1) + ["", ""])[:2]  # split at any whitespace: a pasted newline too
    handler = _HANDLERS.get(name)
    if handler is None:
        close = [c for c in COMMAND_NAMES if c.startswith(name)]
        hint = f" (did you mean {', '.join(close)}?)" if close and name != ":" else " (:help lists them)"
        raise CommandError(f"unknown command {name}{hint}")
    return handler(shell, arg.strip())


MAX_NUMBER_TEXT = 64  # characters: a longer argument is no number a command takes


def _shortened(arg: str) -> str:
    """A typed argument as an error message echoes it: whole, or its start and its length."""
    return arg if len(arg) <= MAX_NUMBER_TEXT else f"{arg[:20]}... ({len(arg):,} characters)"


def _number(arg: str, kind: type, name: str, low: float = -math.inf, high: float = math.inf):
    """`arg` as a finite int or float from low to high, else a CommandError."""
    shown = _shortened(arg)
    wanted = f"{name} needs a {'whole' if kind is int else 'finite'} number"
    try:
        value = kind(arg) if len(arg) <= MAX_NUMBER_TEXT else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise CommandError(f"{wanted}, got {shown or 'nothing'!r}")
    if not low <= value <= high:
        raise CommandError(f"{name} must be {_bound(low, high)}, got {shown}")
    return value


def _bound(low: float, high: float) -> str:
    if high == math.inf:
        return f"at least {low}"
    return f"at most {high}" if low == -math.inf else f"between {low} and {high}"


def _set(shell: Shell, **changes) -> SampleConfig:
    """Change sampling settings, checked once, by the rules the CLI's options meet (SampleConfig)."""
    settings = shell.session.settings
    try:
        shell.session.settings = replace(settings, sampling=replace(settings.sampling, **changes))
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    return shell.session.settings.sampling


def _help(shell: Shell, arg: str) -> CommandResult:
    lines = [f"  {usage:<16} {text}" for usage, text in HELP.items()]
    keys = ("  Enter streams a continuation · Alt-Enter (Esc Enter) starts a new line without streaming · "
            '""" on a line of its own starts and ends a block of lines · → accepts the ghost text · Tab its next '
            "token · Up/Down and Ctrl-R recall lines · Ctrl-C stops · Ctrl-D quits")
    return CommandResult("commands listed above", "\n".join(["commands:", *lines, keys]))


def _layer(shell: Shell, arg: str) -> CommandResult:
    layers = shell.session.model.config.layers
    shell.panel.layer = _number(arg, int, ":layer", 1, layers) - 1
    return CommandResult(f"showing layer {shell.panel.layer + 1} of {layers}")


def _units(shell: Shell, arg: str) -> CommandResult:
    try:
        units = parse_unit_list(arg, shell.session.model.config.hidden, ":units")
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    shell.panel.units = units or None
    return CommandResult(
        f"pinned units {' '.join(map(str, units))}" if units else "showing the units that changed most"
    )


def _seed(shell: Shell, arg: str) -> CommandResult:
    seed = _number(arg, int, ":seed", MIN_SEED, MAX_SEED) if arg else None
    shell.session.reseed(seed)
    return CommandResult(f"seed {seed}" if seed is not None else "sampler unseeded")


def _reset(shell: Shell, arg: str) -> CommandResult:
    shell.history, shell.streams = "", []
    shell.session.reset()
    return CommandResult("forgot everything read so far")


def _load(shell: Shell, arg: str) -> CommandResult:
    if not arg:
        raise CommandError(":load needs a checkpoint folder or bundled model name")
    loaded = shell.load_checkpoint(arg)
    shell.session.load(loaded)
    shell.history, shell.streams = "", []
    shell.panel.layer = min(shell.panel.layer, loaded.model.config.layers - 1)
    shell.panel.units = None
    shell.panel.labels = saved_labels(shell.session)
    return CommandResult(f"loaded {loaded.name}")


def _intervention(kind: str) -> Callable[[Shell, str], CommandResult]:
    def handler(shell: Shell, arg: str) -> CommandResult:
        from lstm_repl.session.intervention_parser import forceable_gates, parse

        session = shell.session
        config = session.model.config
        gates = forceable_gates(session.model)
        try:
            item = parse(kind, arg, config.layers, config.hidden, gates)
        except LstmReplError as exc:
            raise CommandError(str(exc)) from None
        session.intervene(session.interventions.with_(item))
        return CommandResult(f"{item}: every step takes it from now on · :clear removes it")

    return handler


def _clear(shell: Shell, arg: str) -> CommandResult:
    from lstm_repl.model.interventions import Interventions

    count = len(shell.session.interventions.items)
    if count:
        shell.session.intervene(Interventions())
    return CommandResult(f"removed {count} intervention{'s' * (count != 1)}" if count else "no interventions set")


FIND_PINS = 6  # units pinned by :find
FIND_MIN_TOKENS = 20
FIND_CHARACTERS = 10_000  # :find scores the last this many characters of the text (~4 s at 2 x 512 here)


def _find(shell: Shell, arg: str) -> CommandResult:
    from lstm_repl.analysis.features import find_feature
    from lstm_repl.analysis.unit_scores import UnitScore
    from lstm_repl.analysis.unit_search import score_units

    if not arg:
        raise CommandError(":find needs a feature (in-quotes, in-brackets, line-position, ...) or a /regex/")
    try:
        feature = find_feature(arg)
    except LstmReplError as exc:
        raise CommandError(str(exc)) from None
    session = shell.session
    if len(session.ids) < FIND_MIN_TOKENS:
        raise CommandError(f":find scores units on the text read so far: type or stream some first "
                           f"(at least {FIND_MIN_TOKENS} tokens)")
    text = session.text[-FIND_CHARACTERS:]  # bounded: a few seconds at most, however long the session
    result = score_units(session.model, session.vocab, text, feature)
    if feature.binary and result.positives in (0, result.tokens):
        where = "inside" if result.positives == 0 else "outside"
        raise CommandError(f"{feature.name}: no token of the text so far is {where} it; type some text that is")
    ranking = result.ranked()
    if not ranking:
        raise CommandError(f"{feature.name} does not change over the text so far: nothing to rank units by")
    layer = ranking[0].layer
    per_unit: dict[int, UnitScore] = {}  # each unit at its best quantity, best units first
    for score in ranking:
        if score.layer == layer and score.unit not in per_unit:
            per_unit[score.unit] = score
    best = list(per_unit.values())[:FIND_PINS]
    shell.panel.layer, shell.panel.units = layer, [s.unit for s in best]
    shell.panel.labels = {**shell.panel.labels, **{(layer, s.unit): f"{feature.name} {s.score:.2f}" for s in best}}
    found = ", ".join(f"#{s.unit} {s.quantity} {s.score:.2f}{' low' if s.direction == 'low inside' else ''}"
                      for s in best[:3])
    return CommandResult(f"{feature.name} on {result.tokens:,} tokens: layer {layer + 1} {found} · pinned")


def _explain(shell: Shell, arg: str) -> CommandResult:
    from lstm_repl.analysis.explain import explain_unit
    from lstm_repl.session.intervention_parser import parse_layer_unit

    session = shell.session
    config = session.model.config
    if not arg:
        raise CommandError(":explain needs LAYER:UNIT, e.g. :explain 1:42")
    try:
        layer, unit = parse_layer_unit(arg, config.layers, config.hidden, ":explain")
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    ids = session.ids.tolist()
    if not ids:
        raise CommandError(":explain explains the last token read: type some text first")
    explanation = explain_unit(session.model, session.vocab, ids, layer, unit, session.state(len(ids) - 1))
    lines = explanation.lines()
    if session.interventions:
        lines.append("  (the equations as the weights have them: the :clamp, :ablate and :force set are not applied)")
    return CommandResult(f"layer {layer + 1} unit {unit} explained above", "\n".join(lines))


def _info(shell: Shell, arg: str) -> CommandResult:
    from lstm_repl.model.describe import describe, summary_lines

    return CommandResult("model info above", "\n".join(summary_lines(describe(shell.session.loaded))))


SAVED_GATES = 2000  # :save writes every gate of the last this many tokens (all of a shorter text)


def _save(shell: Shell, arg: str) -> CommandResult:
    from lstm_repl.session.tracing import write_document
    from lstm_repl.shell.session_file import session_json

    if not arg:
        raise CommandError(":save needs a file name, e.g. :save session.json")
    if not shell.writes_files:
        return CommandResult(f"replay: {arg} not saved (a replay writes no files)")
    path = Path(arg).expanduser()
    session = shell.session
    try:
        with atomic_file(path) as f:
            header = {"session": session_json(shell), **trace_header(session, SAVED_GATES)}  # first: read from the head
            count = write_document(f, header, trace_tokens(session, SAVED_GATES))
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}; free some space or choose another file "
                           "(the file is unchanged)") from None
    gated = f", gates for the last {SAVED_GATES:,}" if count > SAVED_GATES else ""
    return CommandResult(f"saved the session, {count:,} tokens with their traces{gated}, to {path}")


def _record(shell: Shell, arg: str) -> CommandResult:
    if not shell.writes_files:
        return CommandResult("replay: not recording (a replay writes no files)")
    return CommandResult(record=arg)


def _learn(shell: Shell, arg: str) -> CommandResult:
    if shell.learning is None:
        raise CommandError(":learn needs the interactive shell")
    try:
        return CommandResult(shell.learning.command(arg))
    except LstmReplError as exc:
        raise CommandError(str(exc)) from None


def _export(shell: Shell, arg: str) -> CommandResult:
    if not arg:
        raise CommandError(":export needs a folder, e.g. :export adapted-model")
    if not shell.writes_files:
        return CommandResult(f"replay: {arg} not written (a replay writes no files)")
    if shell.learning is None:
        raise CommandError(":export needs the interactive shell")
    try:
        return CommandResult(shell.learning.export(arg))
    except LstmReplError as exc:
        raise CommandError(str(exc)) from None


def _quit(shell: Shell, arg: str) -> CommandResult:
    return CommandResult(quit=True)


# ---------------------------------------------------------------- settings by name, :show, streams taken back


def _set_named(shell: Shell, arg: str) -> CommandResult:
    from lstm_repl.shell.settings_table import SETTINGS

    name, value = (arg.split(maxsplit=1) + ["", ""])[:2]
    setting = SETTINGS.get(name)
    if setting is None:
        raise CommandError(f":set {_shortened(name) or 'NAME VALUE'}: the settings are {', '.join(SETTINGS)}")
    if name == "seed":
        return _seed(shell, value)
    if name == "stop":
        return _stop(shell, value)
    number = _number(value, setting.kind, f":set {name}", high=setting.high(shell.session))
    return CommandResult(setting.shown(getattr(_set(shell, **{setting.field: number}), setting.field)))


def _setting(name: str) -> Callable[[Shell, str], CommandResult]:
    return lambda shell, arg: _set_named(shell, f"{name} {arg}")


def _stop(shell: Shell, arg: str) -> CommandResult:
    from lstm_repl.shell.settings_table import shown_stops, unescaped

    stops = (*shell.session.settings.sampling.stops, unescaped(arg)) if arg else ()
    stops = _set(shell, stop=tuple(dict.fromkeys(stops)) or None).stops
    return CommandResult(f"streams stop at {shown_stops(stops)}" if stops else "no stop strings")


def _show(shell: Shell, arg: str) -> CommandResult:
    from lstm_repl.model.describe import describe, summary_lines
    from lstm_repl.shell.settings_table import settings_lines

    panel, edits = shell.panel, shell.session.interventions
    units = " ".join(map(str, panel.units)) if panel.units else "the units that changed most"
    lines = ["model:", *summary_lines(describe(shell.session.loaded)), "settings:",
             *settings_lines(shell.session.settings.sampling),
             "panel:", f"  layer {panel.layer + 1} of {shell.session.model.config.layers} · units {units}",
             "interventions:", *([f"  :{item}" for item in edits.items] or ["  none"])]
    return CommandResult("model, settings and interventions above", "\n".join(lines))


def _last_stream(shell: Shell, command: str) -> int:
    """Where the last stream still in the text began (streams an edit or :undo removed are dropped)."""
    while shell.streams and shell.streams[-1] > len(shell.history):
        shell.streams.pop()
    if not shell.streams:
        raise CommandError(f"{command}: no stream to take back (Enter streams one)")
    return shell.streams.pop()


def _undo(shell: Shell, arg: str) -> CommandResult:
    start = _last_stream(shell, ":undo")
    removed, shell.history = len(shell.history) - start, shell.history[:start]
    return CommandResult(f"took back the last stream ({removed:,} characters)",
                         output=f"⟲ :undo took back the last {removed:,} characters", transcript_replaced=True)


def _regen(shell: Shell, arg: str) -> CommandResult:
    start = _last_stream(shell, ":regen")
    shell.history = shell.history[:start]
    seed = shell.session.fresh_seed()
    message = f"sampling the last stream again with seed {seed}"
    return CommandResult(message, output=f"⟲ :regen {message}", stream=True, transcript_replaced=True)


OPEN_TEXT_LIMIT = 16 << 20  # bytes of a text file :open reads in (a long book; the model reads it in seconds)


def _open(shell: Shell, arg: str) -> CommandResult:
    from lstm_repl.safe_read import read_text
    from lstm_repl.shell.session_file import is_session_file, read_session, restore

    if not arg:
        raise CommandError(":open needs a file: a text to read in, or a session :save wrote")
    path = Path(arg).expanduser()
    if is_session_file(path):
        message = restore(shell, read_session(path))
        return CommandResult(message, output=shell.history, transcript_replaced=True)
    return CommandResult(f"read {path} in", paste=read_text(path, OPEN_TEXT_LIMIT, CommandError, "text file"))


_HANDLERS: dict[str, Callable[[Shell, str], CommandResult]] = {
    ":help": _help, ":temp": _setting("temp"), ":topk": _setting("topk"), ":topp": _setting("topp"),
    ":len": _setting("len"), ":layer": _layer,
    ":units": _units, ":find": _find, ":clamp": _intervention("clamp"), ":ablate": _intervention("ablate"),
    ":force": _intervention("force"), ":clear": _clear, ":seed": _seed, ":reset": _reset, ":load": _load,
    ":info": _info, ":save": _save, ":record": _record, ":quit": _quit, ":q": _quit,
    ":explain": _explain,
    ":set": _set_named, ":minp": _setting("minp"), ":stop": _stop, ":show": _show, ":regen": _regen, ":undo": _undo,
    ":open": _open, ":learn": _learn, ":export": _export,
}
