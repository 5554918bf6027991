"""How a training run looks: a live rich display on a terminal, plain lines otherwise, and the
loss curve drawn in the terminal at the end. Consumes train.Event; knows nothing of torch."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from lstm_repl.terminal_text import terminal_line
from lstm_repl.training.text_report import format_duration


def metric_text(record: dict) -> str:
    """Validation: bits per character for every level; a word model adds perplexity per word and per token."""
    if record.get("val_loss") is None:
        return ""
    text = f"val {record['val_loss']:.4f} nats"
    if record.get("val_bpc") is not None:
        text += f"  {record['val_bpc']:.3f} bpc"
    if record.get("val_ppl") is not None:
        text += f"  ppl {record.get('val_ppl_word', float('nan')):.1f}/word {record['val_ppl']:.2f}/token"
    return text


def start_text(record: dict) -> str:
    """One line; the folder and device names in it are data, shown safely."""
    resumed = f", resumed at step {record['resumed_at']}" if record.get("resumed_at") else ""
    return terminal_line(
        f"training {record['parameters']:,} parameters on {record['device_name']} ({record['precision']}), "
        f"{record['train_tokens']:,} training / {record['val_tokens']:,} validation tokens, "
        f"vocabulary {record['vocab_size']:,}{resumed} -> {record['out_dir']}"
    )


class PlainReporter:
    """One line per logged step, for logs and pipes."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def __call__(self, event) -> None:
        r = event.record
        if event.kind == "start":
            self._line(start_text(r))
        elif event.kind == "log":
            self._line(
                f"step {r['step']:>6}  loss {loss_text(r)}  {metric_text(r) or ' ' * 0}"
                f"  {r['tokens_per_s']:,.0f} tok/s  lr {r['lr']:.2e}  {format_duration(r['elapsed_s'])} elapsed"
                f"  eta {format_duration(r['eta_s'])}".replace("    ", "  ")
            )
        elif event.kind == "warning":
            self._line(f"warning at step {event.step}: {terminal_line(r['message'])}")
        elif event.kind == "eval":
            self._line(f"sample at step {event.step}{' (best so far)' if r.get('best') else ''}: "
                       f"{event.sample[:200]!r}")

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        pass


class RichReporter:
    """A live progress bar with step, loss, validation, tokens/s, elapsed and ETA."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]step {task.fields[step]}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("loss {task.fields[loss]}  {task.fields[val]}  {task.fields[speed]} tok/s"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("train", total=1000, step=0, loss="-", val="", speed="-")
        self.best = ""

    def __call__(self, event) -> None:
        r = event.record
        if event.kind == "start":
            self.console.print(Text(start_text(r), style="dim"))  # a Text: a folder named [/x] is not markup
            self.progress.start()
        elif event.kind == "log":
            if metric_text(r):
                self.best = metric_text(r)
            self.progress.update(
                self.task, completed=int(1000 * r["progress"]), step=r["step"], loss=loss_text(r),
                val=self.best, speed=f"{r['tokens_per_s']:,.0f}",
            )
        elif event.kind == "warning":
            self.progress.console.print(Text(f"warning at step {event.step}: {terminal_line(r['message'])}",
                                             style="yellow"))
        elif event.kind == "eval":
            marker = " best" if r.get("best") else ""
            self.progress.console.print(
                Text(f"step {event.step}{marker}: ", style="cyan") + Text(repr(event.sample[:160]), style="dim")
            )

    def close(self) -> None:
        self.progress.stop()


class CorpusPassBar:
    """A bar per streaming pass over the corpus ("reading", "counting", "tokenizing"): bytes
    done, MB/s, time left. Called as data.Progress; shown only for a corpus of SHOW_FROM bytes
    or more (a small one takes a blink, and its bars would only clutter the log)."""

    SHOW_FROM = 32 << 20

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("{task.description:<10}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=console, transient=False,
        )
        self.tasks: dict[str, int] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        if total < self.SHOW_FROM:
            return
        if what not in self.tasks:
            if not self.tasks:
                self.progress.start()
            self.tasks[what] = self.progress.add_task(what, total=total)
        self.progress.update(self.tasks[what], completed=done)

    def close(self) -> None:
        if self.tasks:
            self.progress.stop()


def loss_text(record: dict) -> str:
    """The window's mean training loss, and the steps skipped so far (non-finite) if any."""
    loss = "  n/a " if record["train_loss"] is None else f"{record['train_loss']:.4f}"
    skipped = record.get("skipped_steps") or 0
    return loss + (f" ({skipped} skipped)" if skipped else "")
