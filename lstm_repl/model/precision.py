"""Which precisions run here, found by running them once: not by reading CPU flags.

A flag can say bfloat16 while the kernel refuses it: on an AVX2-only CPU, oneDNN has no bf16 LSTM
and autocast ends in "could not create a primitive descriptor". So each precision is probed with
the operation itself (a tiny model's forward and backward under autocast for training; a tiny
packed step for generation), and `auto` takes a lower precision only where it ran and measured
faster than float32. Answers are kept for the process and, per machine, in the cache folder.
"""

from __future__ import annotations

import functools
import os
import platform
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import torch

from lstm_repl.cache import cache_root, read_json, write_json_quietly
from lstm_repl.errors import ConfigError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
TRAINING_CANDIDATES = ("bf16", "fp16")  # what auto tries before falling back to fp32
MIN_SPEEDUP = 1.2  # auto takes a lower precision only when a training step ran this much faster
PROBE_VERSION = 1  # bump when what a probe does changes, so cached answers are not reused


@dataclass(frozen=True)
class Probe:
    works: bool
    why: str = ""  # when it does not: the operation's own complaint, one line
    speedup: float | None = None  # training step time at fp32 / at this precision, where measured


Prober = Callable[[torch.device, str, str], Probe]


def device_description(device: torch.device) -> str:
    """'this CPU (AMD EPYC, AVX2)', 'the GPU (NVIDIA A100)': what an error message names."""
    if device.type == "cuda":
        return f"the GPU ({_gpu_name(device)})"
    if device.type == "mps":
        return "Apple's MPS GPU"
    isa = torch.backends.cpu.get_cpu_capability()
    return f"this CPU ({_cpu_model()}, {isa})"


@functools.cache
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _gpu_name(device: torch.device) -> str:
    try:
        return torch.cuda.get_device_name(device)
    except (RuntimeError, AssertionError, AttributeError):  # no CUDA in this build or on this machine
        return "CUDA"


def machine_key(device: torch.device) -> str:
    """What a probe's answer depends on: torch, the device, and the caps set on the CPU's kernels."""
    name = _gpu_name(device) if device.type == "cuda" else _cpu_model()
    caps = ",".join(os.environ.get(v, "") for v in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"))
    capability = torch.backends.cpu.get_cpu_capability()
    return f"v{PROBE_VERSION}|torch {torch.__version__}|{device.type}|{name}|{capability}|{caps}"


# ---------------------------------------------------------------- the probes


def _tiny_model(cell: str, device: torch.device, hidden: int = 16, vocab: int = 11):
    """Made from random numbers of its own: a probe never moves the caller's random stream."""
    from lstm_repl.config import ModelConfig
    from lstm_repl.model import LanguageModel

    config = ModelConfig(vocab_size=vocab, cell=cell, layers=2, hidden=hidden, embed=hidden // 2)
    return LanguageModel(config).to(device)


def autocast(device: torch.device, precision: str):
    """The context a training or validation step runs in: autocast to bf16 or fp16, or nothing."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


def _training_step(model, tokens: torch.Tensor, device: torch.device, precision: str) -> None:
    with autocast(device, precision):
        logits, _ = model(tokens)
        loss = logits.float().logsumexp(-1).mean()
    loss.backward()
    if not all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters()):
        raise RuntimeError("the gradients came back non-finite")


@contextmanager
def _own_random_stream(device: torch.device) -> Iterator[None]:
    """Seeded here, the caller's generator put back afterwards: training stays reproducible
    whether or not a probe ran first. Autograd on, whatever mode the caller is in."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.enable_grad():
        torch.manual_seed(0)
        yield


def try_training(device: torch.device, precision: str, cell: str) -> Probe:
    """A tiny model of this cell kind, forward and backward under autocast."""
    try:
        with torch.inference_mode(False), _own_random_stream(device):
            model = _tiny_model(cell, device)
            tokens = torch.randint(0, 11, (2, 5), device=device)
            _training_step(model, tokens, device, precision)
            _sync(device)
    except Exception as exc:  # noqa: BLE001 - any failure means "not here"; the message says which
        return Probe(False, _first_line(exc))
    return Probe(True)


def try_generation(device: torch.device, precision: str, cell: str = "lstm") -> Probe:
    """A tiny packed model: one step with every gate, and a few decoded tokens."""
    try:
        with torch.inference_mode(False), _own_random_stream(device):  # the caller may be in inference mode
            model = _tiny_model(cell, device).eval()
        with torch.inference_mode():
            packed = model.packed(precision)
            if packed is None:  # kinds without a packed step generate with their weights as trained
                return Probe(True)
            state = list(model.zero_state(1))
            logits, state, _ = packed.step(torch.tensor([1], device=device), state)
            mask = torch.zeros(logits.shape[-1], device=device)
            chosen, _ = packed.decode(1, state, [0.5, 0.25], mask, 1.0)
            if not torch.isfinite(logits).all() or len(chosen) != 2:
                raise RuntimeError("the packed step gave non-finite logits")
    except Exception as exc:  # noqa: BLE001
        return Probe(False, _first_line(exc))
    return Probe(True)


def measure_speedup(device: torch.device, precision: str, cell: str, reps: int = 3) -> float:
    """fp32 time / this precision's time for a small training step, interleaved, best of reps."""
    with torch.inference_mode(False), _own_random_stream(device):
        model = _tiny_model(cell, device, hidden=256, vocab=65)
        tokens = torch.randint(0, 65, (32, 50), device=device)
        best = {"fp32": float("inf"), precision: float("inf")}
        for rep in range(reps + 1):
            for name in best:
                _sync(device)
                start = time.perf_counter()
                _training_step(model, tokens, device, name)
                _sync(device)
                if rep:  # the first round builds kernels
                    best[name] = min(best[name], time.perf_counter() - start)
                model.zero_grad(set_to_none=True)
    return best["fp32"] / best[precision]


def probe_training(device: torch.device, precision: str, cell: str = "lstm") -> Probe:
    """Does training in this precision run here, and how much faster than fp32 (cached)."""
    if precision == "fp32":
        return Probe(True, speedup=1.0)

    def run() -> Probe:
        probe = try_training(device, precision, cell)
        if not probe.works:
            return probe
        try:
            return Probe(True, speedup=round(measure_speedup(device, precision, cell), 3))
        except Exception as exc:  # noqa: BLE001 - ran tiny, failed bigger: still not usable
            return Probe(False, _first_line(exc))

    return _cached(device, f"train {cell} {precision}", run)


def probe_generation(device: torch.device, precision: str, cell: str = "lstm") -> Probe:
    if precision == "fp32":
        return Probe(True)
    return _cached(device, f"generate {cell} {precision}", lambda: try_generation(device, precision, cell))


# ---------------------------------------------------------------- deciding


Rates = Callable[[tuple[str, ...]], dict[str, float]]  # precisions -> training tokens a second in each


def resolve_training_precision(name: str, device: torch.device, cell: str = "lstm",
                               probe: Prober = probe_training) -> str:
    """decide_training_precision on the probe's stand-in model alone."""
    return decide_training_precision(name, device, cell, None, probe)[0]


def decide_training_precision(name: str, device: torch.device, cell: str, rates_of: Rates | None,
                              probe: Prober = probe_training) -> tuple[str, dict[str, float]]:
    """auto: a lower precision that ran here and measured at least MIN_SPEEDUP times as fast as
    fp32 (bf16 unless fp16 is clearly faster), else fp32. rates_of times the model being trained
    in the precisions that run (step_rate); without it, the probe's stand-in speedups decide. An
    explicit precision that does not run is refused in one line. -> (precision, rates measured)."""
    if name != "auto":
        chosen = _runs_here(name, device, cell, probe, f"train the {cell}")
        return chosen, rates_of((chosen,)) if rates_of else {}
    working = [p for p in TRAINING_CANDIDATES if probe(device, p, cell).works]
    rates = rates_of(("fp32", *working)) if rates_of else {}
    speedups = {p: rates[p] / rates["fp32"] if rates else probe(device, p, cell).speedup or 0.0 for p in working}
    fast = [p for p, x in speedups.items() if x >= MIN_SPEEDUP]
    # bf16 first: it needs no loss scaling, so fp16 must be clearly faster to be chosen
    return next((p for p in fast if speedups[p] >= 0.9 * max(speedups.values())), "fp32"), rates


def resolve_generation_precision(name: str, device: torch.device, cell: str = "lstm",
                                 probe: Prober = probe_generation) -> str:
    """auto: fp16 weights where the packed fp16 step runs on a CPU (half the bytes to read per
    token, arithmetic in fp32, the same bits per character), else fp32."""
    if name == "auto":
        return "fp16" if device.type == "cpu" and probe(device, "fp16", cell).works else "fp32"
    return name if name == "fp32" else _runs_here(name, device, cell, probe, "generate")


def _runs_here(name: str, device: torch.device, cell: str, probe: Prober, doing: str) -> str:
    """`name`, once the probe found that it runs here; else a one-line refusal."""
    result = probe(device, name, cell)
    if not result.works:
        raise ConfigError(f"--precision {name}: {device_description(device)} cannot {doing} in {_long(name)} "
                          f"({result.why}); use --precision fp32 or auto")
    return name


# ---------------------------------------------------------------- the cache


_MEMORY: dict[str, Probe] = {}


def _cached(device: torch.device, what: str, run: Callable[[], Probe]) -> Probe:
    key = f"{machine_key(device)}|{what}"
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_root() / "probes.json"
    stored = read_json(path).get(key)
    probe = _from_json(stored) if isinstance(stored, dict) else None
    if probe is None:
        probe = run()
        write_json_quietly(path, {**read_json(path), key: asdict(probe)})
    _MEMORY[key] = probe
    return probe


def _from_json(data: dict) -> Probe | None:
    try:
        speedup = data.get("speedup")
        return Probe(bool(data["works"]), str(data.get("why", "")), None if speedup is None else float(speedup))
    except (KeyError, TypeError, ValueError):
        return None


def forget_probes() -> None:
    """Drop the answers kept in this process (tests; a changed environment)."""
    _MEMORY.clear()


# ---------------------------------------------------------------- small helpers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line.split(". Run workload with")[0][:200]


def _long(precision: str) -> str:
    return {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[precision]
