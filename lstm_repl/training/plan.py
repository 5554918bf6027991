"""The run's plan: how many passes over the corpus the budget buys on this machine, and the
model width and regularisation that suit that many.

Settings follow the work, not the machine: the same 10 minutes are 3 passes over Shakespeare on
one CPU and 10 on a CPU three times as fast, and a model that fits 3 passes well overfits 10. So
`train` times a few steps of the model it is about to train (step_rate), turns the budget into
passes (time x tokens a second / training tokens, or steps x tokens a step, or --epochs), and
looks the passes up in its level's table below. Before that it picks the width: the widest of its
level's sizes that the budget still reads MIN_PASSES times, timed on each. Only settings the user
did not give are planned; the figures were chosen by `bench quality` and `bench matrix` (README,
"Quality").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from lstm_repl.config import WORD_DEFAULTS, ModelConfig, TrainConfig

# What the planner may set (every other setting is the level's default or the user's).
REGULARISERS = ("dropout", "input_dropout", "output_dropout", "embed_dropout", "weight_drop", "weight_decay")
PLANNED = ("hidden", "embed", *REGULARISERS, "batch_size")


@dataclass(frozen=True)
class Regime:
    up_to_passes: float  # this regime holds for runs of at most this many passes
    name: str  # what the one-line plan calls it
    settings: dict


CHAR_REGIMES = (
    Regime(1.5, "under two passes: no dropout", {"dropout": 0.0, "batch_size": 32}),
    Regime(5.0, "a few passes: light dropout", {"dropout": 0.1, "batch_size": 32}),
    Regime(10.0, "many passes: dropout", {"dropout": 0.2, "output_dropout": 0.1, "batch_size": 64}),
    Regime(30.0, "tens of passes: AWD-LSTM's dropouts",
           {"dropout": 0.3, "output_dropout": 0.2, "weight_drop": 0.2, "batch_size": 64}),
    Regime(float("inf"), "a small corpus read over and over: strong AWD-LSTM dropouts",
           {"dropout": 0.4, "output_dropout": 0.3, "input_dropout": 0.1, "weight_drop": 0.3, "batch_size": 64}),
)
WORD_REGIMES = (
    Regime(1.5, "under two passes: light dropout", {"dropout": 0.1}),
    Regime(4.0, "a few passes: dropout", {"dropout": 0.2, "input_dropout": 0.1, "output_dropout": 0.2,
                                          "embed_dropout": 0.05}),
    Regime(10.0, "many passes: AWD-LSTM's dropouts",
           {"dropout": 0.25, "input_dropout": 0.2, "output_dropout": 0.3, "embed_dropout": 0.1,
            "weight_drop": 0.2}),
    Regime(float("inf"), "tens of passes: strong AWD-LSTM dropouts",
           {"dropout": 0.3, "input_dropout": 0.3, "output_dropout": 0.4, "embed_dropout": 0.1,
            "weight_drop": 0.4}),
)


# The widths planned among, widest first: (hidden, embed). A wider model learns more from a pass
# over the corpus but makes fewer passes in the same minutes; the widest that the plan finds still
# reads its corpus MIN_PASSES times wins (bench matrix's rows, fp32, 2-core AVX2 EPYC; passes
# planned, then made). Python source in 2 minutes: 2 x 512 (0.7, 0.73) 2.007 bits per character,
# 2 x 256 (2.6, 2.2) 1.605, 2 x 128 (9.2, 6.2) 1.539. Shakespeare in 2 minutes: 2 x 512 2.624,
# 2 x 256 (2.6, 2.1) 2.623, 2 x 128 (7.4, 6.5) 2.485. Shakespeare in 10 minutes: 2 x 512 (3.3)
# 2.262, 2 x 256 (9.3, one run with --hidden 256) 2.408. WikiText-2 words in 10 minutes: 2 x 256
# (14) 1.714, 2 x 512 (7.3, 5.1) 1.680. The plan's passes run over those made (evaluation takes
# its share of the minutes), so the bound sits between 2.6 planned (too few) and 3.3 (enough).
SIZES = {"char": ((512, 64), (256, 64), (128, 64)), "word": ((512, 256), (256, 128))}
MIN_PASSES = 3.0


def _kind(level: str) -> str:
    """The tables' key for a level: word level has its own, char and BPE share char level's."""
    return "word" if level == "word" else "char"


def sizes(level: str) -> tuple[tuple[int, int], ...]:
    return SIZES[_kind(level)]


# The regimes' bounds were measured on each level's default width. A narrower model has less to
# over-fit with, so it reads them at its passes scaled by its width (taken as proportional: a
# guess on the safe side, since the weights grow with its square). 2 x 128 over Python source in
# 2 minutes, one run each: 1.537 bits per character with light dropout at batch 32, 1.803 with
# the regime of its unscaled 6.7 passes (dropout 0.2 at batch 64: half the steps).
REGIME_WIDTH = {"char": ModelConfig.hidden, "word": WORD_DEFAULTS["hidden"]}


def regime_passes(level: str, passes: float, hidden: int) -> float:
    """The passes a model of this width reads the regimes at."""
    return passes * hidden / REGIME_WIDTH[_kind(level)]


def regimes(level: str) -> tuple[Regime, ...]:
    return {"word": WORD_REGIMES, "char": CHAR_REGIMES}[_kind(level)]


def regime_for(level: str, passes: float) -> Regime:
    return next(r for r in regimes(level) if passes <= r.up_to_passes)


@dataclass(frozen=True)
class Plan:
    passes: float  # over the training tokens, by the budget, at the planned settings
    tokens_per_s: float  # measured here, at the planned batch and width, in the run's precision
    precision: str
    train_tokens: int
    regime: str
    chosen: dict  # the settings the plan set (the user's own are not in it)
    bound: str  # what limits the run: "10m", "1,000 steps", "3 passes"
    wider: str = ""  # why not the next wider size: "2 x 512 would make 0.73 passes"
    regime_passes: float | None = None  # the passes the regime was read at, where the width scaled them
    precision_rates: dict = dataclasses.field(default_factory=dict)  # auto: tokens/s of the run's model in each

    def line(self) -> str:
        """What train says of it before it starts."""
        shown = {name: value for name, value in self.chosen.items() if value or name == "dropout"}
        chosen = ", ".join(f"{name.replace('_', ' ')} {value:g}" for name, value in shown.items()) or "nothing"
        why_not_wider = f" ({self.wider})" if self.wider else ""
        read_as = f"read as {self.regime_passes:.2g} at its width, " if self.regime_passes is not None else ""
        return (f"plan: about {self.passes:.2g} passes over {self.train_tokens:,} training tokens ({self.bound} at "
                f"{self.tokens_per_s:,.0f} tokens/s measured here, {self.precision_text()}): {read_as}{self.regime}; "
                f"set {chosen}{why_not_wider}")

    def precision_text(self) -> str:
        """'bf16, 1.68x fp32's speed', or 'fp32: bf16 ran 1.05x as fast': where auto timed several."""
        rates = self.precision_rates
        others = {p: r / rates["fp32"] for p, r in rates.items() if p != "fp32"} if rates.get("fp32") else {}
        if not others:
            return self.precision
        if self.precision != "fp32":
            return f"{self.precision}, {others[self.precision]:.2f}x fp32's speed"
        return "fp32: " + ", ".join(f"{p} ran {x:.2f}x as fast" for p, x in others.items())

    def record(self) -> dict:
        return dataclasses.asdict(self)


def passes_for(config: TrainConfig, batch_size: int, tokens_per_s: float, train_tokens: int) -> float:
    """How many passes over the training tokens the run's first bound allows."""
    step_tokens = batch_size * config.seq_len
    candidates = []
    if config.epochs:
        candidates.append(config.epochs)
    if config.max_steps:
        candidates.append(config.max_steps * step_tokens / train_tokens)
    if config.time_limit_s:
        candidates.append(config.time_limit_s * tokens_per_s / train_tokens)
    return min(candidates) if candidates else float("inf")


def bound_text(config: TrainConfig) -> str:
    bounds = []
    if config.time_limit_s:
        bounds.append(_duration(config.time_limit_s))
    if config.max_steps:
        bounds.append(f"{config.max_steps:,} steps")
    if config.epochs:
        bounds.append(f"{config.epochs:g} passes")
    return " or ".join(bounds) or "no bound"


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"


def settings_for(level: str, passes: float, planned: frozenset[str]) -> tuple[Regime, dict]:
    """The regime these passes fall in, and its settings for the names the planner may set."""
    regime = regime_for(level, passes)
    base = {name: 0.0 for name in REGULARISERS if name != "dropout"}  # regimes name what they turn on
    chosen = {name: value for name, value in {**base, **regime.settings}.items() if name in planned}
    return regime, chosen


def apply(config: TrainConfig, model_args: dict, chosen: dict) -> tuple[TrainConfig, dict]:
    """config and model_args with the plan's settings in place."""
    model_names = {f.name for f in dataclasses.fields(ModelConfig)}
    train = {k: v for k, v in chosen.items() if k not in model_names}
    model = {k: v for k, v in chosen.items() if k in model_names}
    return dataclasses.replace(config, **train), {**model_args, **model}


# rate_at(batch, model_args) -> (precision, training tokens a second), timed here on that model
RateAt = Callable[[int, dict], tuple[str, float]]


@dataclass(frozen=True)
class Sized:
    model_args: dict
    chosen: dict  # the width the plan set, if it set one
    precision: str
    tokens_per_s: float  # at the config's batch size
    wider: str  # why not the next wider size, if a narrower one was taken


def size_for(config: TrainConfig, model_args: dict, planned: frozenset[str], train_tokens: int,
             rate_at: RateAt) -> Sized:
    """The widest of the level's sizes that the budget reads at least MIN_PASSES times (else the
    narrowest), each timed at the config's batch; the given width where the user named one. Tied
    weights take an embedding as wide as the hidden state."""
    tied = bool(model_args.get("tie_weights"))
    if "hidden" not in planned or (tied and "embed" not in planned):
        return Sized(model_args, {}, *rate_at(config.batch_size, model_args), "")
    wider = ""
    for hidden, embed in sizes(config.level):
        chosen = {"hidden": hidden, **({"embed": hidden if tied else embed} if "embed" in planned else {})}
        args = {**model_args, **chosen}
        precision, rate = rate_at(config.batch_size, args)
        passes = passes_for(config, config.batch_size, rate, train_tokens)
        if passes >= MIN_PASSES or (hidden, embed) == sizes(config.level)[-1]:
            return Sized(args, chosen, precision, rate, wider)
        wider = f"{args.get('layers', ModelConfig.layers)} x {hidden} would make {passes:.2g} passes"
    raise AssertionError("unreachable: the narrowest size is always taken")


def make_plan(config: TrainConfig, model_args: dict, planned: frozenset[str], train_tokens: int,
              rate_at: RateAt) -> tuple[TrainConfig, dict, Plan]:
    """The run's settings with the plan's in place, and the plan. The width is chosen first
    (size_for), then the regime, at the given batch size and read at that width (regime_passes);
    the passes reported are those of the planned batch. A run bounded by steps keeps its batch
    size: a step of twice the batch would be twice the work the user asked for."""
    if config.max_steps:
        planned = planned - {"batch_size"}
    sized = size_for(config, model_args, planned, train_tokens, rate_at)
    given_batch_passes = passes_for(config, config.batch_size, sized.tokens_per_s, train_tokens)
    read_as = regime_passes(config.level, given_batch_passes, sized.model_args.get("hidden", ModelConfig.hidden))
    regime, chosen = settings_for(config.level, read_as, planned)
    planned_config, planned_args = apply(config, sized.model_args, chosen)
    precision, rate = sized.precision, sized.tokens_per_s
    if planned_config.batch_size != config.batch_size:
        precision, rate = rate_at(planned_config.batch_size, planned_args)
    passes = passes_for(planned_config, planned_config.batch_size, rate, train_tokens)
    plan = Plan(round(passes, 3), round(rate, 1), precision, train_tokens, regime.name, {**sized.chosen, **chosen},
                bound_text(config), sized.wider, None if read_as == given_batch_passes else round(read_as, 3))
    return planned_config, planned_args, plan
