"""Bundling a trained run as a model: its best checkpoint plus a model card (README.md)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lstm_repl.model import checkpoint
from lstm_repl.config import SampleConfig, to_dict
from lstm_repl.errors import CheckpointError, LstmReplError
from lstm_repl.training.export_folder import CARD_FILE, check_destination, write_export
from lstm_repl.model import count_parameters
from lstm_repl.model.onnx_export import ONNX_FILE, require_onnx, write_onnx
from lstm_repl.training.text_report import format_duration, loss_curve
from lstm_repl.training.runlog import read_log
from lstm_repl.training.runs import saved_corpus_location
from lstm_repl.session.sampling import generate_text
from lstm_repl.training.trainer import LOG_FILE


def export_run(run_dir: Path, dest: Path, command: str, sample_prompt: str = "", onnx: bool = False) -> Path:
    """Copy the run's best checkpoint (weights and config only) to dest and write its card; with
    `onnx`, the model's one-token step as model.onnx too (model/onnx_export.py). Nothing but an
    earlier export is ever replaced (export_folder says what may be)."""
    if onnx:
        require_onnx()
    check_destination(run_dir, dest)  # before the slow part, and again before the swap
    best = checkpoint.resolve(run_dir)
    history = read_log(run_dir / LOG_FILE)

    def fill(folder: Path) -> None:
        for name in (checkpoint.CONFIG_FILE, checkpoint.WEIGHTS_FILE, checkpoint.TOKENIZER_FILE):
            if name == checkpoint.TOKENIZER_FILE and not os.path.lexists(best / name):
                continue  # a char or word model has none
            if not (best / name).is_file():
                raise CheckpointError(f"{best / name}: missing; the checkpoint is incomplete")
            shutil.copyfile(best / name, folder / name)
        copied = checkpoint.load(folder)  # checks the copy; the card describes exactly it
        corpus_paths = saved_corpus_location(run_dir, copied.info.get("corpus", {}))
        card = model_card(copied, dest.resolve().name, command, history, sample_prompt, corpus_paths)
        if onnx:
            write_onnx(copied.model, folder / ONNX_FILE)
            card += ONNX_CARD
        (folder / CARD_FILE).write_text(card, "utf-8")

    return write_export(run_dir, dest, fill)


ONNX_CARD = f"""
## ONNX ({ONNX_FILE})

The one-token step, for any ONNX runtime: inputs `token` (batch,) int64 and the state `h` (and `c`
for the LSTM kinds), each (layers, batch, hidden) float32, zeros to start; outputs `logits`
(batch, vocab) and the state after the token, `h_out` (and `c_out`), to feed to the next step.
The tokens are config.json's vocabulary ("vocab"), id 0 the unknown token; a BPE model's are
tokenizer.json's, as Hugging Face `tokenizers` reads it.
"""


SAMPLE_TOKENS = {"char": 600, "bpe": 300, "word": 150}  # about 600 characters at each level


def model_card(loaded, name: str, command: str, history: list[dict], sample_prompt: str,
               corpus_paths: list[str] = ()) -> str:
    """The card's text. corpus_paths: where the corpus lies, for the held-out row (none without)."""
    info = loaded.info
    model, corpus, metrics = to_dict(loaded.model.config), info.get("corpus", {}), info.get("metrics", {})
    parameters = count_parameters(loaded.model)
    level = loaded.vocab.level
    metric = (f"perplexity {_figure(metrics, 'best_val_ppl'):.1f} per token (spaces counted)" if level == "word"
              else f"{_best_bits_per_character(metrics, history):.3f} bits per character")  # char and bpe: exact
    sample = "".join(generate_text(loaded.model, loaded.vocab, sample_prompt,
                                   SampleConfig(temperature=0.7, length=SAMPLE_TOKENS[level], seed=1,
                                                precision="fp32")))  # fp32: the same text on any machine's CPU
    files = ", ".join(Path(f).name for f in corpus.get("files", [])[:3])
    lines = [
        f"# {name}",
        "",
        f"A {level}-level {model['cell'].upper()} language model, {model['layers']} layers x {model['hidden']} units "
        f"(embedding {model['embed']}, {_regularisers(model)}), trained by `lstm-repl train` itself.",
        "",
        "| | |",
        "| --- | --- |",
        f"| command | `{command}` |",
        f"| corpus | {files} ({corpus.get('characters', 0):,} characters, {corpus.get('tokens', 0):,} tokens) |",
        f"| corpus sha256 | `{corpus.get('sha256', '?')}` |",
        f"| training time | {format_duration(info.get('train_time_s', 0))} ({metrics.get('step', 0):,} steps, "
        f"{metrics.get('tokens_seen', 0):,} tokens) |",
        f"| device | {info.get('device_name') or info.get('device')}, precision {info.get('precision')} |",
        f"| best validation | {_figure(metrics, 'best_val_loss'):.4f} nats per token, {metric} |",
        f"| parameters | {parameters['total']:,} (embedding {parameters['embedding']:,}, "
        f"recurrent {parameters['rnn']:,}, decoder {parameters['decoder']:,}) |",
        f"| vocabulary | {len(loaded.vocab):,} tokens |",
        *_plan_row(info.get("plan")),
        *_held_out_row(loaded, corpus, corpus_paths),
        "",
        "## Learning curve",
        "",
        "```",
        loss_curve(history, width=64, height=14),
        "```",
        "",
        *_validation_table(history, level),
        "",
        f"## Sample (temperature 0.7, seed 1, fp32{', prompt ' + repr(sample_prompt) if sample_prompt else ''})",
        "",
        "```",
        (sample_prompt + sample).strip("\n"),
        "```",
        "",
    ]
    return "\n".join(lines)


def _regularisers(model: dict) -> str:
    """'dropout 0.2' and AWD-LSTM's regularisers where they were on."""
    named = {"dropout": "dropout", "input_dropout": "input dropout", "output_dropout": "output dropout",
             "embed_dropout": "embedding dropout", "weight_drop": "weight drop"}
    return ", ".join(f"{shown} {model.get(key, 0)}" for key, shown in named.items()
                     if key == "dropout" or model.get(key))


def _plan_row(plan) -> list[str]:
    """What train planned (training/plan.py), as config.json recorded it."""
    if not isinstance(plan, dict) or not all(isinstance(plan.get(k), (int, float)) for k in ("passes", "tokens_per_s")):
        return []
    words = {k: plan.get(k) if isinstance(plan.get(k), str) else "?" for k in ("bound", "regime")}
    return [f"| plan | about {plan['passes']:.3g} passes over the training tokens ({words['bound']} at "
            f"{plan['tokens_per_s']:,.0f} tokens/s): {words['regime']} |"]


def _best_bits_per_character(metrics: dict, history: list[dict]) -> float:
    """config.json holds it at char level; at BPE level the log does, at the best validation."""
    if metrics.get("best_val_bpc") is not None:
        return metrics["best_val_bpc"]
    validated = [r for r in history if isinstance(r.get("val_loss"), float) and isinstance(r.get("val_bpc"), float)]
    return min(validated, key=lambda r: r["val_loss"])["val_bpc"] if validated else float("nan")


def _figure(metrics: dict, key: str) -> float:
    """A figure of config.json's metrics (typed when it was read); NaN when absent or null."""
    value = metrics.get(key)
    return float("nan") if value is None else value


HELD_OUT_CHARACTERS = 100_000


def _held_out_row(loaded, corpus: dict, corpus_paths: list[str]) -> list[str]:
    """`lstm-repl eval` on the corpus's last HELD_OUT_CHARACTERS (inside the validation split):
    figures that compare across models and levels. None when the corpus is not at hand, or is
    no longer the text the model was trained on."""
    from lstm_repl.data.corpus import read_corpus
    from lstm_repl.training.evaluation import evaluate_text

    try:
        read = read_corpus(list(corpus_paths)) if corpus_paths else None
    except LstmReplError:
        return []
    if read is None or read.sha256 != corpus.get("sha256"):
        return []
    text = read.text[-HELD_OUT_CHARACTERS:]
    result = evaluate_text(loaded.model, loaded.vocab, text)
    bound = " (a lower bound)" if result.get("bits_per_character_is_lower_bound") else ""
    per_token = f", {result['perplexity']:.2f} per token" if "perplexity" in result else ""
    return [f"| held out (`lstm-repl eval`, the corpus's last {HELD_OUT_CHARACTERS:,} characters) | "
            f"{result['bits_per_character']:.3f} bits per character{bound}, perplexity "
            f"{result['perplexity_per_word']:.1f} per word{per_token}; {result['unknown_fraction']:.2%} "
            "unknown tokens |"]


def _validation_table(history: list[dict], level: str) -> list[str]:
    """Held-out figures over training: bits per character (every level, in logs that have it),
    and at word level perplexity per word and per token (spaces counted)."""
    columns = [("val_bpc", "val bpc", ".3f")]
    if level == "word":
        columns += [("val_ppl_word", "val ppl per word", ".1f"), ("val_ppl", "val ppl per token", ".2f")]
    rows = [r for r in history if r.get("val_loss") is not None]
    if len(rows) > 12:  # keep the shape: about a dozen evenly spaced rows and the last
        stride = len(rows) / 12
        rows = [rows[int(i * stride)] for i in range(12)] + [rows[-1]]
    table = ["| step | minutes | tokens seen | train loss | val loss | " + " | ".join(c[1] for c in columns) + " |",
             "| ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in columns) + " |"]
    for r in rows:
        figures = " | ".join("n/a" if r.get(key) is None else format(r[key], spec) for key, _, spec in columns)
        table.append(f"| {r['step']:,} | {r['elapsed_s'] / 60:.1f} | {r['tokens_seen']:,} | "
                     f"{'n/a' if r['train_loss'] is None else format(r['train_loss'], '.3f')} | "
                     f"{r['val_loss']:.3f} | {figures} |")
    return table
