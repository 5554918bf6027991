"""model: the network and its files. Owns the cell kinds (each a fused path over PyTorch's
kernels and a gate path over the same weights that returns every gate), the language model
(embedding -> recurrent stack -> full or adaptive softmax), the packed one-token step,
interventions as the gate path applies them, which precisions and devices run here, checkpoints
(safetensors + JSON, never pickle) and what `info` says about one.

May import: data (the vocabulary a checkpoint holds), the top-level primitives, torch. Never the
session, training, analysis, the shell, bench or the CLI; never rich, click or prompt_toolkit."""

from lstm_repl.model.base import Gates, Quantity, State
from lstm_repl.model.lm import LanguageModel, count_parameters

__all__ = ["Gates", "LanguageModel", "Quantity", "State", "count_parameters"]
