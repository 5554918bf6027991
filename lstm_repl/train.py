"""The training loop. It reports through a callback and never prints or draws."""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.nn import functional as F

from lstm_repl import resume_state, run_files
from lstm_repl.config import ModelConfig, SampleConfig, TrainConfig
from lstm_repl.data import StreamBatches, check_fits, split_ids
from lstm_repl.devices import resolve_device
from lstm_repl.divergence import DivergenceWatch, diverged, weights_finite
from lstm_repl.errors import ConfigError, TrainingDiverged, TrainingInterrupted
from lstm_repl.evaluation import summed_loss, validation_extent
from lstm_repl.events import Event, Report
from lstm_repl.model import LanguageModel, State
from lstm_repl.precision import autocast, resolve_training_precision
from lstm_repl.run_records import final_summary, metric_names, quality, start_record, step_record, validation_record
from lstm_repl.runlog import LOG_FILE, RunLog, Throughput
from lstm_repl.sampling import generate
from lstm_repl.schedule import Bounds, Position, learning_rate
from lstm_repl.vocab import Vocab

__all__ = ["LOG_FILE", "Event", "Trainer", "check_writable", "metric_names", "new_model", "quality"]


def make_optimizer(model: LanguageModel, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not biases, not the embedding)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (decay if param.dim() >= 2 and not name.startswith("embedding") else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = model.device.type == "cuda"
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.999), fused=fused or None)


def detach(state: State) -> State:
    return tuple(s.detach() for s in state)


class Trainer:
    def __init__(self, model: LanguageModel, vocab: Vocab, ids: np.ndarray, config: TrainConfig, out_dir: Path,
                 corpus_info: dict, resume: dict | None = None, val_pieces: list[str] | None = None):
        """val_pieces: the held-out tokens' text as written (for exact characters and words)."""
        self.config, self.vocab, self.out_dir, self.corpus_info = config, vocab, out_dir, corpus_info
        self.device = resolve_device(config.device)
        self.precision = resolve_training_precision(config.precision, self.device, model.config.cell)
        self.model = model.to(self.device).train()
        train_ids, self.val_ids = split_ids(ids, config.val_fraction)
        self.val_extent = validation_extent(vocab, self.val_ids, val_pieces)  # characters, word starts
        check_fits(len(train_ids), len(self.val_ids), config.batch_size, config.seq_len)
        self.batches = StreamBatches(train_ids, config.batch_size, config.seq_len)
        self.streams = torch.from_numpy(self.batches.streams.astype(np.int64)).to(self.device)
        self.bounds = Bounds.of(config, self.batches.chunks_per_epoch)
        self.optimizer = make_optimizer(self.model, config)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")  # fp16: loss scaling
        self.log = RunLog(out_dir)
        self.position, self.state = Position(), None
        self.stop_requested = False
        self.watch = DivergenceWatch(loss_scaled=self.scaler.is_enabled())
        if resume is not None:
            expected_carry = self.model.zero_state(self.streams.shape[0])
            self.position, self.state = resume_state.restore(resume, self.optimizer, self.scaler, self.device,
                                                             expected_carry)
            self.bounds.anchor_at_resume(self.position)
            self.log.truncate(self.position.step)

    @property
    def history(self) -> list[dict]:
        return self.log.history

    def done(self) -> bool:
        return self.bounds.used(self.position) >= 1.0

    def run(self, report: Report = lambda event: None) -> dict:
        pos, config = self.position, self.config
        report(Event("start", pos.step, start_record(self)))
        started = time.perf_counter() - pos.elapsed_s
        window = Throughput(self.device)
        with _stop_on_sigint(self):
            while not self.done():
                tokens = self.streams.shape[0] * config.seq_len
                window.add(self.train_step(), tokens)
                pos.step, pos.tokens_seen = pos.step + 1, pos.tokens_seen + tokens
                pos.elapsed_s = time.perf_counter() - started
                evaluate_now = pos.step % config.eval_interval == 0 or self.done()
                if pos.step % config.log_interval == 0 or evaluate_now:
                    record = step_record(self, *window.read())
                    if evaluate_now:
                        self._evaluate_and_save(record, report)
                        started = time.perf_counter() - pos.elapsed_s  # validation time is not training time
                        window.restart()
                    run_files.append_or_warn(self, record, report)
                    report(Event("log", pos.step, record))
                if self.watch.diverging:
                    raise self.diverged(self.watch.why())
                if self.stop_requested:
                    self.save_last()
                    raise TrainingInterrupted(
                        f"stopped at step {pos.step}; resume with: lstm-repl train --resume {self.out_dir}", pos.step)
        summary = final_summary(self)
        report(Event("end", pos.step, summary))
        return summary

    def train_step(self) -> torch.Tensor:
        """One optimizer step on the next TBPTT chunk; -> its loss (a tensor on the device), or
        None when the loss or the gradients were not finite: then nothing is applied, the carried
        state stays as it was, and the run moves on to the next chunk."""
        pos, config = self.position, self.config
        if pos.chunk >= self.batches.chunks_per_epoch:
            pos.epoch, pos.chunk, self.state = pos.epoch + 1, 0, None
        window = self.streams[:, pos.chunk * config.seq_len : (pos.chunk + 1) * config.seq_len + 1]
        for group in self.optimizer.param_groups:  # the schedule where this step ends
            group["lr"] = learning_rate(config, self.bounds.schedule(replace(pos, step=pos.step + 1)))
        with autocast(self.device, self.precision):
            logits, state = self.model(window[:, :-1], self.state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), window[:, 1:].reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        pos.chunk += 1
        if not self.watch.finite(loss, norm):
            pos.skipped_steps += 1
            self.optimizer.zero_grad(set_to_none=True)
            self.state = None  # the carried state may be what went wrong
            self.scaler.update()  # (a no-op unless fp16 loss scaling is on)
            return None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.state = detach(state)
        return loss.detach()

    def evaluate(self, max_tokens: int | None) -> float:
        """Mean validation loss in nats over (the first max_tokens of) the held-out tokens."""
        self.model.eval()
        with autocast(self.device, self.precision):
            total, count = summed_loss(self.model, self.val_ids, self.config.batch_size, self.config.seq_len,
                                       max_tokens)
        self.model.train()
        return total / max(count, 1)

    def _evaluate_and_save(self, record: dict, report: Report) -> None:
        if not weights_finite(self.model):  # before sampling from them
            raise self.diverged("the weights are no longer finite")
        final = self.done()
        max_tokens = None if final else self.config.eval_tokens
        val_loss = self.evaluate(max_tokens)
        record.update(validation_record(self, val_loss, max_tokens))
        record["best"] = val_loss < self.position.best_val_loss
        if record["best"]:
            previous, self.position.best_val_loss = self.position.best_val_loss, val_loss
            if not run_files.save_or_warn(self, "best", report, final):
                self.position.best_val_loss, record["best"] = previous, False
        self.position.progress = self.bounds.schedule(self.position)
        run_files.save_or_warn(self, "last", report, final, resume=True)
        report(Event("eval", self.position.step, record, self.sample()))

    def diverged(self, why: str) -> TrainingDiverged:
        return diverged(why, self.position.step, self.out_dir, self.config.lr)

    def sample(self, length: int | None = None) -> str:
        start = self.vocab.ids.get("\n", 1)
        config = SampleConfig(temperature=0.8, length=length or self.config.sample_length, seed=self.config.seed)
        ids = list(generate(self.model, [], config, start_id=start))
        self.model.train()
        return self.vocab.decode(ids)

    def save_last(self) -> None:
        self.position.progress = self.bounds.schedule(self.position)
        run_files.save(self, "last", resume=True)


@contextmanager
def _stop_on_sigint(trainer: Trainer) -> Iterator[None]:
    """First Ctrl-C: finish the current step, save, stop. A second one interrupts at once."""
    try:
        previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, lambda signum, frame: _request_stop(trainer))
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _request_stop(trainer: Trainer) -> None:
    if trainer.stop_requested:
        raise KeyboardInterrupt
    trainer.stop_requested = True


def check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to the output folder {out_dir} ({exc.strerror}); "
                          "choose another --out") from None


def new_model(vocab_size: int, model_config: dict, seed: int) -> LanguageModel:
    torch.manual_seed(seed)
    return LanguageModel(ModelConfig(vocab_size=vocab_size, **model_config))
