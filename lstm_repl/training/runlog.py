"""The run's log: one JSON object per logged step in log.jsonl, and the throughput between them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from lstm_repl.atomic import atomic_file
from lstm_repl.errors import CheckpointError, LstmReplError
from lstm_repl.safe_read import MB, parse_json, read_text, typed_object

LOG_FILE = "log.jsonl"
LOG_LIMIT = 1024 * MB  # a record (~350 bytes) every --log-interval steps: a million records take 350 MB
_NUMBER_OR_NULL = (float, type(None))
# A record as run_records.step_record and validation_record write it; readers (a resume, model
# cards, compare) take these fields, so each is checked. Other keys are left alone.
RECORD_FIELDS = {"step": int, "elapsed_s": float, "tokens_seen": int, "train_loss": _NUMBER_OR_NULL,
                 "val_loss": _NUMBER_OR_NULL, "tokens_per_s": float, "lr": float, "epoch": float, "progress": float,
                 "eta_s": float, "skipped_steps": int, "val_bpc": _NUMBER_OR_NULL, "val_ppl_word": _NUMBER_OR_NULL,
                 "val_ppl": _NUMBER_OR_NULL, "best": bool}
REQUIRED_FIELDS = ("step", "elapsed_s", "tokens_seen", "train_loss", "val_loss")


def read_log(path: Path) -> list[dict]:
    """Every record of a run's log, checked; a line that is not a record is one CheckpointError."""
    text = read_text(path, LOG_LIMIT, CheckpointError, "training log")
    return [parse_record(line, f"{path}: line {number}")
            for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def parse_record(line: str, where: str) -> dict:
    record = parse_json(line, CheckpointError, where, "training log record")
    typed_object(record, RECORD_FIELDS, where, CheckpointError, required=REQUIRED_FIELDS)
    if record["step"] < 0:
        raise CheckpointError(f"{where}: 'step' is negative")
    return record


class RunLog:
    """Appends records to log.jsonl; a resume cuts what came after its checkpoint."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / LOG_FILE
        self.history: list[dict] = []
        self._written = 0  # records of history already in the file

    def append(self, record: dict) -> None:
        """Add a record; on a write error (a full disk) the file is cut back to its last whole
        line and CheckpointError says so: the record stays in `history`, and the next append
        writes every record the file lacks."""
        self.history.append(record)
        data = "".join(json.dumps(r) + "\n" for r in self.history[self._written :]).encode("utf-8")
        try:
            _append_whole(self.path, data)
        except OSError as exc:
            raise CheckpointError(f"cannot write the training log {self.path} ({exc.strerror}); free some space "
                                  "(training goes on, and the log catches up at its next record)") from None
        self._written = len(self.history)

    def truncate(self, step: int) -> None:
        """Drop records past `step` (a crash after the last checkpoint left them)."""
        if not self.path.exists():
            return
        lines = read_text(self.path, LOG_LIMIT, CheckpointError, "training log").splitlines()
        records = [_record_or_none(line) for line in lines]  # a line a kill cut short is not one
        kept = [(line, r) for line, r in zip(lines, records) if r is not None and r["step"] <= step]
        try:  # the whole log or the old one, whatever happens
            with atomic_file(self.path) as handle:
                handle.write("".join(line + "\n" for line, _ in kept))
        except OSError as exc:
            raise CheckpointError(f"cannot rewrite the training log {self.path} ({exc.strerror}); free some space "
                                  "and resume again (the log is unchanged)") from None
        self.history = [record for _, record in kept]
        self._written = len(self.history)


def _append_whole(path: Path, data: bytes) -> None:
    """Append `data` all or nothing: a failed write (a full disk) cuts the file back to where it was."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.lseek(descriptor, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
        except OSError:
            os.ftruncate(descriptor, start)
            raise
    finally:
        os.close(descriptor)


def _record_or_none(line: str) -> dict | None:
    try:
        return parse_record(line, LOG_FILE)
    except LstmReplError:
        return None


class Throughput:
    """Mean loss and tokens per second over the steps since the last reading. The loss sums on
    the device, so a step never waits for the GPU to report it."""

    def __init__(self, device: torch.device):
        self.loss = torch.zeros((), device=device)
        self.steps, self.tokens, self.start = 0, 0, time.perf_counter()

    def add(self, loss: torch.Tensor | None, tokens: int) -> None:
        """A step's loss, or None for a step that was skipped (its tokens still took time)."""
        if loss is not None:
            self.loss += loss
            self.steps += 1
        self.tokens += tokens

    def read(self) -> tuple[float | None, float]:
        """(mean loss, None if every step was skipped; tokens/s) since the last read; starts a new window."""
        now = time.perf_counter()
        mean = float(self.loss) / self.steps if self.steps else None
        rate = self.tokens / max(now - self.start, 1e-9)
        self.loss.zero_()
        self.steps, self.tokens, self.start = 0, 0, now
        return mean, rate

    def restart(self) -> None:
        """Leave out time spent elsewhere (validation)."""
        self.start = time.perf_counter()
