"""The training loop. It reports through a callback and never prints or draws."""

from __future__ import annotations

import json
import math
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.nn import functional as F

from lstm_repl import checkpoint
from lstm_repl.config import ModelConfig, SampleConfig, TrainConfig
from lstm_repl.data import StreamBatches, check_fits, split_ids, validation_batches
from lstm_repl.devices import resolve_device
from lstm_repl.errors import CheckpointError, ConfigError, TrainingInterrupted
from lstm_repl.model import LanguageModel, State, count_parameters
from lstm_repl.precision import autocast, resolve_training_precision
from lstm_repl.sampling import generate
from lstm_repl.vocab import Vocab

LOG_FILE = "log.jsonl"
DEFAULT_TIME_LIMIT_S = 600.0  # with no bound given, train for 10 minutes


@dataclass
class Event:
    """What the loop tells its observer. kind: start | log | eval | end."""

    kind: str
    step: int
    record: dict = field(default_factory=dict)
    sample: str = ""


Report = Callable[[Event], None]


@dataclass
class Position:
    """Where training is: everything (besides weights and optimizer) that resuming restores."""

    step: int = 0
    epoch: int = 0
    chunk: int = 0
    tokens_seen: int = 0
    elapsed_s: float = 0.0
    best_val_loss: float = math.inf
    progress: float = 0.0  # the schedule's position (0 to 1) when saved
    # [progress, raw progress] where a resume changed the bounds: from there the schedule runs on
    # over what is left of the new budget, so the learning rate does not jump (see _progress)
    anchor: list[float] | None = None


def metric_names(level: str) -> str:
    return "bpc" if level == "char" else "ppl"


def quality(level: str, loss_nats: float) -> float:
    """Bits per character (char level) or perplexity (word level) from a loss in nats."""
    return loss_nats / math.log(2) if level == "char" else math.exp(min(loss_nats, 50.0))


def learning_rate(config: TrainConfig, step: int, progress: float) -> float:
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    if config.schedule == "constant":
        return config.lr * warm
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * warm * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


def planned_warmup(config: TrainConfig, chunks_per_epoch: int) -> int:
    """A new run's warm-up: as configured, but at most a tenth of the run when its length in steps
    is known (--max-steps, --epochs), so that a 20-step run (`compare --steps 20`) still reaches its
    peak rate. Fixed at the start and saved with the run, so a resume keeps it."""
    epoch_steps = math.ceil(config.epochs * chunks_per_epoch) if config.epochs else None
    bounds = [bound for bound in (config.max_steps, epoch_steps) if bound]
    if not bounds or not config.warmup_steps:
        return config.warmup_steps
    return min(config.warmup_steps, max(1, min(bounds) // 10))


def make_optimizer(model: LanguageModel, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not biases, not the embedding)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (decay if param.dim() >= 2 and not name.startswith("embedding") else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = model.device.type == "cuda"
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.99), fused=fused or None)


def detach(state: State) -> State:
    return tuple(s.detach() for s in state)


class Trainer:
    def __init__(
        self,
        model: LanguageModel,
        vocab: Vocab,
        ids: np.ndarray,
        config: TrainConfig,
        out_dir: Path,
        corpus_info: dict,
        resume: dict | None = None,
    ):
        self.config = config
        self.device = resolve_device(config.device)
        self.precision = resolve_training_precision(config.precision, self.device, model.config.cell)
        self.model = model.to(self.device).train()
        self.vocab = vocab
        self.out_dir = out_dir
        self.corpus_info = corpus_info
        train_ids, val_ids = split_ids(ids, config.val_fraction)
        check_fits(len(train_ids), len(val_ids), config.batch_size, config.seq_len)
        self.batches = StreamBatches(train_ids, config.batch_size, config.seq_len)
        if resume is None:
            self.config = config = replace(config, warmup_steps=planned_warmup(config, self.batches.chunks_per_epoch))
        self.streams = torch.from_numpy(self.batches.streams.astype(np.int64)).to(self.device)
        self.val_ids = val_ids
        self.optimizer = make_optimizer(self.model, config)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")  # fp16 needs loss scaling
        self.position = Position()
        self.state: State | None = None
        self.stop_requested = False
        self.history: list[dict] = []
        if resume is not None:
            self._restore(resume)

    # ------------------------------------------------------------ the loop

    def run(self, report: Report = lambda event: None) -> dict:
        pos, config = self.position, self.config
        report(Event("start", pos.step, self._start_record()))
        started = time.perf_counter() - pos.elapsed_s
        window_loss, window_steps, window_start, window_tokens = torch.zeros((), device=self.device), 0, time.perf_counter(), 0
        with _stop_on_sigint(self):
            while not self._done():
                loss = self._train_step()
                window_loss += loss
                window_steps += 1
                pos.step += 1
                pos.tokens_seen += self.batches.streams.shape[0] * config.seq_len
                window_tokens += self.batches.streams.shape[0] * config.seq_len
                pos.elapsed_s = time.perf_counter() - started
                evaluate_now = pos.step % config.eval_interval == 0 or self._done()
                if pos.step % config.log_interval == 0 or evaluate_now:
                    now = time.perf_counter()
                    record = self._log_record(float(window_loss) / window_steps, window_tokens / max(now - window_start, 1e-9))
                    window_loss.zero_()
                    window_steps, window_start, window_tokens = 0, now, 0
                    if evaluate_now:
                        self._evaluate_and_save(record, report)
                        started = time.perf_counter() - pos.elapsed_s  # validation time is not training time
                        window_start = time.perf_counter()
                    self._append_log(record)
                    report(Event("log", pos.step, record))
                if self.stop_requested:
                    self._save_last()
                    raise TrainingInterrupted(f"stopped at step {pos.step}; resume with: lstm-repl train --resume {self.out_dir}", pos.step)
        return self._final_summary(report)

    def _train_step(self) -> torch.Tensor:
        pos, config = self.position, self.config
        if pos.chunk >= self.batches.chunks_per_epoch:
            pos.epoch, pos.chunk, self.state = pos.epoch + 1, 0, None
        start = pos.chunk * config.seq_len
        window = self.streams[:, start : start + config.seq_len + 1]
        x, y = window[:, :-1], window[:, 1:]
        lr = learning_rate(config, pos.step, self._progress())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with autocast(self.device, self.precision):
            logits, state = self.model(x, self.state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.state = detach(state)
        pos.chunk += 1
        return loss.detach()

    def _progress(self) -> float:
        """Where the schedule stands, 0 to 1: the fraction of the budget used, except after a
        resume that changed the bounds, where it runs on from where it stood to 1 at the new
        bound's end (so the learning rate does not jump; a finished schedule stays at its end)."""
        used = self._budget_used()
        if self.position.anchor is None:
            return used
        at, used_at = self.position.anchor
        if used_at >= 1.0:
            return 1.0
        return min(1.0, at + (1.0 - at) * max(0.0, used - used_at) / (1.0 - used_at))

    def _budget_used(self) -> float:
        """Fraction of the run done, by whichever bound comes first (drives the ETA and the end)."""
        pos, config = self.position, self.config
        fractions = [0.0]
        if config.max_steps:
            fractions.append(pos.step / config.max_steps)
        if config.time_limit_s:
            fractions.append(pos.elapsed_s / config.time_limit_s)
        if config.epochs:
            fractions.append(pos.step / (config.epochs * self.batches.chunks_per_epoch))
        return max(fractions)

    def _done(self) -> bool:
        return self._budget_used() >= 1.0

    # ------------------------------------------------------------ validation and checkpoints

    @torch.inference_mode()
    def evaluate(self, max_tokens: int | None) -> float:
        """Mean validation loss in nats over (the first max_tokens of) the held-out tokens."""
        self.model.eval()
        batches = validation_batches(self.val_ids, self.config.batch_size, self.config.seq_len, max_tokens)
        total, count, state = 0.0, 0, None
        with autocast(self.device, self.precision):
            for x, y in batches:
                x_t = torch.from_numpy(x.astype(np.int64)).to(self.device)
                y_t = torch.from_numpy(y.astype(np.int64)).to(self.device)
                logits, state = self.model(x_t, state)
                total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y_t.reshape(-1), reduction="sum"))
                count += y.size
        self.model.train()
        return total / max(count, 1)

    def _evaluate_and_save(self, record: dict, report: Report) -> None:
        final = self._done()
        val_loss = self.evaluate(None if final else self.config.eval_tokens)
        record["val_loss"] = val_loss
        record[f"val_{metric_names(self.config.level)}"] = quality(self.config.level, val_loss)
        is_best = val_loss < self.position.best_val_loss
        if is_best:
            self.position.best_val_loss = val_loss
            self._save(self.out_dir / "best", resume=False)
        self._save_last()
        record["best"] = is_best
        report(Event("eval", self.position.step, record, self.sample()))

    def sample(self, length: int | None = None) -> str:
        start = self.vocab.ids.get("\n", 1)
        config = SampleConfig(temperature=0.8, length=length or self.config.sample_length, seed=self.config.seed)
        ids = list(generate(self.model, [], config, start_id=start))
        self.model.train()
        return self.vocab.decode(ids)

    def _save_last(self) -> None:
        self.position.progress = self._progress()
        self._save(self.out_dir / "last", resume=True)

    def _save(self, path: Path, resume: bool) -> None:
        checkpoint.save(path, self.model, self.vocab, self.config, self._info(), self._resume_state() if resume else None)

    def _info(self) -> dict:
        pos = self.position
        level = metric_names(self.config.level)
        best = pos.best_val_loss if math.isfinite(pos.best_val_loss) else None
        return {
            "corpus": self.corpus_info,
            "metrics": {
                "step": pos.step,
                "tokens_seen": pos.tokens_seen,
                "best_val_loss": best,
                f"best_val_{level}": None if best is None else quality(self.config.level, best),
            },
            "parameters": count_parameters(self.model),
            "train_time_s": round(pos.elapsed_s, 2),
            "device": self.device.type,
            "device_name": _device_name(self.device),
            "precision": self.precision,
        }

    # ------------------------------------------------------------ resuming

    def _resume_state(self) -> dict:
        pos = self.position
        opt = self.optimizer.state_dict()
        tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        for index, param_state in opt["state"].items():
            for key, value in param_state.items():
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous().clone().reshape(value.shape)
        for k, s in enumerate(self.state or ()):
            tensors[f"carry.{k}"] = s.detach().float().cpu().contiguous()
        groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]} for g in opt["param_groups"]]
        return {
            "json": {
                "position": {**pos.__dict__, "best_val_loss": pos.best_val_loss if math.isfinite(pos.best_val_loss) else None},
                "optimizer_param_groups": groups,
                "carry_dtype": str(self.state[0].dtype).removeprefix("torch.") if self.state else None,
                "loss_scale": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            },
            "tensors": tensors,
        }

    def _restore(self, resume: dict) -> None:
        try:
            saved = resume["position"]
            self.position = Position(**{**saved, "best_val_loss": saved["best_val_loss"] if saved["best_val_loss"] is not None else math.inf})
            if "progress" in saved and self._budget_used() != self.position.progress:  # new bounds
                self.position.anchor = [self.position.progress, self._budget_used()]
            tensors = resume["tensors"]
            state: dict = {}
            for name, value in tensors.items():
                if name.startswith("optimizer."):
                    _, index, key = name.split(".", 2)
                    state.setdefault(int(index), {})[key] = value
            self.optimizer.load_state_dict({"state": state, "param_groups": resume["optimizer_param_groups"]})
            torch.set_rng_state(tensors["rng.torch"])
            if "rng.cuda" in tensors and self.device.type == "cuda":
                torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
            carry = [tensors[f"carry.{k}"] for k in range(len(tensors)) if f"carry.{k}" in tensors]
            dtype = getattr(torch, resume.get("carry_dtype") or "float32")
            self.state = tuple(c.to(self.device, dtype) for c in carry) if carry else None
            if resume.get("loss_scale") and self.scaler.is_enabled():
                self.scaler.load_state_dict(resume["loss_scale"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"the training state in the checkpoint is broken ({exc}); start a new run") from None
        self._truncate_log(self.position.step)

    # ------------------------------------------------------------ the log

    def _log_record(self, train_loss: float, tokens_per_s: float) -> dict:
        pos = self.position
        progress = self._budget_used()
        return {
            "step": pos.step,
            "elapsed_s": round(pos.elapsed_s, 3),
            "tokens_seen": pos.tokens_seen,
            "train_loss": train_loss,
            "val_loss": None,
            "tokens_per_s": round(tokens_per_s, 1),
            "lr": self.optimizer.param_groups[0]["lr"],
            "epoch": pos.step / max(1, self.batches.chunks_per_epoch),
            "progress": min(1.0, progress),
            "eta_s": pos.elapsed_s / progress * (1 - progress) if 0 < progress < 1 else 0.0,
        }

    def _append_log(self, record: dict) -> None:
        self.history.append(record)
        try:
            with open(self.out_dir / LOG_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise CheckpointError(f"cannot write the training log in {self.out_dir} ({exc.strerror}); free some space") from None

    def _truncate_log(self, step: int) -> None:
        """Drop records past the resumed step (a crash after the last checkpoint left them)."""
        path = self.out_dir / LOG_FILE
        if not path.exists():
            return
        kept = [line for line in path.read_text("utf-8").splitlines() if _record_step(line) <= step]
        path.write_text("".join(line + "\n" for line in kept), "utf-8")
        self.history = [json.loads(line) for line in kept if _record_step(line) >= 0]

    def _start_record(self) -> dict:
        return {
            "device": self.device.type,
            "device_name": _device_name(self.device),
            "precision": self.precision,
            "parameters": count_parameters(self.model)["total"],
            "train_tokens": int(self.batches.streams.size),
            "val_tokens": int(len(self.val_ids)),
            "vocab_size": len(self.vocab),
            "out_dir": str(self.out_dir),
            "resumed_at": self.position.step,
        }

    def _final_summary(self, report: Report) -> dict:
        summary = {
            "step": self.position.step,
            "elapsed_s": self.position.elapsed_s,
            "best_val_loss": self.position.best_val_loss,
            f"best_val_{metric_names(self.config.level)}": quality(self.config.level, self.position.best_val_loss),
            "out_dir": str(self.out_dir),
            "history": self.history,
        }
        report(Event("end", self.position.step, summary))
        return summary


def _record_step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return -1


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


@contextmanager
def _stop_on_sigint(trainer: Trainer) -> Iterator[None]:
    """First Ctrl-C: finish the current step, save, stop. A second one interrupts at once."""
    try:
        previous = signal.getsignal(signal.SIGINT)
    except ValueError:  # not the main thread
        yield
        return

    def request_stop(signum, frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = True

    try:
        signal.signal(signal.SIGINT, request_stop)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to the output folder {out_dir} ({exc.strerror}); choose another --out") from None


def new_model(vocab_size: int, model_config: dict, seed: int) -> LanguageModel:
    torch.manual_seed(seed)
    return LanguageModel(ModelConfig(vocab_size=vocab_size, **model_config))
