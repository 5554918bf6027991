"""lstm-repl: train an LSTM language model on your own text and watch it think, live."""

__version__ = "0.1.0"
