"""The cell kinds lstm-repl knows, one line each, and where each one's code lives.

This is the one list: the config accepts these kinds, the command line offers them, the model
builds them. It imports no torch, so `lstm-repl --help` lists the kinds without loading it. A new
kind is one module whose stack class follows model.base.CellStack, and one line here (or a
register_cell call at run time).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE: dict[str, str] = {  # kind -> "module:class" of its stack
    "lstm": "lstm_repl.model.lstm:LSTMStack",
    "peephole": "lstm_repl.model.peephole:PeepholeStack",
    "coupled": "lstm_repl.model.coupled:CoupledStack",
    "gru": "lstm_repl.model.gru:GRUStack",
    "rnn": "lstm_repl.model.rnn:RNNStack",
}
_LOADED: dict[str, Any] = {}


def cell_kinds() -> tuple[str, ...]:
    return tuple(_WHERE)


def stack_class(kind: str) -> Any:
    """The stack class of a kind (a model.base.CellStack), imported on first use."""
    if kind not in _LOADED:
        module, _, name = _WHERE[kind].partition(":")
        _LOADED[kind] = getattr(import_module(module), name)
    return _LOADED[kind]


def register_cell(stack: Any) -> None:
    """Add a kind at run time: a class with the CellStack attributes, its `kind` naming it."""
    _WHERE[stack.kind] = f"{stack.__module__}:{stack.__qualname__}"
    _LOADED[stack.kind] = stack
