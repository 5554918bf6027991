"""Reading units and interventions as people write them: '1:244' (LAYER:UNIT), '0-7 42' (a list
of units), 'clamp 1:244=0.5', 'ablate 1:244', 'force 1 f=1' (layers from 1, as on the command line
and in the shell), checked against the model, each mistake one line that shows the form to write.
model/interventions.py applies them."""

from __future__ import annotations

import math
import re

from lstm_repl.errors import ConfigError
from lstm_repl.model.interventions import Intervention

KINDS = ("clamp", "ablate", "force")
_UNIT = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_UNIT_RANGE = re.compile(r"(\d+)(?:-(\d+))?")
_GATE_VALUE = re.compile(r"^\s*(\d+)\s*[: ]\s*([a-z])\s*=\s*(\S+)\s*$")


def forceable_gates(model) -> tuple[str, ...]:
    """The gates `force` can hold: the cell's own gates, not c or h, nor a derived one (a coupled
    cell's i is 1 - f: force f instead)."""
    return tuple(q.symbol for q in model.rnn.quantities if q.symbol not in ("c", "h") and not q.derived)


def parse(kind: str, spec: str, layers: int, hidden: int, gates: tuple[str, ...]) -> Intervention:
    """'1:244=0.5' (clamp), '1:244' (ablate), '1 f=1' or '1:f=1' (force), layers from 1."""
    if kind == "force":
        return _force(spec, layers, gates)
    shown = _shown(spec)
    unit_part, equals, value_text = spec.partition("=")
    if (kind == "clamp") != bool(equals) or not _UNIT.match(unit_part):
        form = "LAYER:UNIT=VALUE" if kind == "clamp" else "LAYER:UNIT"
        raise ConfigError(f"{kind} {shown}: write {form}, e.g. {_EXAMPLES[kind]}")
    layer, unit = parse_layer_unit(unit_part, layers, hidden, named=f"{kind} {shown}")
    value = _value(kind, shown, value_text) if kind == "clamp" else 0.0
    return Intervention(kind, layer, unit=unit, value=value)


def parse_layer_unit(spec: str, layers: int, hidden: int, named: str | None = None) -> tuple[int, int]:
    """'1:244' -> (0, 244): a layer counted from 1 (as people write it) and a unit from 0, checked
    against the model. Each mistake is a ConfigError that starts with `named` (the spec itself
    by default)."""
    named = named or _shown(spec)
    match = _UNIT.match(spec)
    if not match:
        raise ConfigError(f"{named}: write LAYER:UNIT, e.g. 1:244")
    layer, unit = _index(match.group(1)) - 1, _index(match.group(2))
    if not 0 <= layer < layers:
        raise ConfigError(f"{named}: the model has layers 1-{layers}")
    if not 0 <= unit < hidden:
        raise ConfigError(f"{named}: units are 0-{hidden - 1}")
    return layer, unit


def parse_unit_list(text: str, hidden: int, named: str = "") -> list[int]:
    """'0-7', '3,17,42' or '3 17 42' -> unit indices of a layer of `hidden`, each range checked
    before it is expanded (0-999999999 is refused, not built), at most `hidden` of them; none for
    an empty text. Each mistake is a ConfigError, after `named` when one is given."""
    named, chosen = f"{named}: " if named else "", []
    for part in text.replace(",", " ").split():
        match = _UNIT_RANGE.fullmatch(part)
        if not match:
            raise ConfigError(f"{named}{_shown(part)} is not a unit number or range; write e.g. 0-7 or 3,17,42")
        first, last = _index(match.group(1)), _index(match.group(2) or match.group(1))
        if not 0 <= first <= last < hidden:
            raise ConfigError(f"{named}{_shown(part)}: units are 0-{hidden - 1}")
        if len(chosen) + last - first + 1 > hidden:
            raise ConfigError(f"{named}more units than the layer's {hidden}")
        chosen.extend(range(first, last + 1))
    return chosen


def _force(spec: str, layers: int, gates: tuple[str, ...]) -> Intervention:
    shown = _shown(spec)
    match = _GATE_VALUE.match(spec)
    if not match:
        raise ConfigError(f"force {shown}: write LAYER GATE=VALUE, e.g. {_EXAMPLES['force']}")
    layer = _index(match.group(1)) - 1
    if not 0 <= layer < layers:
        raise ConfigError(f"force {shown}: the model has layers 1-{layers}")
    value = _value("force", shown, match.group(3))
    gate = match.group(2)
    if gate not in gates:
        raise ConfigError(f"force {shown}: this cell's gates are {', '.join(gates)}")
    return Intervention("force", layer, gate=gate, value=value)


_EXAMPLES = {"clamp": "1:244=0.5", "ablate": "1:244", "force": "1 f=1"}
# A gate lives in [0, 1], g and h in [-1, 1], and h sees a cell state through tanh (saturated long
# before 1,000); a value past float32's range (1e39) could not even be written into the state.
MAX_VALUE = 1000.0
_LONGEST_INDEX = 9  # digits; a longer layer or unit number is out of range (and Python refuses past 4,300)


def _index(digits: str) -> int:
    return int(digits) if len(digits) <= _LONGEST_INDEX else 10**_LONGEST_INDEX


def _shown(spec: str) -> str:
    """The spec as an error line quotes it: whole, or its start when it is long."""
    return repr(spec) if len(spec) <= 40 else f"{spec[:30]!r}... ({len(spec):,} characters)"


def _value(kind: str, shown: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{kind} {shown}: {text[:30]!r} is not a number") from None
    if not (math.isfinite(value) and abs(value) <= MAX_VALUE):
        raise ConfigError(f"{kind} {shown}: the value must be a number from -{MAX_VALUE:g} to {MAX_VALUE:g}")
    return value
