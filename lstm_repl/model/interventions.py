"""Interventions: change what a unit or a gate does and watch the model go on without it.

- clamp LAYER:UNIT=VALUE holds the unit's cell state c at VALUE (h for cells without a c);
  its h follows from the held c (h = o * tanh(c)).
- ablate LAYER:UNIT zeroes the unit: its h and c are 0 after every step.
- force LAYER GATE=VALUE holds a gate of every unit of the layer at VALUE: `force 1 f=1` makes
  layer 1 never forget (c = c₋₁ + i * g).

Each cell kind's gate path calls the three hooks of an Interventions object at the same points
of its equations: gates() once its gates are computed (before they are combined), memory() on
the new c (or h), output() on the new h and c. Layers and units are 0-based here; on the command
line and in the shell, layers count from 1 as everywhere else; what they type is read by
session/intervention_parser.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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
