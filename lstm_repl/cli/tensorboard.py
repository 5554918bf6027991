"""`train --tensorboard DIR`: the run's curves as TensorBoard event files, beside the progress display.

Scalars, by step:
- loss/train: the training loss in nats per token, each logged step;
- loss/validation and validation/bits_per_character (and validation/perplexity_per_word), each
  validation;
- learning_rate, tokens_per_s, each logged step;
- gate_saturation/layer_K/G, each validation: the share of gate G's values (every unit, the first
  SATURATION_TOKENS validation tokens, read through the gate path) below 0.1 or above 0.9, the
  thresholds of `lstm-repl saturation` (Karpathy et al. 2015, fig. 3). A plain RNN has no gates.
Nothing in DIR is ever replaced: each run adds its own events file (TensorBoard shows them all).
"""

from __future__ import annotations

from pathlib import Path

import click

from lstm_repl.training.events import Event, Report

SATURATION_TOKENS = 2048
MISSING_EXTRA = ("--tensorboard needs the tensorboard package: pip install 'lstm-repl[tensorboard]' "
                 "(scripts/setup installs it)")


def require_tensorboard() -> None:
    """One line naming the extra when TensorBoard is not installed (before a run starts)."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        raise click.ClickException(MISSING_EXTRA) from None


def summary_writer(directory: Path):
    """A SummaryWriter on `directory` (made if need be), or one line saying what is wrong."""
    require_tensorboard()
    from torch.utils.tensorboard import SummaryWriter

    try:
        return SummaryWriter(log_dir=str(directory))
    except OSError as exc:
        raise click.ClickException(f"cannot write TensorBoard events in {directory} ({exc.strerror}); "
                                   "give a folder that can be written") from None


class TensorBoardReporter:
    """Passes each event on to `inner` (the progress display) and writes its figures to `writer`."""

    def __init__(self, writer, trainer, inner: Report):
        self.writer, self.trainer, self.inner = writer, trainer, inner

    def __call__(self, event: Event) -> None:
        self.inner(event)
        r, step = event.record, event.step
        if event.kind == "log":
            if r.get("train_loss") is not None:
                self.writer.add_scalar("loss/train", r["train_loss"], step)
            self.writer.add_scalar("learning_rate", r["lr"], step)
            self.writer.add_scalar("tokens_per_s", r["tokens_per_s"], step)
            if r.get("val_loss") is not None:
                self.writer.add_scalar("loss/validation", r["val_loss"], step)
                self.writer.add_scalar("validation/bits_per_character", r["val_bpc"], step)
                self.writer.add_scalar("validation/perplexity_per_word", r["val_ppl_word"], step)
        elif event.kind == "eval":
            for tag, share in gate_saturation(self.trainer).items():
                self.writer.add_scalar(tag, share, step)
        elif event.kind == "end":
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        self.inner.close()


def gate_saturation(trainer) -> dict[str, float]:
    """gate_saturation/layer_K/G -> the share of G's values beyond 0.1 or 0.9 on the validation
    tokens' start. The model goes back to training mode after."""
    from lstm_repl.analysis.unit_search import saturation_of_ids

    try:
        fractions = saturation_of_ids(trainer.model, trainer.val_ids[:SATURATION_TOKENS])
    finally:
        trainer.model.train()
    return {f"gate_saturation/layer_{layer + 1}/{symbol}": float((left + right).mean())
            for (layer, symbol), (left, right) in fractions.items()}
