"""What `lstm-repl info` (and the shell's :info) reports about a checkpoint: as data, and as
(name, value) rows of safe one-line text that the CLI lays out as a table."""

from __future__ import annotations

from lstm_repl.model.checkpoint import Checkpoint
from lstm_repl.config import to_dict
from lstm_repl.model import count_parameters
from lstm_repl.terminal_text import terminal_line, visible_token


def describe(loaded: Checkpoint) -> dict:
    info = loaded.info
    vocab = loaded.vocab
    tokens = vocab.tokens[1:]
    return {
        "checkpoint": str(loaded.path),
        "model": to_dict(loaded.model.config),  # as loaded: config.json may leave out a field that has a default
        "parameters": count_parameters(loaded.model),
        "vocabulary": {
            "level": vocab.level,
            "size": len(vocab),
            "sample": tokens[:40] if vocab.level == "char" else tokens[:25],
        },
        "corpus": info.get("corpus", {}),
        "training": {
            "time_s": info.get("train_time_s"),
            "steps": info.get("metrics", {}).get("step"),
            "tokens_seen": info.get("metrics", {}).get("tokens_seen"),
            "device": info.get("device_name") or info.get("device"),
            "precision": info.get("precision"),
            "settings": info.get("training", {}),
        },
        "metrics": info.get("metrics", {}),
        "format_version": info.get("format_version"),
        "lstm_repl_version": info.get("lstm_repl_version"),
    }


def summary_lines(d: dict) -> list[str]:
    return [f"{name:>15}  {value}" for name, value in description_rows(d)]


def description_rows(d: dict) -> list[tuple[str, str]]:
    """(name, value) rows; the values come from the checkpoint's files, so each is made one safe line."""
    return [(name, terminal_line(value)) for name, value in _rows(d)]


def _rows(d: dict) -> list[tuple[str, str]]:
    model = d["model"]
    params = d["parameters"]
    parts = ", ".join(f"{name} {count:,}" for name, count in params.items() if name != "total")
    corpus = d["corpus"]
    training = d["training"]
    metrics = d["metrics"]
    rows = [
        ("checkpoint", d["checkpoint"]),
        ("model", f"{model['cell']}, {model['layers']} layers x {model['hidden']} units, embedding {model['embed']}, "
                  f"dropout {model['dropout']}{', tied weights' if model.get('tie_weights') else ''}"),
        ("parameters", f"{params['total']:,} ({parts})"),
        ("vocabulary", f"{d['vocabulary']['level']} level, {d['vocabulary']['size']:,} tokens"),
        ("sample", " ".join(visible_token(t) for t in d["vocabulary"]["sample"])),
        ("corpus", _corpus_text(corpus)),
        ("training", _training_text(training)),
        ("best validation", _metrics_text(metrics, d["vocabulary"]["level"])),
    ]
    return rows


def _corpus_text(corpus: dict) -> str:
    if not corpus:
        return "unknown"
    files = corpus.get("files", [])
    names = ", ".join(f.rsplit("/", 1)[-1] for f in files[:3]) + (
        f" and {len(files) - 3} more" if len(files) > 3 else ""
    )
    return (
        f"{names}: {corpus.get('characters', 0):,} characters, {corpus.get('tokens', 0):,} tokens, "
        f"sha256 {corpus.get('sha256', '?')[:16]}…"
    )


def _training_text(training: dict) -> str:
    seconds = training.get("time_s") or 0
    return (
        f"{training.get('steps') or 0:,} steps, {training.get('tokens_seen') or 0:,} tokens in {seconds / 60:.1f} min "
        f"on {training.get('device')} ({training.get('precision')})"
    )


def _metrics_text(metrics: dict, level: str) -> str:
    loss = metrics.get("best_val_loss")
    if loss is None:
        return "not validated yet"
    if metrics.get("best_val_bpc") is not None:
        return f"{loss:.4f} nats, {metrics['best_val_bpc']:.3f} bits per character"
    spaces = " (spaces counted)" if level == "word" else ""
    return f"{loss:.4f} nats, perplexity {metrics.get('best_val_ppl', 0):.2f} per token{spaces}"
