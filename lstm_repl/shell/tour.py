"""The scripted tour `lstm-repl demo` plays: a recording made up rather than recorded, typed at a
person's pace. It sets a stream length, types a line, stops on the full stop (where the forget
gates let go), streams a continuation, pins the model's labelled units (units.json, written by
`lstm-repl units --save`) and types on so they move. No prompt_toolkit, no torch."""

from __future__ import annotations

import random
from pathlib import Path

from lstm_repl.shell.recording import Event, Header, ModelId, Recording, weights_sha256
from lstm_repl.analysis.unit_labels import read_labels

TYPING_CPS = 9.0  # characters a second, give or take a third
SETTINGS = {"temperature": 0.7, "top_k": 0, "top_p": 1.0, "length": 120, "seed": 1}
PINNED = 4  # labelled units pinned
LINE = "To be, or not to be"
MORE = " (aside) Speak, speak"


class _Script:
    def __init__(self):
        self.t, self.events, self.pace = 0.8, [], random.Random(0)

    def type(self, text: str) -> None:
        for character in text:
            self.events.append(Event(round(self.t, 3), keys=character))
            self.t += self.pace.uniform(0.67, 1.33) / TYPING_CPS

    def press(self, keys: str, pause: float = 0.0) -> None:
        self.events.append(Event(round(self.t, 3), keys=keys))
        self.t += 0.4 + pause

    def pause(self, seconds: float) -> None:
        self.t += seconds


def labelled_units(folder: Path) -> tuple[int, list[int]]:
    """The layer of the best-scoring labelled unit and its best labelled units (0-based layer)."""
    labels = read_labels(folder)
    if not labels:
        return 0, []
    scored = sorted(labels.items(), key=lambda item: -float(item[1].rsplit(" ", 1)[1]))
    layer = scored[0][0][0]
    return layer, [unit for (lay, unit), _ in scored if lay == layer][:PINNED]


def tour(loaded, columns: int = 120, rows: int = 36) -> Recording:
    """The tour for a loaded checkpoint, as a recording `replay` plays."""
    script = _Script()
    script.type(":len 120")
    script.press("\r", pause=0.3)
    script.type(LINE)
    script.pause(0.5)
    script.type(".")
    script.pause(3.0)  # the full stop: the forget row and the mean of f drop
    script.press("\r", pause=1.5)  # Enter streams a continuation
    layer, units = labelled_units(loaded.path)
    if units:
        script.type(f":layer {layer + 1}")
        script.press("\r")
        script.type(":units " + " ".join(map(str, units)))
        script.press("\r", pause=1.0)
        script.type(MORE)
        script.pause(3.0)
    model = ModelId(loaded.name, str(loaded.path), weights_sha256(loaded.path, loaded.info))
    header = Header(model=model, settings=dict(SETTINGS), columns=columns, rows=rows)
    return Recording(Path("<tour>"), header, script.events)
