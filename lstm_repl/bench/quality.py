"""`bench quality`: the project's defaults against the plainest alternative, on the same split,
for the same time or the same steps, one after the other, scored by the same code.

Speed alone hides a trainer that learns less per step; this measures what a user gets. The
reference is lstm_repl/bench/reference.py; both sides train on the first part of the corpus and are
scored in bits per character on the rest, which neither saw.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lstm_repl.model import checkpoint

from lstm_repl.training import runs
from lstm_repl.config import ModelConfig, TrainConfig, level_defaults
from lstm_repl.data.corpus import read_corpus, split_ids
from lstm_repl.errors import ConfigError, CorpusError
from lstm_repl.training.evaluation import evaluate_text, summed_loss
from lstm_repl.model import LanguageModel
from lstm_repl.bench.gpt import GPTRecipe, held_out_bits, train_gpt
from lstm_repl.bench.reference import Recipe, train_reference
from lstm_repl.data.vocab import build_vocab

SIDES = ("lstm-repl", "reference")  # what `bench quality` trains unless told; "gpt" (bench/gpt.py) on request
CURVE_CHARS = 100_000  # held-out characters scored at each point of a curve (the final score uses all)


@dataclass
class Split:
    name: str
    train_file: Path  # the first part, as a file: the project trains from files, as a user does
    train_text: str
    held_out: str

    def record(self) -> dict:
        return {"corpus": self.name, "train_chars": len(self.train_text), "held_out_chars": len(self.held_out)}


@dataclass
class Side:
    name: str
    precision: str = "fp32"
    steps: int = 0
    seconds: float = 0.0  # training time, validation excluded
    tokens_per_s: float = 0.0
    bpc: float = math.nan  # on the whole held-out text
    curve: list[tuple[int, float, float]] = field(default_factory=list)  # (step, seconds, held-out bpc)
    plan: dict | None = None  # lstm-repl's: what its plan chose (plan.Plan.record)
    vocab_size: int | None = None  # lstm-repl's: tokens in its vocabulary, <unk> included
    # lstm-repl's: the held-out tokens it reads as <unk>; above 0, bpc is a lower bound (an <unk>
    # does not pay for its spelling). None: not measured (the references)
    unknown_fraction: float | None = None


def make_split(paths: list[str], workdir: Path, held_out: float = 0.1, chars: int | None = None) -> Split:
    corpus = read_corpus(paths)
    text = corpus.text[:chars] if chars else corpus.text
    cut = int(len(text) * (1 - held_out))
    if cut < 10_000 or len(text) - cut < 1_000:
        raise CorpusError(f"{corpus.name}: {len(text):,} characters is too little for bench quality; "
                          "give 100 kB or more")
    train_file = workdir / "train.txt"
    train_file.write_text(text[:cut], "utf-8")
    shown = f"{corpus.name} (first {len(text):,} characters)" if chars and len(corpus.text) > chars else corpus.name
    return Split(shown, train_file, text[:cut], text[cut:])


def score(model: LanguageModel, vocab, text: str) -> float:
    return evaluate_text(model, vocab, text)["bits_per_character"]


def run_project(split: Split, config: TrainConfig, model_args: dict, out: Path, curve_every: int | None,
                report: Callable[[str], None], planned: frozenset[str] = frozenset()) -> Side:
    """`lstm-repl train` on the first part, as a user would run it (planning `planned` as train
    plans what it is not given); its best/ scored on the rest."""
    trainer = runs.new_run([str(split.train_file)], config, model_args, out, overwrite=True, planned=planned)
    if trainer.plan is not None:
        report("  " + trainer.plan.line())
    side = Side("lstm-repl", trainer.precision, plan=trainer.plan.record() if trainer.plan else None)
    curve_text = split.held_out[:CURVE_CHARS]

    def on_event(event) -> None:
        if event.kind == "eval" and curve_every:
            bpc = score(trainer.model, trainer.vocab, curve_text)
            trainer.model.train()
            side.curve.append((event.step, trainer.position.elapsed_s, bpc))
            report(f"  lstm-repl  step {event.step:>6}  {trainer.position.elapsed_s:7.1f} s  held-out bpc {bpc:.3f}")

    trainer.run(on_event)
    side.steps, side.seconds = trainer.position.step, trainer.position.elapsed_s
    side.tokens_per_s = trainer.position.tokens_seen / max(side.seconds, 1e-9)
    best = checkpoint.load(out)
    held_out = evaluate_text(best.model, best.vocab, split.held_out)
    side.bpc, side.unknown_fraction = held_out["bits_per_character"], held_out["unknown_fraction"]
    side.vocab_size = len(best.vocab)
    return side


def run_reference(split: Split, recipe: Recipe, max_steps: int | None, time_limit_s: float | None,
                  curve_every: int | None, report: Callable[[str], None], config: TrainConfig) -> Side:
    """The plain loop on exactly the tokens lstm-repl trains on: the training part less the
    val_fraction lstm-repl holds out for choosing its best/ (the same batches, step for step);
    a recipe that anneals validates on that held-out part."""
    vocab = build_vocab(split.train_text, config.level, config.vocab_size, config.min_count)  # as the project's
    train_ids, val_ids = split_ids(vocab.encode_array(split.train_text), config.val_fraction)
    side = Side("reference")
    curve_text = split.held_out[:CURVE_CHARS]

    def on_step(step: int, seconds: float, model) -> None:
        if curve_every and step % curve_every == 0:
            bpc = score(as_language_model(model, len(vocab), recipe), vocab, curve_text)
            side.curve.append((step, seconds, bpc))
            report(f"  reference  step {step:>6}  {seconds:7.1f} s  held-out bpc {bpc:.3f}")
        side.steps, side.seconds = step, seconds

    def validate(model) -> float:
        total, count = summed_loss(as_language_model(model, len(vocab), recipe), val_ids, recipe.batch_size,
                                   recipe.seq_len)
        return total / max(count, 1)

    model = train_reference(train_ids, len(vocab), recipe, max_steps, time_limit_s, on_step, validate)
    side.tokens_per_s = side.steps * recipe.batch_size * recipe.seq_len / max(side.seconds, 1e-9)
    side.bpc = score(as_language_model(model, len(vocab), recipe), vocab, split.held_out)
    return side


def run_gpt(split: Split, recipe: GPTRecipe, max_steps: int | None, time_limit_s: float | None,
            config: TrainConfig) -> Side:
    """nanoGPT's small character GPT on the tokens lstm-repl trains on, scored over the whole
    held-out text with at least half a block of context for each character."""
    if config.level != "char":
        raise ConfigError("the GPT reference is a character model; run it at char level")
    vocab = build_vocab(split.train_text, "char", config.vocab_size, config.min_count)
    train_ids = split_ids(vocab.encode_array(split.train_text), config.val_fraction)[0]
    side = Side("gpt")

    def on_step(step: int, seconds: float, model) -> None:
        side.steps, side.seconds = step, seconds

    model = train_gpt(train_ids, len(vocab), recipe, max_steps, time_limit_s, on_step)
    side.tokens_per_s = side.steps * recipe.batch_size * recipe.block / max(side.seconds, 1e-9)
    bits, _ = held_out_bits(model, vocab.encode_array(split.held_out), recipe.block)
    side.bpc = bits / max(len(split.held_out) - 1, 1)
    return side


def as_language_model(reference, vocab_size: int, recipe: Recipe) -> LanguageModel:
    """The reference's weights in a LanguageModel (same names), so both are scored by one code path."""
    config = ModelConfig(vocab_size=vocab_size, hidden=recipe.hidden, embed=recipe.embed, layers=recipe.layers,
                         dropout=recipe.dropout)
    model = LanguageModel(config)
    model.load_state_dict(reference.state_dict())
    return model.eval()


def project_settings(recipe: str, precision: str, max_steps: int | None,
                     time_limit_s: float | None, level: str = "char") -> tuple[TrainConfig, dict]:
    """What lstm-repl trains with: its defaults at that level (as `lstm-repl train FILE --level
    LEVEL` has them, before its plan: pass plan.PLANNED to compare_quality for that), or the char
    reference's own settings, for the per-step check of the training loop itself."""
    bounds = dict(max_steps=max_steps, time_limit_s=time_limit_s, precision=precision, level=level)
    if recipe == "defaults":
        defaults = level_defaults(level)
        # the model's vocabulary is the one built; bpe's default size is TrainConfig's, that builds it
        model_fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"vocab_size"}
        model_args = {k: v for k, v in defaults.items() if k in model_fields}
        return TrainConfig(**bounds, **{k: v for k, v in defaults.items() if k not in model_fields}), model_args
    r = Recipe()
    config = TrainConfig(lr=r.lr, schedule="constant", warmup=0.0, grad_clip=r.grad_clip, weight_decay=0.0,
                         batch_size=r.batch_size, seq_len=r.seq_len, seed=r.seed, **bounds)
    return config, dict(embed=r.embed, hidden=r.hidden, layers=r.layers, dropout=r.dropout, softmax="full")


def compare_quality(paths: list[str], config: TrainConfig, model_args: dict, recipe: Recipe,
                    max_steps: int | None, time_limit_s: float | None, chars: int | None = None,
                    curve_points: int = 0, keep: Path | None = None,
                    report: Callable[[str], None] = lambda line: None,
                    sides: tuple[str, ...] = SIDES, planned: frozenset[str] = frozenset(),
                    ) -> tuple[Split, dict[str, Side]]:
    """Train the project (config, model_args, planning `planned`), the reference and, if asked,
    the GPT, one after the other (only those in `sides`: on a shared machine each may run as its
    own command). -> the split, and each side trained by its name."""
    trained: dict[str, Side] = {}
    with tempfile.TemporaryDirectory(prefix="lstm-repl-quality-") as scratch:
        split = make_split(paths, Path(scratch), chars=chars)
        curve_every = max(1, max_steps // curve_points) if curve_points and max_steps else None
        if curve_every:
            config = TrainConfig(**{**config.__dict__, "eval_interval": curve_every})
        report(f"{split.name}: {len(split.train_text):,} characters to train on, {len(split.held_out):,} held out")
        if "lstm-repl" in sides:
            trained["lstm-repl"] = run_project(split, config, model_args, keep or Path(scratch) / "run", curve_every,
                                               report, planned)
        if "reference" in sides:
            trained["reference"] = run_reference(split, recipe, max_steps, time_limit_s, curve_every, report, config)
        if "gpt" in sides:
            trained["gpt"] = run_gpt(split, GPTRecipe(), max_steps, time_limit_s, config)
        for side in trained.values():
            report(f"{side.name}: {side.steps} steps, held-out bpc {side.bpc:.4f}")
    return split, trained
