"""The run's plan: how many passes over the corpus the budget buys on this machine, and the
regularisation that suits that many.

Settings follow the work, not the machine: the same 10 minutes are 3 passes over Shakespeare on
one CPU and 10 on a CPU three times as fast, and a model that fits 3 passes well overfits 10. So
`train` times a few steps of the model it is about to train (step_rate), turns the budget into
passes (time x tokens a second / training tokens, or steps x tokens a step, or --epochs), and
looks the passes up in its level's table below. Only settings the user did not give are planned;
the table's figures were chosen by `bench quality` (README, "Quality").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from lstm_repl.config import ModelConfig, TrainConfig

# What the planner may set (every other setting is the level's default or the user's).
PLANNED = ("dropout", "input_dropout", "output_dropout", "embed_dropout", "weight_drop", "weight_decay",
           "batch_size")


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


def regimes(level: str) -> tuple[Regime, ...]:
    return WORD_REGIMES if level == "word" else CHAR_REGIMES


def regime_for(level: str, passes: float) -> Regime:
    return next(r for r in regimes(level) if passes <= r.up_to_passes)


@dataclass(frozen=True)
class Plan:
    passes: float  # over the training tokens, by the budget, at the planned settings
    tokens_per_s: float  # measured here, at the planned batch, in the run's precision
    precision: str
    train_tokens: int
    regime: str
    chosen: dict  # the settings the plan set (the user's own are not in it)
    bound: str  # what limits the run: "10m", "1,000 steps", "3 passes"

    def line(self) -> str:
        """What train says of it before it starts."""
        shown = {name: value for name, value in self.chosen.items() if value or name == "dropout"}
        chosen = ", ".join(f"{name.replace('_', ' ')} {value:g}" for name, value in shown.items()) or "nothing"
        return (f"plan: about {self.passes:.2g} passes over {self.train_tokens:,} training tokens ({self.bound} at "
                f"{self.tokens_per_s:,.0f} tokens/s measured here, {self.precision}): {self.regime}; set {chosen}")

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
    base = {name: 0.0 for name in PLANNED if name not in ("batch_size", "dropout")}  # regimes name what they turn on
    chosen = {name: value for name, value in {**base, **regime.settings}.items() if name in planned}
    return regime, chosen


def apply(config: TrainConfig, model_args: dict, chosen: dict) -> tuple[TrainConfig, dict]:
    """config and model_args with the plan's settings in place."""
    model_names = {f.name for f in dataclasses.fields(ModelConfig)}
    train = {k: v for k, v in chosen.items() if k not in model_names}
    model = {k: v for k, v in chosen.items() if k in model_names}
    return dataclasses.replace(config, **train), {**model_args, **model}


def make_plan(config: TrainConfig, model_args: dict, planned: frozenset[str], train_tokens: int, precision: str,
              rate_at: Callable[[int], float]) -> tuple[TrainConfig, dict, Plan]:
    """The run's settings with the plan's in place, and the plan. rate_at(batch): training tokens a
    second measured here at that batch size. The regime is chosen at the given batch size; the
    passes reported are those of the planned one. A run bounded by steps keeps its batch size: a
    step of twice the batch would be twice the work the user asked for."""
    if config.max_steps:
        planned = planned - {"batch_size"}
    rate = rate_at(config.batch_size)
    regime, chosen = settings_for(config.level, passes_for(config, config.batch_size, rate, train_tokens), planned)
    planned_config, planned_args = apply(config, model_args, chosen)
    if planned_config.batch_size != config.batch_size:
        rate = rate_at(planned_config.batch_size)
    passes = passes_for(planned_config, planned_config.batch_size, rate, train_tokens)
    plan = Plan(round(passes, 3), round(rate, 1), precision, train_tokens, regime.name, chosen, bound_text(config))
    return planned_config, planned_args, plan
