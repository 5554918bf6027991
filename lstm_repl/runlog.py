"""The run's log: one JSON object per logged step in log.jsonl, and the throughput between them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from lstm_repl.errors import CheckpointError

LOG_FILE = "log.jsonl"


class RunLog:
    """Appends records to log.jsonl; a resume cuts what came after its checkpoint."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / LOG_FILE
        self.history: list[dict] = []

    def append(self, record: dict) -> None:
        self.history.append(record)
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise CheckpointError(f"cannot write the training log {self.path} ({exc.strerror}); "
                                  "free some space") from None

    def truncate(self, step: int) -> None:
        """Drop records past `step` (a crash after the last checkpoint left them)."""
        if not self.path.exists():
            return
        kept = [line for line in self.path.read_text("utf-8").splitlines() if _record_step(line) <= step]
        self.path.write_text("".join(line + "\n" for line in kept), "utf-8")
        self.history = [json.loads(line) for line in kept if _record_step(line) >= 0]


def _record_step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return -1


class Throughput:
    """Mean loss and tokens per second over the steps since the last reading. The loss sums on
    the device, so a step never waits for the GPU to report it."""

    def __init__(self, device: torch.device):
        self.loss = torch.zeros((), device=device)
        self.steps, self.tokens, self.start = 0, 0, time.perf_counter()

    def add(self, loss: torch.Tensor, tokens: int) -> None:
        self.loss += loss
        self.steps += 1
        self.tokens += tokens

    def read(self) -> tuple[float, float]:
        """(mean loss, tokens/s) since the last read, and start a new window."""
        now = time.perf_counter()
        mean, rate = float(self.loss) / max(self.steps, 1), self.tokens / max(now - self.start, 1e-9)
        self.loss.zero_()
        self.steps, self.tokens, self.start = 0, 0, now
        return mean, rate

    def restart(self) -> None:
        """Leave out time spent elsewhere (validation)."""
        self.start = time.perf_counter()
