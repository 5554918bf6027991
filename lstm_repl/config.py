"""The settings that shape a model, a training run and a sampling call.

Each is a plain dataclass, saved as JSON inside the checkpoint and rebuilt from it on load.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any

from lstm_repl.cells import cell_kinds
from lstm_repl.errors import ConfigError
from lstm_repl.safe_read import typed_object

LEVELS = ("char", "word", "bpe")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")  # of a training step: autocast to bf16 or fp16 (loss-scaled)
INFERENCE_PRECISIONS = ("auto", "fp16", "fp32")  # of the weights a generation step reads
DEVICES = ("auto", "cpu", "cuda", "mps")
MAX_LR = 100.0  # Adam moves each weight by about lr a step and SGD word models take 20: more is a typo
SOFTMAX_KINDS = ("full", "adaptive")  # output layer (model/output_head.py); the CLI adds "auto"
OPTIMIZERS = ("adam", "sgd")  # trainer.make_optimizer
SCHEDULES = ("wsd", "cosine", "constant")  # of the learning rate after warm-up (schedule.learning_rate)
# Beyond these, logits / temperature leaves float32 (1e-40 overflowed, 1e300 became inf): as
# greedy as 0 below, as uniform as it gets above
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 1e3
MAX_REPEAT_PENALTY = 1e3  # a recently seen token at most this many times less likely: beyond, it is simply banned
MAX_REPEAT_WINDOW = 1 << 20  # tokens looked back over for the repetition penalty
MAX_STOPS, MAX_STOP_CHARS = 16, 256  # stop strings, and characters in each
MIN_SEED, MAX_SEED = 0, (1 << 64) - 1  # torch.manual_seed takes these (and maps negative ones onto them)
# Far beyond any model this tool trains, and cheap to build on the meta device (0.2 s at the
# most): a hand-edited config asking for 100,000 layers is refused at once, not built for minutes.
MAX_LAYERS = 256
MAX_WIDTH = 1 << 16  # hidden and embed
DROPOUTS = ("dropout", "input_dropout", "output_dropout", "embed_dropout", "weight_drop")  # ModelConfig's
MAX_VOCAB = 1 << 24  # tokens; a character vocabulary holds at most 1,114,112


def finite(value: float) -> bool:
    """Neither NaN nor an infinity (every comparison with NaN is false, so a range check lets it through)."""
    return math.isfinite(value)


def seed_ok(seed: int | None) -> bool:
    return seed is None or (isinstance(seed, int) and not isinstance(seed, bool) and MIN_SEED <= seed <= MAX_SEED)


SEED_RULE = f"the seed must be a whole number from {MIN_SEED} to {MAX_SEED}"


@dataclass
class ModelConfig:
    vocab_size: int  # tokens in the vocabulary, <unk> included
    cell: str = "lstm"  # recurrent cell kind, one of cells.cell_kinds()
    layers: int = 2  # stacked recurrent layers
    hidden: int = 512  # units per layer (size of h and c)
    embed: int = 64  # size of the token embedding fed to layer 0
    dropout: float = 0.0  # between layers, as nn.LSTM's; training only
    # AWD-LSTM's regularisers (model/regularise.py), training only: locked dropout on the embedded
    # input and on the top layer's output, whole tokens dropped from the embedding, DropConnect on W_hh
    input_dropout: float = 0.0
    output_dropout: float = 0.0
    embed_dropout: float = 0.0
    weight_drop: float = 0.0
    tie_weights: bool = False  # decoder shares the embedding matrix (needs embed == hidden)
    softmax: str = "full"  # output layer, one of SOFTMAX_KINDS (model/output_head.py)
    cutoffs: list[int] = field(default_factory=list)  # adaptive: where the head and each tail cluster end
    div_value: float = 4.0  # adaptive: each tail cluster's projection is this much narrower

    def __post_init__(self) -> None:
        if self.cell not in cell_kinds():
            raise ConfigError(f"unknown cell kind {self.cell!r}; use one of {', '.join(cell_kinds())}")
        if self.layers < 1 or self.hidden < 1 or self.embed < 1 or self.vocab_size < 2:
            raise ConfigError("layers, hidden and embed must be at least 1 and the vocabulary at least 2")
        if self.layers > MAX_LAYERS or max(self.hidden, self.embed) > MAX_WIDTH or self.vocab_size > MAX_VOCAB:
            raise ConfigError(f"a model of {self.layers:,} layers, hidden {self.hidden:,}, embed {self.embed:,} and "
                              f"{self.vocab_size:,} tokens is beyond what this tool builds (at most {MAX_LAYERS} "
                              f"layers, {MAX_WIDTH:,} units or embedding dimensions, {MAX_VOCAB:,} tokens)")
        for name in DROPOUTS:
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name.replace('_', ' ')} must be in [0, 1), got {getattr(self, name)}")
        if self.tie_weights and self.embed != self.hidden:
            raise ConfigError(f"--tie-weights needs --embed equal to --hidden ({self.embed} != {self.hidden})")
        self._check_softmax()

    def _check_softmax(self) -> None:
        if self.softmax not in SOFTMAX_KINDS:
            raise ConfigError(f"unknown softmax {self.softmax!r}; use one of {', '.join(SOFTMAX_KINDS)}")
        if self.softmax == "full":
            return
        cuts = self.cutoffs
        if not isinstance(cuts, list) or not cuts or not all(isinstance(c, int) for c in cuts):
            raise ConfigError("the adaptive softmax needs its cut-offs: a list of whole numbers")
        if cuts != sorted(set(cuts)) or cuts[0] < 1 or cuts[-1] > self.vocab_size - 1:
            raise ConfigError(f"adaptive softmax cut-offs {cuts} must increase, each from 1 to the "
                              f"vocabulary size less one ({self.vocab_size - 1})")
        if not self.div_value >= 1:
            raise ConfigError(f"the adaptive softmax's div_value must be at least 1, got {self.div_value}")
        if self.tie_weights:
            raise ConfigError("--tie-weights shares the full softmax's matrix; it cannot go with --softmax adaptive")


@dataclass
class TrainConfig:
    level: str = "char"  # tokenizer level, one of LEVELS
    vocab_size: int = 20000  # word level: cap on the vocabulary; bpe: its size (BPE_DEFAULTS); <unk> included
    min_count: int = 1  # word level: drop words seen fewer times than this
    seq_len: int = 100  # tokens per truncated-BPTT chunk
    batch_size: int = 32  # parallel contiguous streams
    optimizer: str = "adam"  # one of OPTIMIZERS: AdamW, or plain SGD (word level's default)
    lr: float = 2e-3  # peak learning rate
    weight_decay: float = 0.0  # decoupled weight decay (AdamW), matrices only
    warmup: float = 0.02  # linear warm-up over this fraction of the run (of its steps or its time)
    schedule: str = "wsd"  # after warm-up, one of SCHEDULES
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * this
    grad_clip: float = 5.0  # max global gradient norm
    max_steps: int | None = None  # stop after this many optimizer steps
    time_limit_s: float | None = None  # stop after this many seconds of training
    epochs: float | None = None  # stop after this many passes over the training tokens
    val_fraction: float = 0.05  # the last part of the corpus held out for validation
    eval_interval: int = 200  # steps between validations (and checkpoints)
    eval_tokens: int = 200_000  # validation tokens per periodic check (the final check: all, up to data.VALIDATION_CAP)
    log_interval: int = 20  # steps between log records
    sample_length: int = 200  # tokens in the sample shown at each validation
    seed: int = 1337
    device: str = "auto"  # one of DEVICES
    precision: str = "auto"  # one of PRECISIONS
    encoding: str = "utf-8"  # corpus text encoding

    def __post_init__(self) -> None:
        checks = [
            (self.level in LEVELS, f"--level must be one of {', '.join(LEVELS)}"),
            (self.seq_len >= 1, "--seq-len must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (0 < self.lr <= MAX_LR, f"--lr must be above 0 and at most {MAX_LR:g}"),
            (self.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (0.0 <= self.warmup < 1.0, "--warmup must be a fraction of the run, from 0 to below 1"),
            (self.grad_clip > 0 and finite(self.grad_clip), "--grad-clip must be a positive number"),
            (self.weight_decay >= 0 and finite(self.weight_decay), "--weight-decay must be 0 or more"),
            (0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio must be from 0 to 1"),
            (0.0 < self.val_fraction < 1.0, "--val-fraction must be between 0 and 1"),
            (self.max_steps is None or self.max_steps >= 1, "--max-steps must be at least 1"),
            (self.time_limit_s is None or (self.time_limit_s > 0 and finite(self.time_limit_s)),
             "--time must be positive"),
            (self.epochs is None or (self.epochs > 0 and finite(self.epochs)), "--epochs must be a positive number"),
            (self.eval_interval >= 1, "--eval-interval must be at least 1"),
            (self.log_interval >= 1, "--log-interval must be at least 1"),
            (self.eval_tokens >= 1, "eval_tokens must be at least 1"),
            (self.sample_length >= 0, "sample_length must be 0 or more"),
            (seed_ok(self.seed), f"--seed: {SEED_RULE}"),
            (self.device in DEVICES, f"--device must be one of {', '.join(DEVICES)}"),
            (self.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}"),
            (self.vocab_size >= 2, "--vocab-size must be at least 2"),
            (self.level != "bpe" or BPE_MIN_VOCAB <= self.vocab_size <= BPE_MAX_VOCAB,
             f"--vocab-size must be from {BPE_MIN_VOCAB} (<unk> and the 256 bytes) to {BPE_MAX_VOCAB:,} at bpe level"),
            (self.min_count >= 1, "--min-count must be at least 1"),
            (self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


@dataclass
class SampleConfig:
    temperature: float = 0.8  # 0 is greedy
    top_k: int = 0  # keep the k most likely tokens; 0 keeps all
    top_p: float = 1.0  # keep the smallest set whose probability reaches p
    length: int = 200  # tokens to generate
    seed: int | None = None  # same seed, same text
    # stop once the output ends with this string, or with any of these (older callers and
    # recordings give one string; a list is kept as a tuple)
    stop: str | tuple[str, ...] | None = None
    precision: str = "auto"  # weights read per token: fp32, fp16 (arithmetic in fp32), auto
    min_p: float = 0.0  # drop tokens less likely than min_p times the most likely one; 0 keeps all
    repeat_penalty: float = 1.0  # a token among the last repeat_window ones is this many times less likely
    repeat_window: int = 64  # tokens (the prompt's included) the penalty looks back over

    def __post_init__(self) -> None:
        if isinstance(self.stop, list):
            self.stop = tuple(self.stop)
        self.check()

    @property
    def stops(self) -> tuple[str, ...]:
        """Every stop string (none, one, or several)."""
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else self.stop

    @property
    def penalises(self) -> bool:
        return self.repeat_penalty != 1.0 and self.repeat_window > 0

    def check(self) -> None:
        """Raise ConfigError unless every setting is one a sampler can use (the CLI's options,
        the shell's :set and a recording's header come through here)."""
        if self.precision not in INFERENCE_PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(INFERENCE_PRECISIONS)}")
        if not (self.temperature == 0 or MIN_TEMPERATURE <= self.temperature <= MAX_TEMPERATURE):
            raise ConfigError(f"temperature must be 0 (greedy) or from {MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}; "
                              f"got {self.temperature}")
        if self.top_k < 0:
            raise ConfigError("top-k must be 0 (off) or more")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError("top-p must be in (0, 1]")
        if not 0.0 <= self.min_p <= 1.0:
            raise ConfigError(f"min-p must be from 0 (off) to 1; got {self.min_p}")
        if not 1.0 <= self.repeat_penalty <= MAX_REPEAT_PENALTY:
            raise ConfigError(f"the repeat penalty must be from 1 (off) to {MAX_REPEAT_PENALTY:g}; "
                              f"got {self.repeat_penalty}")
        if not 0 <= self.repeat_window <= MAX_REPEAT_WINDOW:
            raise ConfigError(f"the repeat window must be from 0 (off) to {MAX_REPEAT_WINDOW:,} tokens; "
                              f"got {self.repeat_window}")
        if self.length < 0:
            raise ConfigError("length must be 0 or more")
        if not seed_ok(self.seed):
            raise ConfigError(SEED_RULE)
        self._check_stops()

    def _check_stops(self) -> None:
        stop = self.stop
        if not (stop is None or isinstance(stop, str) or (isinstance(stop, tuple) and
                                                          all(isinstance(s, str) for s in stop))):
            raise ConfigError("stop must be a string or a list of strings")
        if len(self.stops) > MAX_STOPS:
            raise ConfigError(f"at most {MAX_STOPS} stop strings; got {len(self.stops)}")
        if any(not s or len(s) > MAX_STOP_CHARS for s in self.stops):
            raise ConfigError(f"a stop string must have from 1 to {MAX_STOP_CHARS} characters")


# Where word level differs from the dataclasses' defaults (chosen by measurement: README, "Word
# level"). A word step predicts from tens of thousands of tokens: smaller, shorter and more
# frequent steps learn more in the same time than char level's 2 x 512, batch 64, seq 100. And
# plain SGD at lr 20 with the gradient clipped at 0.25 (pytorch/examples' and AWD-LSTM's choice)
# learns words far faster than Adam: 1.69 against 1.95 bits per character in 2 minutes on WikiText-2.
WORD_DEFAULTS = {"hidden": 256, "embed": 128, "dropout": 0.2, "batch_size": 32, "seq_len": 35, "optimizer": "sgd",
                 "lr": 20.0, "grad_clip": 0.25}


# A byte-level BPE vocabulary: <unk> and the 256 bytes at least, and its size when none is given
# (provisional: issue 25 point 4 chooses it by measurement).
BPE_MIN_VOCAB, BPE_MAX_VOCAB = 257, 1 << 20
BPE_DEFAULTS = {"vocab_size": 512}  # the best of 512 / 2,048 / 8,192 at 10 minutes (README, bench levels)


@dataclass(frozen=True)
class DynamicConfig:
    """Dynamic evaluation's update (training/dynamic_eval.py): `eval --dynamic` and the shell's
    :learn. The defaults are the best of `lstm-repl bench dynamic`'s grid (README)."""

    lr: float = 3e-4  # eta: the step, in units of the gradient's rms
    decay: float = 0.01  # lambda: how fast the weights return toward the trained ones, per segment
    segment: int = 50  # tokens scored, then learned from, at a time
    epsilon: float = 0.1  # eps as a fraction of each weight tensor's mean rms

    def __post_init__(self) -> None:
        for name in ("lr", "decay", "epsilon"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"the dynamic {name} must be a finite number of at least 0, got {value!r}")
        if self.decay > 1:
            raise ConfigError(f"the dynamic decay must be at most 1 (it is a fraction per segment), got {self.decay}")
        if not isinstance(self.segment, int) or not 2 <= self.segment <= 10_000:
            raise ConfigError(f"the dynamic segment must be a whole number of tokens from 2 to 10,000, "
                              f"got {self.segment!r}")

    def describe(self) -> str:
        return f"lr {self.lr:g} · decay {self.decay:g} · segment {self.segment}"


def level_defaults(level: str) -> dict:
    """The ModelConfig and TrainConfig fields whose default differs at this level."""
    return dict(WORD_DEFAULTS) if level == "word" else dict(BPE_DEFAULTS) if level == "bpe" else {}


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def from_dict(cls: type, data: dict) -> Any:
    """Rebuild a config, ignoring keys this version does not know (written by a newer minor). A
    file may hold anything: each known value must first be of its field's type (ConfigError)."""
    typed_object(data, field_kinds(cls), cls.__name__, ConfigError)
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


def field_kinds(cls: type) -> dict:
    """A dataclass's fields as safe_read.typed_object checks them: int, (float, NoneType), [int] ..."""
    def kind(hint: Any) -> Any:
        if typing.get_origin(hint) is list:
            return [typing.get_args(hint)[0]]
        return typing.get_args(hint) or hint  # X | None -> (X, NoneType)

    return {name: kind(hint) for name, hint in typing.get_type_hints(cls).items()}
