"""lstm-repl: train an LSTM language model on your own text and watch it think, live.

From Python: `lstm_repl.load("shakespeare-char")` (or a checkpoint folder or run) gives a model
with generate, trace, score, units and explain (lstm_repl/api). `import lstm_repl` stays cheap:
torch is imported on the first use of `load`, not before."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["SampleConfig", "load"]


def __getattr__(name: str) -> Any:
    """`load` and `SampleConfig`, imported when first asked for."""
    if name == "load":
        from lstm_repl.api import load

        return load
    if name == "SampleConfig":
        from lstm_repl.config import SampleConfig

        return SampleConfig
    raise AttributeError(f"module 'lstm_repl' has no attribute {name!r}")
