"""Interventions: change what a unit or a gate does and watch the model go on without it.

- clamp LAYER:UNIT=VALUE holds the unit's cell state c at VALUE (h for cells without a c);
  its h follows from the held c (h = o * tanh(c)).
- ablate LAYER:UNIT zeroes the unit: its h and c are 0 after every step.
- force LAYER GATE=VALUE holds a gate of every unit of the layer at VALUE: `force 1 f=1` makes
  layer 1 never forget (c = c₋₁ + i * g).

Each cell kind's gate path calls the three hooks of an Interventions object at the same points
of its equations: gates() once its gates are computed (before they are combined), memory() on
the new c (or h), output() on the new h and c. Layers and units are 0-based here; on the command
line and in the shell, layers count from 1 as everywhere else.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from lstm_repl.errors import ConfigError

KINDS = ("clamp", "ablate", "force")
_UNIT = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_UNIT_VALUE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*=\s*(\S+)\s*$")
_GATE_VALUE = re.compile(r"^\s*(\d+)\s*[: ]\s*([a-z])\s*=\s*(\S+)\s*$")


@dataclass(frozen=True)
class Intervention:
    kind: str  # clamp | ablate | force
    layer: int  # 0-based
    unit: int | None = None  # clamp, ablate
    gate: str | None = None  # force
    value: float = 0.0

    def __str__(self) -> str:
        if self.kind == "force":
            return f"force {self.layer + 1} {self.gate}={self.value:g}"
        if self.kind == "clamp":
            return f"clamp {self.layer + 1}:{self.unit}={self.value:g}"
        return f"ablate {self.layer + 1}:{self.unit}"


def forceable_gates(model) -> tuple[str, ...]:
    """The gates `force` can hold: the cell's own gates, not c or h, nor a derived one (a coupled
    cell's i is 1 - f: force f instead)."""
    return tuple(q.symbol for q in model.rnn.quantities if q.symbol not in ("c", "h") and not q.derived)


def parse(kind: str, spec: str, layers: int, hidden: int, gates: tuple[str, ...]) -> Intervention:
    """'1:244=0.5' (clamp), '1:244' (ablate), '1 f=1' or '1:f=1' (force), layers from 1."""
    forms = {"clamp": ("LAYER:UNIT=VALUE", _UNIT_VALUE), "ablate": ("LAYER:UNIT", _UNIT),
             "force": ("LAYER GATE=VALUE", _GATE_VALUE)}
    form, pattern = forms[kind]
    shown = _shown(spec)
    match = pattern.match(spec)
    if not match:
        raise ConfigError(f"{kind} {shown}: write {form}, e.g. {_EXAMPLES[kind]}")
    layer = _index(match.group(1)) - 1
    if not 0 <= layer < layers:
        raise ConfigError(f"{kind} {shown}: the model has layers 1-{layers}")
    value = _value(kind, shown, match.group(3)) if kind != "ablate" else 0.0
    if kind == "force":
        gate = match.group(2)
        if gate not in gates:
            raise ConfigError(f"force {shown}: this cell's gates are {', '.join(gates)}")
        return Intervention("force", layer, gate=gate, value=value)
    unit = _index(match.group(2))
    if not 0 <= unit < hidden:
        raise ConfigError(f"{kind} {shown}: units are 0-{hidden - 1}")
    return Intervention(kind, layer, unit=unit, value=value)


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


class Interventions:
    """A set of interventions, as the gate path applies them (see the module's docstring)."""

    def __init__(self, items: list[Intervention] | tuple[Intervention, ...] = ()):
        self.items = tuple(dict.fromkeys(items))  # in order, each once

    def __bool__(self) -> bool:
        return bool(self.items)

    def __str__(self) -> str:
        return " · ".join(map(str, self.items))

    def with_(self, item: Intervention) -> Interventions:
        """Add one; a later clamp or force of the same unit or gate replaces the earlier one."""
        def same_target(other: Intervention) -> bool:
            return (other.kind, other.layer, other.unit, other.gate) == (item.kind, item.layer, item.unit, item.gate)

        return Interventions([*(i for i in self.items if not same_target(i)), item])

    def gates(self, layer: int, gates: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for item in self.items:
            if item.kind == "force" and item.layer == layer and item.gate in gates:
                gates[item.gate] = torch.full_like(gates[item.gate], item.value)
        return gates

    def memory(self, layer: int, memory: torch.Tensor) -> torch.Tensor:
        """The new cell state c (h for cells without one), with clamped units held."""
        clamped = [i for i in self.items if i.kind == "clamp" and i.layer == layer]
        if not clamped:
            return memory
        memory = memory.clone()
        for item in clamped:
            memory[:, item.unit] = item.value
        return memory

    def output(self, layer: int, h: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        ablated = [i.unit for i in self.items if i.kind == "ablate" and i.layer == layer]
        if not ablated:
            return h, c
        h = h.clone()
        h[:, ablated] = 0
        if c is not None:
            c = c.clone()
            c[:, ablated] = 0
        return h, c

    def to_json(self) -> list[str]:
        return [str(i) for i in self.items]


NONE = Interventions()
