"""Typed errors. The library raises these; only cli.py turns them into one-line messages."""


class LstmReplError(Exception):
    """A problem the user can fix; the message names it and says what to do."""


class CorpusError(LstmReplError):
    """The corpus cannot be read, is empty, binary, not in the expected encoding, or too small."""


class CheckpointError(LstmReplError):
    """A checkpoint is missing, broken, truncated, mismatched or from a newer format."""


class ConfigError(LstmReplError):
    """A setting has a value the tool cannot use."""


class TrainingInterrupted(LstmReplError):
    """Training stopped on Ctrl-C after saving a resumable checkpoint."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class TrainingDiverged(LstmReplError):
    """Training stopped: losses or gradients kept coming out non-finite, or the weights did."""
