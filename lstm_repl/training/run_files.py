"""What a training run writes in its folder: best/, last/ (with the state to resume from) and the
log. A write that fails (a full disk) is reported as a warning and the run goes on, to write again
at the next chance, except at the end of the run, which has no next chance; weights that are not
finite are never written."""

from __future__ import annotations

from typing import Callable

from lstm_repl.errors import CheckpointError
from lstm_repl.model import LanguageModel, checkpoint
from lstm_repl.training.divergence import diverged, weights_finite
from lstm_repl.training.events import Event, Report
from lstm_repl.training.run_records import RunSetup, checkpoint_info
from lstm_repl.training.runlog import RunLog
from lstm_repl.training.schedule import Position

TrainingState = Callable[[], dict]  # -> resume_state.capture(...) of the moment it is called


class RunFolder:
    def __init__(self, setup: RunSetup, log: RunLog):
        self.setup, self.log = setup, log

    def save(self, name: str, model: LanguageModel, pos: Position, training: TrainingState | None = None) -> None:
        """Write the checkpoint `name` (best or last; given `training`, the state to resume from)."""
        setup = self.setup
        if not weights_finite(model):  # last/ stays the last good state
            raise diverged("the weights are no longer finite", pos.step, setup.out_dir, setup.config.lr)
        state = training() if training is not None else None
        if state is not None:  # where to read the corpus again: for --resume on this machine, never in config.json
            state["json"]["corpus_paths"] = setup.corpus_paths
        checkpoint.save(setup.out_dir / name, model, setup.vocab, setup.config, checkpoint_info(setup, model, pos),
                        state)

    def save_validated(self, model: LanguageModel, pos: Position, val_loss: float, report: Report, final: bool,
                       training: TrainingState) -> bool:
        """After a validation: best/ if it is the best so far, and last/. -> whether best/ was written
        (a best that could not be saved does not count as one, so the next good one is saved). The
        caller sets pos.progress for last/ first."""
        best = val_loss < pos.best_val_loss
        if best:
            previous, pos.best_val_loss = pos.best_val_loss, val_loss
            if not self._or_warn(lambda: self.save("best", model, pos), pos, report, final):
                pos.best_val_loss, best = previous, False
        self._or_warn(lambda: self.save("last", model, pos, training), pos, report, final)
        return best

    def append_or_warn(self, record: dict, pos: Position, report: Report) -> None:
        self._or_warn(lambda: self.log.append(record), pos, report)

    @staticmethod
    def _or_warn(write: Callable[[], None], pos: Position, report: Report, final: bool = False) -> bool:
        """-> whether it was written."""
        try:
            write()
            return True
        except CheckpointError as exc:
            if final:
                raise
            report(Event("warning", pos.step, {"message": str(exc)}))
            return False
