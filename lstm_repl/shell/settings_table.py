"""The sampling settings the shell can change, in one table: `:set NAME VALUE` and the short
commands (:temp, :topk, :topp, :minp, :len) parse through it, `:show` and the status line show
it. Every value is then checked once, by SampleConfig."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from lstm_repl.config import SampleConfig


@dataclass(frozen=True)
class Setting:
    field: str  # of SampleConfig
    kind: type  # int or float: what the value is read as
    meaning: str
    shown: Callable[[object], str]  # the status message after a change
    high: Callable[[object], float] = lambda session: math.inf  # a bound the model sets (SampleConfig checks the rest)


SETTINGS: dict[str, Setting] = {
    "temp": Setting("temperature", float, "sampling temperature (0 = greedy)", lambda v: f"temperature {v}"),
    "topk": Setting("top_k", int, "the K most likely tokens only (0 = all)", lambda v: f"top-k {v or 'off'}",
                    lambda session: len(session.vocab)),
    "topp": Setting("top_p", float, "the smallest set of tokens whose probability reaches P", lambda v: f"top-p {v}"),
    "minp": Setting("min_p", float, "no token less likely than P times the most likely one (0 = off)",
                    lambda v: f"min-p {v or 'off'}"),
    "repeat-penalty": Setting("repeat_penalty", float, "each token seen among the last repeat-window ones is this "
                              "many times less likely (1 = off)", lambda v: f"repeat penalty {v}"),
    "repeat-window": Setting("repeat_window", int, "tokens the repeat penalty looks back over",
                             lambda v: f"repeat window {v} tokens"),
    "len": Setting("length", int, "tokens streamed by Enter", lambda v: f"Enter streams {v} tokens"),
    "seed": Setting("seed", int, "same seed, same text (none: a new one each session)", lambda v: f"seed {v}"),
    "stop": Setting("stop", str, "streams end once they write one of these", lambda v: f"stop {v}"),
}


def settings_lines(sampling: SampleConfig) -> list[str]:
    """Every setting, its value and its meaning (:show)."""
    def value(setting: Setting) -> str:
        if setting.field == "stop":
            return shown_stops(sampling.stops) or "none"
        return str(getattr(sampling, setting.field))

    return [f"  {name:<15} {value(setting):<12} {setting.meaning}" for name, setting in SETTINGS.items()]


def status_text(sampling: SampleConfig) -> str:
    """The settings the status line shows: always temperature, top-k, top-p and length; the others
    only when they are on."""
    s = sampling
    parts = [f"T {s.temperature}", f"top-k {s.top_k or 'off'}", f"top-p {s.top_p}"]
    if s.min_p:
        parts.append(f"min-p {s.min_p}")
    if s.penalises:
        parts.append(f"rep ×{s.repeat_penalty}/{s.repeat_window}")
    if s.stops:
        parts.append(f"stop {shown_stops(s.stops)}")
    return " · ".join([*parts, f"len {s.length}"])


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "r": "\r"}


def unescaped(text: str) -> str:
    """A stop string as typed on one line: \\n, \\t, \\r and \\\\ stand for what they name."""
    out, chars = [], iter(text)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append(_ESCAPES.get(following, "\\" + following))
        else:
            out.append(char)
    return "".join(out)


def shown_stops(stops: tuple[str, ...]) -> str:
    """The stop strings as one line, quoted, with newlines, tabs and other unprintable characters escaped."""
    return " ".join(map(repr, stops))
