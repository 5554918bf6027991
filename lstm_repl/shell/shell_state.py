"""What the shell's commands may change, in one place: the session, what the panel shows, the
transcript and the learning; and which model it is, as recordings and saved sessions name it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from lstm_repl.session.session import Session
from lstm_repl.shell.recording import ModelId, weights_sha256
from lstm_repl.shell.views import PanelSettings


@dataclass
class Shell:
    """What commands may change: the session, what the panel shows, the transcript."""

    session: Session
    panel: PanelSettings = field(default_factory=PanelSettings)
    history: str = ""  # text committed above the prompt, read by the model before the buffer
    load_checkpoint: Callable[[str], object] | None = None  # checkpoint.load, injected
    writes_files: bool = True  # False while replaying: :save and :record write nothing
    streams: list[int] = field(default_factory=list)  # where each stream began in `history` (:undo, :regen)
    learning: object | None = None  # the app's learning (shell/learning.py ShellLearning), set by the app

    def __post_init__(self) -> None:
        if not self.panel.labels:
            self.panel.labels = saved_labels(self.session)


def saved_labels(session: Session) -> dict[tuple[int, int], str]:
    """The labels `lstm-repl units --save` kept beside the checkpoint (none for a model in memory)."""
    from lstm_repl.analysis.unit_labels import read_labels

    path = getattr(session.loaded, "path", None)
    return read_labels(path) if path is not None else {}


def model_id(shell: Shell) -> ModelId:
    loaded = shell.session.loaded
    return ModelId(name=loaded.name, path=str(loaded.path), sha256=weights_sha256(loaded.path, loaded.info))
