"""The network: cell kinds (each with a fused path and a gate path) and the language model."""

from lstm_repl.model.base import Gates, Quantity, State
from lstm_repl.model.lm import LanguageModel, count_parameters

__all__ = ["Gates", "LanguageModel", "Quantity", "State", "count_parameters"]
