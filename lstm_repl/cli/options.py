"""Click options that several commands share, and the parsers of their values.

Defaults are read from the config dataclasses, so `lstm-repl train FILE` trains with exactly
TrainConfig() and ModelConfig(), and `bench quality` measures those same defaults.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Callable

import click

from lstm_repl.cells import cell_kinds
from lstm_repl.config import (
    DEVICES,
    LEVELS,
    MAX_REPEAT_PENALTY,
    MAX_REPEAT_WINDOW,
    MAX_SEED,
    MAX_TEMPERATURE,
    MIN_SEED,
    PRECISIONS,
    SCHEDULES,
    SOFTMAX_KINDS,
    BPE_DEFAULTS,
    OPTIMIZERS,
    WORD_DEFAULTS,
    ModelConfig,
    SampleConfig,
    TrainConfig,
    level_defaults,
)
from lstm_repl.training.cutoffs import ADAPTIVE_FROM
from lstm_repl.training.plan import MIN_PASSES, PLANNED, SIZES

# ModelConfig fields given on the command line (vocab_size and the adaptive cut-offs come from the corpus)
MODEL_FIELDS = ("cell", "layers", "hidden", "embed", "dropout", "input_dropout", "output_dropout", "embed_dropout",
                "weight_drop", "tie_weights", "softmax")


def default(config_class: type, name: str):
    return next(f.default for f in dataclasses.fields(config_class) if f.name == name)


def parse_duration(text: str | None) -> float | None:
    """'90', '90s', '10m', '1h30m' -> seconds."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not match or not any(match.groups()):
        raise click.BadParameter(f"{text!r} is not a duration; write e.g. 90s, 10m or 1h30m", param_hint="--time")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise click.BadParameter("must be longer than zero", param_hint="--time")
    return total


MAX_NUMBER_TEXT = 64  # characters: no number an option takes is longer; a longer one is refused unparsed


def _refuse_long(kind: click.ParamType, value, param, ctx) -> None:
    if isinstance(value, str) and len(value) > MAX_NUMBER_TEXT:
        kind.fail(f"{value[:20]!r}... ({len(value):,} characters) is not a number this option takes", param, ctx)


class FiniteFloat(click.FloatRange):
    """click.FloatRange that also refuses NaN, the infinities and numbers too large for a float
    (1e999): FloatRange lets NaN through (every comparison with it is false). Every float option
    takes this type."""

    def convert(self, value, param, ctx):
        _refuse_long(self, value, param, ctx)
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


class WholeNumber(click.IntRange):
    """click.IntRange that names a number of thousands of digits by its first ones instead of
    echoing it whole."""

    def convert(self, value, param, ctx):
        _refuse_long(self, value, param, ctx)
        return super().convert(value, param, ctx)


SEED = WholeNumber(MIN_SEED, MAX_SEED)


def _train(name: str, *flags: str, **kwargs):
    return _option(TrainConfig, name, *flags, **kwargs)


def _model(name: str, *flags: str, **kwargs):
    return _option(ModelConfig, name, *flags, **kwargs)


def _option(config_class: type, name: str, *flags: str, help: str = "", **kwargs):
    """An option defaulting to the dataclass's value; where word level has its own
    (config.WORD_DEFAULTS) or train's plan chooses it (plan.PLANNED), no default is set here and
    split_settings fills in the level's."""
    if name in PLANNED:
        return click.option(*flags, default=None, help=f"{help} [default: train plans it]".strip(), **kwargs)
    if name not in WORD_DEFAULTS:
        return click.option(*flags, default=default(config_class, name), show_default=True, help=help, **kwargs)
    shown = f"[default: {_shown(default(config_class, name))}; word level: {_shown(WORD_DEFAULTS[name])}]"
    return click.option(*flags, default=None, help=f"{help} {shown}".strip(), **kwargs)


def _widths(level: str) -> str:
    return ", ".join(str(hidden) for hidden, _ in SIZES[level])


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


POSITIVE = FiniteFloat(min=0, min_open=True)
FRACTION = FiniteFloat(0, 1, max_open=True)  # from 0 to below 1
COUNT = WholeNumber(min=1)

# What a training run is made of, shared by train and compare (each adds its own bounds and folders).
TRAINING_OPTIONS = [
    _train("level", "--level", type=click.Choice(LEVELS)),
    click.option("--vocab-size", type=WholeNumber(min=2), default=None,
                 help=f"Word level: vocabulary cap [default: {default(TrainConfig, 'vocab_size')}]. "
                      f"bpe: its size [default: {BPE_DEFAULTS['vocab_size']}]."),
    _train("min_count", "--min-count", type=COUNT, help="Word level: drop rarer words."),
    _model("layers", "--layers", type=COUNT),
    _model("hidden", "--hidden", type=COUNT,
           help=f"Units per layer: planned as the widest of {_widths('char')} (word level: {_widths('word')}) that "
                f"the budget reads the corpus {MIN_PASSES:g} times with."),
    _model("embed", "--embed", type=COUNT, help="Embedding size (planned with the width: 64; word level: half of it)."),
    _model("dropout", "--dropout", type=FRACTION, help="Dropout between layers, as nn.LSTM's."),
    _model("input_dropout", "--input-dropout", type=FRACTION,
           help="Locked dropout on the embedded input (AWD-LSTM's dropouti)."),
    _model("output_dropout", "--output-dropout", type=FRACTION,
           help="Locked dropout on the top layer's output (AWD-LSTM's dropout)."),
    _model("embed_dropout", "--embed-dropout", type=FRACTION,
           help="Whole tokens dropped from the embedding (AWD-LSTM's dropoute)."),
    _model("weight_drop", "--weight-drop", type=FRACTION,
           help="DropConnect on the recurrent matrices W_hh (AWD-LSTM's wdrop)."),
    click.option("--tie-weights", is_flag=True,
                 help="Share the embedding and decoder matrices (needs --embed = --hidden)."),
    click.option("--softmax", type=click.Choice(["auto", *SOFTMAX_KINDS]), default="auto", show_default=True,
                 help=f"Output layer. auto: adaptive at word level from {ADAPTIVE_FROM:,} tokens, else full."),
    _train("seq_len", "--seq-len", type=COUNT, help="TBPTT chunk length."),
    _train("batch_size", "--batch-size", type=COUNT, help="Parallel streams."),
    _train("optimizer", "--optimizer", type=click.Choice(OPTIMIZERS),
           help="adam (AdamW) or sgd (plain, no momentum)."),
    _train("lr", "--lr", type=POSITIVE, help="Peak learning rate."),
    _train("schedule", "--schedule", type=click.Choice(SCHEDULES),
           help="After the warm-up: cosine decay over the run, or constant."),
    _train("warmup", "--warmup", type=FRACTION,
           help="Warm-up as a fraction of the run (time or steps)."),
    _train("grad_clip", "--grad-clip", type=POSITIVE, help="Largest gradient norm."),
    _train("weight_decay", "--weight-decay", type=FiniteFloat(min=0),
           help="Weight decay on matrices only (decoupled with adam, L2 with sgd)."),
    _train("val_fraction", "--val-fraction", type=FiniteFloat(0, 1, min_open=True, max_open=True),
           help="The end of the corpus held out for validation (validation reads at most its last 1,000,000 tokens)."),
    _train("eval_interval", "--eval-interval", type=COUNT, help="Steps between validations (and checkpoints)."),
    _train("log_interval", "--log-interval", type=COUNT, help="Steps between log lines."),
    _train("device", "--device", type=click.Choice(DEVICES)),
    _train("precision", "--precision", type=click.Choice(PRECISIONS),
           help="auto: bf16 or fp16 where it runs here and is faster, else fp32."),
    _train("encoding", "--encoding", help="Text encoding of the corpus."),
    _train("seed", "--seed", type=SEED),
]

CELL_OPTION = _model("cell", "--cell", type=click.Choice(cell_kinds()), help="Recurrent cell kind (docs/cells.md).")

SAMPLING = SampleConfig()  # the sampler's defaults, which the shell's and generate's options show
TEMPERATURE = FiniteFloat(0, MAX_TEMPERATURE)  # and 0 or at least MIN_TEMPERATURE: SampleConfig says so
TOP_P = FiniteFloat(0, 1, min_open=True)

# Sampling beyond temperature, top-k and top-p, as generate, the shell and the piped shell take it
MORE_SAMPLING_OPTIONS = [
    click.option("--min-p", type=FiniteFloat(0, 1), default=SAMPLING.min_p, show_default=True,
                 help="Drop tokens less likely than MIN_P times the most likely one (0 keeps all)."),
    click.option("--repeat-penalty", type=FiniteFloat(1, MAX_REPEAT_PENALTY), default=SAMPLING.repeat_penalty,
                 show_default=True, help="Make each token seen among the last --repeat-last-n this many times "
                                         "less likely (1 is off)."),
    click.option("--repeat-last-n", "repeat_window", type=WholeNumber(0, MAX_REPEAT_WINDOW),
                 default=SAMPLING.repeat_window, show_default=True,
                 help="Tokens (the prompt's included) the repeat penalty looks back over."),
    click.option("--stop", multiple=True, help="Stop once the output reaches this string; it is written, nothing "
                                               "after it (repeatable)."),
]

SHELL_OPTIONS = [
    click.option("--temperature", type=TEMPERATURE, default=SAMPLING.temperature, show_default=True,
                 help="0 is greedy."),
    click.option("--top-k", type=WholeNumber(min=0), default=SAMPLING.top_k, show_default=True),
    click.option("--top-p", type=TOP_P, default=SAMPLING.top_p, show_default=True),
    click.option("--length", type=COUNT, default=SAMPLING.length, show_default=True, help="Tokens Enter streams."),
    click.option("--seed", type=SEED, help="Seed the sampler."),
    *MORE_SAMPLING_OPTIONS,
]


def with_options(options: list) -> Callable:
    """Apply a list of click options to a command, in the order listed (as --help shows them)."""

    def decorate(fn: Callable) -> Callable:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


TRAIN_NAMES = {f.name for f in dataclasses.fields(TrainConfig)}
LEVEL_SPECIFIC = {*WORD_DEFAULTS, *BPE_DEFAULTS}  # options whose default depends on --level


def left_to_plan(opts: dict) -> frozenset[str]:
    """The settings of plan.PLANNED not given on the command line: train's plan chooses them."""
    return frozenset(name for name in PLANNED if name in opts and opts[name] is None)


def split_settings(opts: dict) -> tuple[dict, dict]:
    """A command's parsed options -> (TrainConfig fields, ModelConfig fields); others are left out.
    An option left unset (None) with a level-specific default takes its level's (or the dataclass's)."""
    by_level = level_defaults(opts.get("level") or "char")
    opts = {name: by_level.get(name, default(TrainConfig if name in TRAIN_NAMES else ModelConfig, name))
            if value is None and (name in LEVEL_SPECIFIC or name in PLANNED) else value for name, value in opts.items()}
    train_names = TRAIN_NAMES
    train = {name: value for name, value in opts.items() if name in train_names}
    model = {name: opts[name] for name in MODEL_FIELDS if name in opts}
    return train, model


INTERVENTION_OPTIONS = [
    click.option("--clamp", multiple=True, metavar="LAYER:UNIT=VALUE",
                 help="Hold a unit's cell state at VALUE (-1000 to 1000) at every step (repeatable), e.g. 1:244=0.5."),
    click.option("--ablate", multiple=True, metavar="LAYER:UNIT", help="Zero a unit at every step (repeatable)."),
    click.option("--force", multiple=True, metavar="LAYER:GATE=VALUE",
                 help="Hold a gate of every unit of a layer at VALUE (repeatable): 1:f=1 never forgets."),
]


def interventions_from(model, clamp: tuple[str, ...], ablate: tuple[str, ...], force: tuple[str, ...]):
    """The --clamp/--ablate/--force options, checked against the model (a bad one: one line)."""
    from lstm_repl.model.interventions import Interventions
    from lstm_repl.session.intervention_parser import forceable_gates, parse

    gates = forceable_gates(model)
    config = model.config
    items = [parse(kind, spec, config.layers, config.hidden, gates)
             for kind, specs in (("clamp", clamp), ("ablate", ablate), ("force", force)) for spec in specs]
    return Interventions(items) if items else None
