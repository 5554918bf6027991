"""api: lstm-repl from Python and notebooks. `load(name_or_path)` gives a Model whose generate,
trace, score, units and explain are what the CLI's generate, trace, eval and units commands call.

May import: analysis, training, session, model, data, the top-level primitives, torch and numpy.
Never the shell, bench or the CLI; never rich, click or prompt_toolkit. It raises the typed errors
of lstm_repl/errors.py and prints nothing."""

from lstm_repl.api.model import Model, load
from lstm_repl.api.trace import Trace

__all__ = ["Model", "Trace", "load"]
