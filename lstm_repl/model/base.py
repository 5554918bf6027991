"""What every recurrent cell kind provides, so the language model can stack any of them."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Protocol

import torch

from lstm_repl.quantities import Quantity  # noqa: F401  (re-exported for cell modules)

State = tuple[torch.Tensor, ...]  # each (layers, batch, hidden); LSTM kinds: (h, c), others: (h,)
Gates = list[dict[str, torch.Tensor]]  # per layer: quantity symbol -> (batch, hidden)


def layer_weight_names(layer: int) -> tuple[str, str, str, str]:
    return (f"weight_ih_l{layer}", f"weight_hh_l{layer}", f"bias_ih_l{layer}", f"bias_hh_l{layer}")


class CellStack(Protocol):
    """What a cell kind's stack of layers provides (it is also an nn.Module). cells.py lists them."""

    kind: str  # the name in configs and on the command line: "lstm"
    name: str  # as the UI says it: "peephole LSTM"
    state_names: tuple[str, ...]  # the state's tensors: ("h", "c") or ("h",)
    quantities: tuple[Quantity, ...]  # what step() returns per layer, in display order
    has_fused_kernel: bool  # run() is PyTorch's fused kernel (else a hand-written sequence)
    packer: Callable[[Any, str, Any], Any] | None  # (language model, precision, earlier pack or None) -> a packed step

    def __init__(self, input_size: int, hidden: int, layers: int, dropout: float) -> None: ...

    def run(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """Training path. x: (B, T, in) -> outputs (B, T, H), final state."""

    def step(self, x: torch.Tensor, state: State, edits: Any = None) -> tuple[torch.Tensor, State, Gates]:
        """Gate path, one time step. x: (B, in) -> top h (B, H), new state, per-layer gates.
        `edits` (interventions.Interventions): call edits.gates(layer, gates) once the gates are
        computed, edits.memory(layer, c) on the new cell state (h without one) and
        edits.output(layer, h, c) on the new h and c; use what they return."""

    def zero_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> State: ...


class SingleStateFused:
    """For fused kinds whose state is h alone (nn.GRU, nn.RNN): wraps it in a one-tuple."""

    packer = None

    def run(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """Fused path. x: (B, T, in) -> outputs (B, T, H), state."""
        out, h = super().forward(x, None if state is None else state[0])
        return out, (h,)

    def zero_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> State:
        return (torch.zeros((self.num_layers, batch, self.hidden_size), device=device, dtype=dtype),)


def try_script(obj: Any) -> Any:
    """obj compiled by TorchScript; where that fails, obj itself (same results, slower).

    TorchScript is deprecated in favour of torch.compile, but for per-step loops it measured
    faster than both torch.compile and plain Python (docs/cells.md), so it stays while it works:
    a torch without TorchScript, or without the source files, gets the plain Python."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(obj)
    except Exception:  # noqa: BLE001
        return obj
