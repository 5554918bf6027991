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

from lstm_repl.config import ModelConfig, SampleConfig, TrainConfig
from lstm_repl.data.corpus import StreamBatches, capped_validation, check_fits, split_ids
from lstm_repl.model.devices import resolve_device
from lstm_repl.training.distributed import (
    Ranks,
    agree,
    data_parallel,
    device_for,
    gather_streams,
    mean,
    own_rows,
    own_streams,
)
from lstm_repl.training.divergence import DivergenceWatch, diverged, weights_finite
from lstm_repl.errors import ConfigError, TrainingDiverged, TrainingInterrupted
from lstm_repl.training.evaluation import summed_loss, validation_extent
from lstm_repl.training.events import Event, Report
from lstm_repl.model import LanguageModel, State
from lstm_repl.model.precision import autocast
from lstm_repl.training import resume_state
from lstm_repl.training.run_files import RunFolder
from lstm_repl.training.run_records import (
    RunSetup,
    final_summary,
    metric_names,
    quality,
    start_record,
    step_record,
    validation_record,
)
from lstm_repl.training.runlog import LOG_FILE, RunLog, Throughput
from lstm_repl.session.sampling import generate
from lstm_repl.training.schedule import Bounds, Position, learning_rate
from lstm_repl.training.plan import Plan
from lstm_repl.training.step_rate import choose_training_precision
from lstm_repl.data.vocab import Vocab

__all__ = ["LOG_FILE", "Event", "Trainer", "check_writable", "metric_names", "new_model", "quality"]


def make_optimizer(model: LanguageModel, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, or plain SGD (no momentum: its weight decay is L2); weight decay on matrices only
    (not biases, not the embedding)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (decay if param.dim() >= 2 and not name.startswith("embedding") else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr)
    fused = model.device.type == "cuda"
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.999), fused=fused or None)


def detach(state: State) -> State:
    return tuple(s.detach() for s in state)


class Trainer:
    def __init__(self, model: LanguageModel, vocab: Vocab, ids: np.ndarray, config: TrainConfig, out_dir: Path,
                 corpus_info: dict, resume: dict | None = None, val_pieces: list[str] | None = None,
                 ranks: Ranks = Ranks(), corpus_paths: list[str] | None = None, precision: str | None = None,
                 plan: Plan | dict | None = None):
        """ids: the corpus's token ids, in memory or memory-mapped from a token file (only each
        step's window is read and turned into int64); corpus_info: the corpus as checkpoints
        record it (file names, sha256, sizes); val_pieces: the text as written of the held-out
        tokens a validation reads (capped_validation), for exact characters and words; ranks: this
        process among several (distributed.py), each with config.batch_size streams; corpus_paths:
        where its files lie, kept in last/ for --resume alone; precision: as already chosen (by
        the plan), else config.precision resolved on this model; plan: what the planner chose (a
        resumed run: as its checkpoint recorded it)."""
        self.config, self.vocab, self.out_dir, self.ranks = config, vocab, out_dir, ranks
        self.device = device_for(ranks, resolve_device(config.device))
        self.model = model.to(self.device).train()
        self.precision = precision or choose_training_precision(config, self.model, ranks)[0]
        self.plan = plan if isinstance(plan, Plan) else None  # made for this run (train says it)
        recorded_plan = plan.record() if isinstance(plan, Plan) else plan if isinstance(plan, dict) else None
        self.setup = RunSetup(config, vocab, out_dir, corpus_info, corpus_paths or [], self.device, self.precision,
                              recorded_plan)
        train_ids, val_ids = split_ids(ids, config.val_fraction)
        self.val_ids = capped_validation(val_ids)
        self.val_extent = validation_extent(vocab, self.val_ids, val_pieces)  # characters, word starts
        self.streams_in_all = config.batch_size * ranks.world  # validation reads them all, as one process would
        check_fits(len(train_ids), len(self.val_ids), self.streams_in_all, config.seq_len)
        self.batches = StreamBatches(train_ids, self.streams_in_all, config.seq_len)
        self.rows = own_rows(ranks, self.batches.streams, config.batch_size)  # this process's streams
        self.forward = data_parallel(ranks, self.model, self.device)  # the model itself for one process
        self.bounds = Bounds.of(config, self.batches.chunks_per_epoch)
        self.optimizer = make_optimizer(self.model, config)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")  # fp16: loss scaling
        self.log = RunLog(out_dir)
        self.folder = RunFolder(self.setup, self.log)
        self.position, self.state = Position(), None
        self.stop_requested = False
        self.watch = DivergenceWatch(loss_scaled=self.scaler.is_enabled())
        if resume is not None:
            expected_carry = self.model.zero_state(self.batches.streams.shape[0])
            self.position, state = resume_state.restore(resume, self.optimizer, self.scaler, self.device,
                                                        expected_carry)
            self.state = own_streams(ranks, state, config.batch_size)  # (saved for every process's streams)
            self.bounds.anchor_at_resume(self.position)
            if ranks.leader:
                self.log.truncate(self.position.step)

    @property
    def history(self) -> list[dict]:
        return self.log.history

    def done(self) -> bool:
        return self.bounds.used(self.position) >= 1.0

    def run(self, report: Report = lambda event: None) -> dict:
        pos, config = self.position, self.config
        report = report if self.ranks.leader else (lambda event: None)
        report(Event("start", pos.step, start_record(self.setup, self.model, int(self.batches.streams.size),
                                                     len(self.val_ids), pos.step)))
        started = time.perf_counter() - pos.elapsed_s
        window = Throughput(self.device)
        finished = self.done()
        with _stop_on_sigint(self):
            while not finished:
                tokens = self.batches.streams.shape[0] * config.seq_len  # of every process
                window.add(self.train_step(), tokens)
                pos.step, pos.tokens_seen = pos.step + 1, pos.tokens_seen + tokens
                pos.elapsed_s = time.perf_counter() - started
                (finished,) = agree(self.ranks, self.done() and self.ranks.leader)  # the first one's clock decides
                evaluate_now = pos.step % config.eval_interval == 0 or finished
                if pos.step % config.log_interval == 0 or evaluate_now:
                    record = step_record(pos, self.bounds, self.batches.chunks_per_epoch,
                                         self.optimizer.param_groups[0]["lr"], *window.read())
                    if evaluate_now:
                        self._evaluate_and_save(record, report, finished)
                        started = time.perf_counter() - pos.elapsed_s  # validation time is not training time
                        window.restart()
                    if self.ranks.leader:
                        self.folder.append_or_warn(record, pos, report)
                    report(Event("log", pos.step, record))
                if self.watch.diverging:
                    raise self.diverged(self.watch.why())
                if agree(self.ranks, self.stop_requested)[0]:  # Ctrl-C in any process stops them all
                    self.save_last()
                    raise TrainingInterrupted(
                        f"stopped at step {pos.step}; resume with: lstm-repl train --resume {self.out_dir}", pos.step)
        summary = final_summary(self.setup, pos, self.history)
        report(Event("end", pos.step, summary))
        return summary

    def train_step(self) -> torch.Tensor:
        """One optimizer step on the next TBPTT chunk; -> its loss (a tensor on the device), or
        None when the loss or the gradients were not finite: then nothing is applied, the carried
        state stays as it was, and the run moves on to the next chunk."""
        pos, config = self.position, self.config
        if pos.chunk >= self.batches.chunks_per_epoch:
            pos.epoch, pos.chunk, self.state = pos.epoch + 1, 0, None
        window = self.window(pos.chunk)
        for group in self.optimizer.param_groups:  # the schedule where this step ends
            group["lr"] = learning_rate(config, self.bounds.schedule(replace(pos, step=pos.step + 1)))
        with autocast(self.device, self.precision):
            loss, state = self.forward(window[:, :-1], self.state, targets=window[:, 1:])
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        pos.chunk += 1
        loss = mean(self.ranks, loss)  # of all processes' streams: every process decides alike
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

    def window(self, chunk: int) -> torch.Tensor:
        """Chunk `chunk` of this process's streams, inputs and targets together: (B, seq_len + 1)
        int64 on the device."""
        start = chunk * self.config.seq_len
        rows = self.rows[:, start : start + self.config.seq_len + 1]
        return torch.from_numpy(rows.astype(np.int64)).to(self.device)

    def evaluate(self, max_tokens: int | None) -> float:
        """Mean validation loss in nats over (the first max_tokens of) the held-out tokens."""
        self.model.eval()
        with autocast(self.device, self.precision):
            total, count = summed_loss(self.model, self.val_ids, self.streams_in_all, self.config.seq_len,
                                       max_tokens)
        self.model.train()
        return total / max(count, 1)

    def _evaluate_and_save(self, record: dict, report: Report, final: bool) -> None:
        if not weights_finite(self.model):  # before sampling from them (the same on every process)
            raise self.diverged("the weights are no longer finite")
        carry = gather_streams(self.ranks, self.state)  # every process takes part; the first saves
        if not self.ranks.leader:
            return
        max_tokens = None if final else self.config.eval_tokens
        val_loss = self.evaluate(max_tokens)
        record.update(validation_record(self.config, len(self.val_ids), self.val_extent, self.streams_in_all,
                                        val_loss, max_tokens))
        self.position.progress = self.bounds.schedule(self.position)
        record["best"] = self.folder.save_validated(self.model, self.position, val_loss, report, final,
                                                    self._training_state(carry))
        report(Event("eval", self.position.step, record, self.sample()))

    def diverged(self, why: str) -> TrainingDiverged:
        return diverged(why, self.position.step, self.out_dir, self.config.lr)

    def sample(self, length: int | None = None) -> str:
        config = SampleConfig(temperature=0.8, length=length or self.config.sample_length, seed=self.config.seed)
        ids = list(generate(self.model, [], config, start_id=self.vocab.primer_id()))
        self.model.train()
        return self.vocab.decode(ids)

    def save_last(self) -> None:
        """A resumable last/ now (Ctrl-C): every process gives its streams' state, the first saves."""
        carry = gather_streams(self.ranks, self.state)
        if self.ranks.leader:
            self.position.progress = self.bounds.schedule(self.position)
            self.folder.save("last", self.model, self.position, self._training_state(carry))

    def _training_state(self, carry: State | None):
        """What last/ keeps to resume from, taken when it is written: carry is every stream's
        carried state (several processes' gathered)."""
        return lambda: resume_state.capture(self.position, self.optimizer, self.scaler, carry, self.device)


@contextmanager
def _stop_on_sigint(trainer: Trainer) -> Iterator[None]:
    """First Ctrl-C: finish the current step, save, stop. A second one interrupts at once. Under
    torchrun, SIGTERM (what it sends its processes when stopped) does the same."""
    signals = [signal.SIGINT] + ([signal.SIGTERM] if trainer.ranks.active else [])
    try:
        previous = {number: signal.getsignal(number) for number in signals}
        for number in signals:
            signal.signal(number, lambda signum, frame: _request_stop(trainer))
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


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
