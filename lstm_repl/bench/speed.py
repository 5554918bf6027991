"""Speed measurements behind `lstm-repl bench`: the project's code against bare PyTorch loops."""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lstm_repl.config import TrainConfig
from lstm_repl.training.cutoffs import output_layer
from lstm_repl.model.devices import resolve_device
from lstm_repl.model.base import layer_weight_names
from lstm_repl.model.precision import DTYPES, autocast, probe_training, resolve_training_precision
from lstm_repl.training.trainer import Trainer, new_model
from lstm_repl.data.vocab import CharVocab, WordVocab, np_dtype


def matmul_peaks(device: torch.device, lower: tuple[str, ...] = ("bf16",), size: int = 2048,
                 reps: int = 5) -> dict[str, float]:
    """GFLOP/s of a size^3 matrix product: fp32 through MKL and oneDNN, and each lower precision
    given (only those that train here: an emulated bf16 product can take a minute)."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    flops = 2 * size**3
    runs: dict[str, Callable[[], object]] = {"fp32 mm": lambda: torch.mm(a, b)}
    for name in lower:
        runs[f"{name} mm"] = lambda x=a.to(DTYPES[name]), y=b.to(DTYPES[name]): torch.mm(x, y)
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        from torch.utils import mkldnn

        linear = mkldnn.to_mkldnn(nn.Linear(size, size, bias=False))
        dense = a.to_mkldnn()
        runs["fp32 oneDNN"] = lambda: linear(dense)
    return {name: flops / _best_time(fn, reps) / 1e9 for name, fn in runs.items()}


def _best_time(fn: Callable[[], object], reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
    return min(times)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def train_flops_per_token(hidden: int, embed: int, layers: int, vocab: int) -> float:
    """Forward multiply-adds of the LSTM stack and decoder, x2 for FLOPs, x3 for forward + backward."""
    recurrent = sum(4 * hidden * ((embed if k == 0 else hidden) + hidden) for k in range(layers))
    return 3 * 2 * (recurrent + hidden * vocab)


class BareLoop:
    """Embedding, fused LSTM, linear, cross-entropy, AdamW, clipping: nothing else."""

    def __init__(self, vocab: int, embed: int, hidden: int, layers: int, device: torch.device, precision: str):
        torch.manual_seed(0)
        self.embedding = nn.Embedding(vocab, embed).to(device)
        self.lstm = nn.LSTM(embed, hidden, layers, batch_first=True).to(device)
        self.decoder = nn.Linear(hidden, vocab).to(device)
        self.params = [*self.embedding.parameters(), *self.lstm.parameters(), *self.decoder.parameters()]
        self.optimizer = torch.optim.AdamW(self.params, lr=1e-3)
        self.device, self.precision = device, precision

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        with autocast(self.device, self.precision):
            out, _ = self.lstm(self.embedding(x))
            logits = self.decoder(out)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()


ZIPF_EXPONENT = 1.2  # word-level bench tokens: p(rank r) ~ 1 / r^1.2, a little heavier-tailed than real text


def bench_ids(level: str, vocab: int, count: int) -> np.ndarray:
    """Token ids to train on: uniform at char level; at word level drawn from a Zipf law, most
    frequent id first (as WordVocab orders them), which is what the adaptive softmax's cut-offs
    and cost depend on. Real text, spaces being tokens, is lighter-tailed: Shakespeare's 1,000
    most frequent tokens cover 90% of it, 1,000 ranks of this law 87%."""
    rng = np.random.default_rng(0)
    if level == "char":
        return rng.integers(1, vocab, size=count).astype(np.uint16)
    weights = 1.0 / np.arange(1, vocab + 1) ** ZIPF_EXPONENT
    return rng.choice(vocab, size=count, p=weights / weights.sum()).astype(np_dtype(vocab))


def bench_train(hidden=512, embed=128, layers=2, batch_size=64, seq_len=100, vocab=65, steps=10,
                precisions=("fp32", "bf16", "fp16"), device_name="auto", report=print,
                skipped: Callable[[str, str], None] = lambda precision, why: None, level: str = "char",
                softmaxes: tuple[str, ...] = ("full",)) -> list[dict]:
    """Median seconds per step of the project's training step (with each output layer in
    softmaxes) and of the bare loop (full softmax), interleaved, at each precision that runs on
    the device; skipped(precision, why) for those that do not."""
    device = resolve_device(device_name)
    ids = bench_ids(level, vocab, batch_size * (seq_len + 1) * (steps + 4) * 2)
    vocabulary = CharVocab([chr(32 + i) for i in range(vocab - 1)]) if level == "char" else \
        WordVocab([f"w{i}" for i in range(1, vocab)])
    flops_per_step = train_flops_per_token(hidden, embed, layers, vocab) * batch_size * seq_len
    results = []
    wanted = dict.fromkeys(resolve_training_precision(p, device) if p == "auto" else p for p in precisions)
    for precision in wanted:
        probe = probe_training(device, precision)
        if not probe.works:
            skipped(precision, probe.why)
            continue
        config = TrainConfig(level=level, batch_size=batch_size, seq_len=seq_len, max_steps=10**9,
                             precision=precision, device=device_name, val_fraction=0.02)
        with tempfile.TemporaryDirectory() as out:
            trainers = {softmax: _bench_trainer(softmax, vocabulary, ids, config, Path(out) / softmax,
                                                dict(hidden=hidden, embed=embed, layers=layers))
                        for softmax in softmaxes}
            first = next(iter(trainers.values()))
            window = first.window(0)
            x, y = window[:, :-1], window[:, 1:]
            bare = BareLoop(vocab, embed, hidden, layers, device, first.precision)
            runs = {softmax: trainer.train_step for softmax, trainer in trainers.items()}
            times = _interleaved({**runs, "bare": lambda: bare.step(x, y)}, steps, warmup=2)
        tokens = batch_size * seq_len
        rates = {name: tokens / statistics.median(t) for name, t in times.items()}
        row = {"precision": first.precision, "bare_tokens_per_s": rates.pop("bare"), "softmax": rates,
               "cutoffs": {softmax: trainer.model.config.cutoffs for softmax, trainer in trainers.items()}}
        row["project_tokens_per_s"] = rates[softmaxes[0]]
        row["ratio"] = row["project_tokens_per_s"] / row["bare_tokens_per_s"]
        row["project_gflops"] = flops_per_step / (tokens / row["project_tokens_per_s"]) / 1e9
        results.append(row)
        report(row)
    return results


def _bench_trainer(softmax: str, vocab, ids: np.ndarray, config: TrainConfig, out: Path, model_args: dict) -> Trainer:
    layer = output_layer(softmax, config.level, ids, len(vocab))
    model = new_model(len(vocab), {**model_args, **layer}, seed=0)
    return Trainer(model, vocab, ids, config, out, corpus_info={})


def _interleaved(runs: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of each run per round, one of each per round, so that drift in the machine's speed
    hits all alike."""
    for _ in range(warmup):
        for fn in runs.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            _sync()
            start = time.perf_counter()
            fn()
            _sync()
            times[name].append(time.perf_counter() - start)
    return times


# ---------------------------------------------------------------- generation and the shell


def _median_ms(fn: Callable[[], object], reps: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


@torch.inference_mode()
def bench_generate(loaded, tokens: int = 2000, rounds: int = 5) -> dict:
    """tokens/s of generate() at batch 1 at each weight precision and of a bare loop, interleaved
    in rounds (median); the time to read the weights once; one step on each path. Kinds without
    a packed form (all but lstm) get the generate rate and the plain step only."""
    from lstm_repl.model.precision import resolve_generation_precision

    model = loaded.model.eval()
    packable = model.packed() is not None
    default = resolve_generation_precision("auto", model.device) if packable else "fp32"
    precisions = list(dict.fromkeys((default, "fp32")))
    per_round = max(tokens // rounds, 10)
    runs = {f"generate {p}": _generate_run(loaded, p, per_round) for p in precisions}
    if model.config.cell == "lstm":
        runs["bare loop fp32"] = lambda: bare_generate(model, per_round)
    token, state = torch.tensor([1]), model.zero_state(1)
    with torch.enable_grad():  # autograd on: the plain, unpacked equations of the cell's module
        plain_ms = _median_ms(lambda: model.step(token, state), 100)
    packed_precisions = precisions if packable else []
    return {
        "precision": default,
        "tokens_per_s": {name: per_round / statistics.median(t) for name, t in _interleaved(runs, rounds).items()},
        "weights_read_ms": {p: weights_read_ms(model, p) for p in packed_precisions},
        "step_ms": {
            p: _median_ms(lambda p=p: model.packed(p).step(token, list(state)), 300) for p in packed_precisions
        },
        "plain_step_ms": plain_ms,
        **_fused_step_ms(model, token, state),
    }


def _generate_run(loaded, precision: str, length: int) -> Callable[[], object]:
    from lstm_repl.config import SampleConfig
    from lstm_repl.session.sampling import generate_text

    config = SampleConfig(temperature=0.8, length=length, seed=0, precision=precision)
    return lambda: sum(1 for _ in generate_text(loaded.model, loaded.vocab, "The ", config))


def _fused_step_ms(model, token: torch.Tensor, state) -> dict[str, float]:
    """One token through the fused module, with oneDNN on and off."""
    with_onednn = _median_ms(lambda: model(token[None], state), 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # switching oneDNN warns about TF32 on Intel GPUs
        with torch.backends.mkldnn.flags(enabled=False):
            without = _median_ms(lambda: model(token[None], state), 300)
    return {"fused_step_ms": with_onednn, "fused_no_onednn_ms": without}


def bare_generate(model, tokens: int) -> None:
    """The obvious loop over the same weights: embedding, two addmm and the equations per layer,
    the decoder, softmax and torch.multinomial. The reference the project's loop is held to."""
    rnn, H = model.rnn, model.config.hidden
    weights = [[getattr(rnn, name) for name in layer_weight_names(k)] for k in range(rnn.num_layers)]
    h = [torch.zeros(1, H) for _ in weights]
    c = [torch.zeros(1, H) for _ in weights]
    token, generator = torch.tensor([1]), torch.Generator().manual_seed(0)
    for _ in range(tokens):
        x = model.embedding(token)
        for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
            i, f, g, o = (torch.addmm(b_ih, x, w_ih.t()) + torch.addmm(b_hh, h[k], w_hh.t())).chunk(4, 1)
            c[k] = f.sigmoid() * c[k] + i.sigmoid() * g.tanh()
            h[k] = x = o.sigmoid() * c[k].tanh()
        probs = (model.decoder(x)[0] / 0.8).softmax(-1)
        token = torch.multinomial(probs, 1, generator=generator)


def weights_read_ms(model, precision: str, times: int = 300) -> float:
    """ms for the matmuls of one packed step alone: the floor a batch-1 step cannot go below."""
    pack, per_rep = model.packed(precision), times // 5
    return _best_time(lambda: pack.read_weights(per_rep), 5) / per_rep * 1e3


def bench_repl(loaded, width: int = 120, height: int = 36, keystrokes: int = 400, stream_tokens: int = 2000) -> dict:
    """Per keystroke: model step, gates, predictions, ghost text and the panel rendered to
    escape-coded lines; then streaming with the panel drawn at most 30 times a second."""
    from lstm_repl.session.ghost import ghost_pieces
    from lstm_repl.shell.headless import PanelSettings, render_panel, truecolor_lines
    from lstm_repl.session.session import Session

    session = Session(loaded)
    settings, terminal_lines = PanelSettings(), truecolor_lines()
    text = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 20

    def frame() -> None:
        terminal_lines.lines(render_panel(session.snapshot, settings, width, height), width)

    times = []
    typed = ""
    for index, char in enumerate(text[:keystrokes]):
        typed = typed[:-1] if index % 17 == 16 else typed + char  # now and then a backspace
        start = time.perf_counter()
        session.set_text(typed)
        ghost_pieces(session)
        frame()
        times.append(time.perf_counter() - start)
    times.sort()
    session.reset()
    session.set_text("ROMEO:\n")
    frames, produced, last_frame = 0, 0, 0.0
    start = time.perf_counter()
    for _ in session.stream(stream_tokens):
        produced += 1
        now = time.perf_counter()
        if now - last_frame >= 1 / 30:
            frame()
            frames += 1
            last_frame = now
    elapsed = time.perf_counter() - start
    return {
        "keystroke_p50_ms": times[len(times) // 2] * 1e3,
        "keystroke_p99_ms": times[int(len(times) * 0.99)] * 1e3,
        "stream_tokens_per_s": produced / elapsed,
        "frames_per_s": frames / elapsed,
        "width": width,
        "height": height,
    }
