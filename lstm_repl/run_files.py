"""What a training run writes in its folder: best/, last/ (with the state to resume from) and the
log. A write that fails (a full disk) is reported as a warning and the run goes on, to write again
at the next chance, except at the end of the run, which has no next chance; weights that are not
finite are never written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from lstm_repl import checkpoint, resume_state
from lstm_repl.distributed import gather_streams
from lstm_repl.divergence import weights_finite
from lstm_repl.errors import CheckpointError
from lstm_repl.events import Event, Report
from lstm_repl.run_records import checkpoint_info

if TYPE_CHECKING:
    from lstm_repl.train import Trainer


def save(trainer: Trainer, name: str, resume: bool, carry=None) -> None:
    """Write the checkpoint `name` (best or last; with resume=True, the training state too, with
    `carry`, the carried state of every stream: several processes' gathered, else the trainer's)."""
    if not weights_finite(trainer.model):  # last/ stays the last good state
        raise trainer.diverged("the weights are no longer finite")
    carry = trainer.state if carry is None else carry
    state = (resume_state.capture(trainer.position, trainer.optimizer, trainer.scaler, carry, trainer.device)
             if resume else None)
    if state is not None:  # where to read the corpus again: for --resume on this machine, never in config.json
        state["json"]["corpus_paths"] = trainer.corpus_paths
    checkpoint.save(trainer.out_dir / name, trainer.model, trainer.vocab, trainer.config, checkpoint_info(trainer),
                    state)


def save_validated(trainer: Trainer, val_loss: float, report: Report, final: bool, carry) -> bool:
    """After a validation: best/ if it is the best so far, and last/. -> whether best/ was written
    (a best that could not be saved does not count as one, so the next good one is saved)."""
    position = trainer.position
    best = val_loss < position.best_val_loss
    if best:
        previous, position.best_val_loss = position.best_val_loss, val_loss
        if not save_or_warn(trainer, "best", report, final, carry=carry):
            position.best_val_loss, best = previous, False
    position.progress = trainer.bounds.schedule(position)
    save_or_warn(trainer, "last", report, final, resume=True, carry=carry)
    return best


def save_last(trainer: Trainer) -> None:
    """A resumable last/ now (Ctrl-C): every process gives its streams' state, the first saves."""
    carry = gather_streams(trainer.ranks, trainer.state)
    if trainer.ranks.leader:
        trainer.position.progress = trainer.bounds.schedule(trainer.position)
        save(trainer, "last", resume=True, carry=carry)


def save_or_warn(trainer: Trainer, name: str, report: Report, final: bool, resume: bool = False,
                 carry=None) -> bool:
    """-> whether it was saved."""
    return _or_warn(trainer, lambda: save(trainer, name, resume, carry), report, final)


def append_or_warn(trainer: Trainer, record: dict, report: Report) -> None:
    _or_warn(trainer, lambda: trainer.log.append(record), report)


def _or_warn(trainer: Trainer, write: Callable[[], None], report: Report, final: bool = False) -> bool:
    try:
        write()
        return True
    except CheckpointError as exc:
        if final:
            raise
        report(Event("warning", trainer.position.step, {"message": str(exc)}))
        return False
