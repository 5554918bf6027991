"""Checkpoints: a folder of JSON (config, vocabulary, metrics) and safetensors (weights).

Nothing here unpickles: loading a checkpoint never executes code. Writes go to a temporary
sibling folder that is renamed into place, so a crash leaves the previous checkpoint whole.
See docs/checkpoint-format.md.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors, save_file

from lstm_repl import __version__
from lstm_repl.atomic import aside_path, atomic_folder, remove_stale
from lstm_repl.bundled import bundled_dir
from lstm_repl.config import ModelConfig, TrainConfig, from_dict, to_dict
from lstm_repl.errors import CheckpointError, ConfigError
from lstm_repl.model import LanguageModel
from lstm_repl.safe_read import MB, parse_json, read_bytes, read_json, typed_object
from lstm_repl.data.bpe import bpe_from_json
from lstm_repl.data.vocab import Vocab, vocab_from_json

FORMAT_NAME = "lstm-repl-checkpoint"
FORMAT_VERSION = 2  # the highest this reads; written: 1 unless the model needs 2 (written_version)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
RESUME_TENSORS_FILE = "resume.safetensors"
RESUME_JSON_FILE = "resume.json"
TOKENIZER_FILE = "tokenizer.json"  # a BPE model's tokenizer, in tokenizers' own JSON format
BUNDLED_DIR = bundled_dir("checkpoints")
CONFIG_LIMIT = 64 * MB  # config.json holds the vocabulary: a million words take about 20 MB
TOKENIZER_LIMIT = 64 * MB  # tokenizer.json: a million BPE tokens and their merges take about 40 MB
RESUME_JSON_LIMIT = CONFIG_LIMIT  # resume.json: a few kB, or as much as config.json once it lists corpus paths

_NUMBER_OR_NULL = (float, type(None))
_FILE_DIGEST = {"sha256": str, "bytes": int}
# What readers take from config.json besides the model and the vocabulary (info, model cards,
# --follow, --resume): checked once here, so none of them meets a string where it wants a number.
INFO_FIELDS = {
    "lstm_repl_version": str, "train_time_s": float, "device": str, "device_name": str, "precision": str,
    "corpus": {"files": [str], "sha256": str, "characters": int, "tokens": int},
    "metrics": {"step": int, "tokens_seen": int, "best_val_loss": _NUMBER_OR_NULL, "best_val_bpc": _NUMBER_OR_NULL,
                "best_val_ppl": _NUMBER_OR_NULL},
    "parameters": {"embedding": int, "rnn": int, "decoder": int, "total": int},
    "files": {WEIGHTS_FILE: _FILE_DIGEST, RESUME_TENSORS_FILE: _FILE_DIGEST, TOKENIZER_FILE: _FILE_DIGEST},
}


@dataclass
class Checkpoint:
    model: LanguageModel
    vocab: Vocab
    train_config: TrainConfig
    info: dict  # the whole config.json: corpus, metrics, training time, device, precision
    path: Path
    resume: dict | None = field(default=None)  # resume.json plus its tensors, when loaded for resuming

    @property
    def name(self) -> str:
        return self.path.name if self.path.name not in ("best", "last") else f"{self.path.parent.name}/{self.path.name}"


# ---------------------------------------------------------------- finding a checkpoint


def bundled_names() -> list[str]:
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / CONFIG_FILE).is_file())


def resolve(spec: str | Path, for_resume: bool = False) -> Path:
    """A checkpoint folder, a training output folder (best/ or last/ inside), or a bundled name."""
    try:
        return _resolve(Path(spec), for_resume)
    except OSError as exc:  # a name too long for the filesystem, a loop of symbolic links
        shown = str(spec) if len(str(spec)) <= 60 else f"{str(spec)[:40]}... ({len(str(spec)):,} characters)"
        raise CheckpointError(f"{shown}: not a checkpoint folder ({exc.strerror})") from None


def _resolve(path: Path, for_resume: bool) -> Path:
    spec = path
    candidates = ["last", "best"] if for_resume else ["best", "last"]
    for folder in [path, *(path / c for c in candidates)]:
        found = _recover(folder)
        if found is not None:
            return found
    if not path.exists() and len(path.parts) == 1 and (BUNDLED_DIR / path.name / CONFIG_FILE).is_file():
        return BUNDLED_DIR / path.name
    if path.exists():
        raise CheckpointError(f"{path}: not a checkpoint (no {CONFIG_FILE}); "
                              "point at a folder written by lstm-repl train")
    names = ", ".join(bundled_names()) or "none installed"
    raise CheckpointError(f"{spec}: no such checkpoint folder or bundled model (bundled: {names})")


def _recover(folder: Path) -> Path | None:
    """The folder if it is a checkpoint; else the copy a swap interrupted between its renames."""
    if (folder / CONFIG_FILE).is_file():
        return folder
    old = aside_path(folder)
    if (old / CONFIG_FILE).is_file():
        return old
    return None


# ---------------------------------------------------------------- saving


def save(
    path: str | Path,
    model: LanguageModel,
    vocab: Vocab,
    train_config: TrainConfig,
    info: dict[str, Any] | None = None,
    resume: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically. `resume` holds {"json": {...}, "tensors": {...}}."""
    path = Path(path)
    weights, config = _contents(model, vocab, train_config, info)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writing = atomic_folder(path)
    except OSError as exc:
        raise CheckpointError(f"cannot write a checkpoint in {path.parent} ({exc.strerror}); "
                              "free some space or choose a writable --out") from None
    try:
        with writing as tmp:
            _write_files(tmp, weights, config, resume, getattr(vocab, "tokenizer_json", None))
    except (OSError, SafetensorError) as exc:  # safetensors reports a full disk as its own error
        reason = exc.strerror if isinstance(exc, OSError) else str(exc).rpartition(": ")[2]
        raise CheckpointError(
            f"could not write checkpoint {path} ({reason}); free some space or pick another --out "
            "(the previous checkpoint there is untouched)"
        ) from None
    return path


def write_into(folder: Path, model: LanguageModel, vocab: Vocab, train_config: TrainConfig,
               info: dict[str, Any] | None = None) -> None:
    """A checkpoint's files written into `folder`, which the caller swaps into place (an export's
    temporary folder); OSError as the disk reports it."""
    weights, config = _contents(model, vocab, train_config, info)
    try:
        _write_files(folder, weights, config, None, getattr(vocab, "tokenizer_json", None))
    except SafetensorError as exc:
        raise OSError(28, str(exc).rpartition(": ")[2]) from None


def _contents(model: LanguageModel, vocab: Vocab, train_config: TrainConfig, info: dict | None) -> tuple[dict, dict]:
    weights = {name: t.detach().to("cpu", torch.float32).contiguous().clone() for name, t in model.state_dict().items()}
    config = {
        "format": FORMAT_NAME,
        "format_version": written_version(model.config),
        "lstm_repl_version": __version__,
        "model": to_dict(model.config),
        "vocab": vocab.to_json(),
        "training": to_dict(train_config),
        **(info or {}),
    }
    return weights, config


def _write_files(folder: Path, weights: dict, config: dict, resume: dict | None,
                 tokenizer: Callable[[], str] | None = None) -> None:
    save_file(weights, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT_NAME})
    _fsync(folder / WEIGHTS_FILE)
    config["files"] = {WEIGHTS_FILE: _file_digest(folder / WEIGHTS_FILE)}
    if tokenizer is not None:
        with open(folder / TOKENIZER_FILE, "w", encoding="utf-8") as f:
            f.write(tokenizer())
            f.flush()
            os.fsync(f.fileno())
        config["files"][TOKENIZER_FILE] = _file_digest(folder / TOKENIZER_FILE)
    if resume is not None:
        save_file(resume["tensors"], str(folder / RESUME_TENSORS_FILE))
        _fsync(folder / RESUME_TENSORS_FILE)
        _write_json(folder / RESUME_JSON_FILE, resume["json"])
        config["files"][RESUME_TENSORS_FILE] = _file_digest(folder / RESUME_TENSORS_FILE)
    _write_json(folder / CONFIG_FILE, config)


def written_version(model_config: ModelConfig) -> int:
    """1, which every reader takes, unless the model holds a piece a version-1 reader would
    misread: the adaptive softmax (2). A 1-only reader builds a full softmax from its config (it
    ignores keys it does not know), so it would fail on the weights' names with a misleading
    "broken checkpoint"; version 2 makes it say "upgrade lstm-repl" instead."""
    return 2 if model_config.softmax == "adaptive" else 1


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())


def _file_digest(path: Path) -> dict:
    with open(path, "rb") as f:
        return _digest(f)


def _digest_of(contents: bytes) -> dict:
    return {"sha256": hashlib.sha256(contents).hexdigest(), "bytes": len(contents)}


def _digest(handle: BinaryIO) -> dict:
    """sha256 and size of an open file, read from where it stands to its end."""
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return {"sha256": digest.hexdigest(), "bytes": os.fstat(handle.fileno()).st_size}


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


RUN_CHECKPOINTS = ("best", "last")


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove what killed saves left in a run folder (see atomic.remove_stale): a `.best.old`
    copy stays until `best/` is whole again. -> what was removed."""
    return [stale for name in RUN_CHECKPOINTS
            for stale in remove_stale(folder / name, whole=lambda path: (path / CONFIG_FILE).is_file())]


# ---------------------------------------------------------------- loading


SWAPS_WAITED = 3  # a run saves best/ at most every few steps: a reader meets a swap once, rarely twice


def load(spec: str | Path, device: str | torch.device = "cpu", for_resume: bool = False) -> Checkpoint:
    """Load a checkpoint onto `device` (CPU by default, whatever trained it). Never unpickles.
    Readers take no lock: a training run may swap the folder in while it is read, and then config
    and weights would come from different saves, so a failed read of a folder that changed under
    it is read again."""
    for _ in range(SWAPS_WAITED):
        path = resolve(spec, for_resume)
        before = _identity(path)
        try:
            return _load_folder(path, device, for_resume)
        except CheckpointError:
            if _identity(path) == before:
                raise
    return _load_folder(resolve(spec, for_resume), device, for_resume)


def _identity(folder: Path) -> tuple[int, int] | None:
    """Which folder stands at the path now (a swap puts another there), or None while none does."""
    try:
        status = os.stat(folder)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _load_folder(path: Path, device: str | torch.device, for_resume: bool) -> Checkpoint:
    config = _read_config(path)
    try:
        model_config = from_dict(ModelConfig, config["model"])
        train_config = from_dict(TrainConfig, config.get("training", {}))
    except (TypeError, KeyError, ConfigError) as exc:
        raise CheckpointError(f"{path}: the model config is malformed ({exc}); the checkpoint is broken") from None
    try:
        bpe = config["vocab"].get("level") == "bpe"
        vocab = _read_tokenizer(path, config) if bpe else vocab_from_json(config["vocab"])
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if len(vocab) != model_config.vocab_size:
        raise CheckpointError(f"{path}: vocabulary has {len(vocab)} tokens "
                              f"but the model expects {model_config.vocab_size}")
    expected = _build_model(path, model_config, torch.device("meta")).state_dict()
    limits = TensorLimits.of(expected, model_config, train_config)
    tensors = _read_tensors(path, WEIGHTS_FILE, config, limits.weights)
    _check_names_and_shapes(path, expected, tensors)
    model = _build_model(path, model_config, torch.device("cpu"))
    _load_weights(model, tensors, path)
    model.to(device).eval()
    model.flatten()
    resume = _read_resume(path, config, limits.resume) if for_resume else None
    return Checkpoint(model=model, vocab=vocab, train_config=train_config, info=config, path=path, resume=resume)


def _read_config(path: Path) -> dict:
    config = read_json(path / CONFIG_FILE, CONFIG_LIMIT, CheckpointError, "checkpoint config")
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not an lstm-repl checkpoint (config.json has no format {FORMAT_NAME!r})")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: config.json has no valid format_version; the checkpoint is broken")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written in checkpoint format {version}, "
            f"this lstm-repl reads up to {FORMAT_VERSION}; upgrade lstm-repl"
        )
    if not isinstance(config.get("model"), dict) or not isinstance(config.get("vocab"), dict):
        raise CheckpointError(f"{path}: config.json lacks the model or vocab section; the checkpoint is broken")
    for section in ("training", "files"):
        if not isinstance(config.get(section, {}), dict):
            raise CheckpointError(f"{path}: config.json has a malformed {section} section; the checkpoint is broken")
    try:
        typed_object(config, INFO_FIELDS, f"{path / CONFIG_FILE}", CheckpointError)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; the checkpoint is broken") from None
    return config


def _read_tokenizer(path: Path, config: dict) -> Vocab:
    """A BPE model's tokenizer.json: a regular file of at most TOKENIZER_LIMIT bytes whose sha256 is
    the one recorded, parsed with bounded nesting and checked token by token (bpe_from_json)."""
    file = path / TOKENIZER_FILE
    if not os.path.lexists(file):
        raise CheckpointError(f"{TOKENIZER_FILE} is missing; the checkpoint is incomplete")
    contents = read_bytes(file, TOKENIZER_LIMIT, CheckpointError, "tokenizer file")
    if _digest_of(contents) != config.get("files", {}).get(TOKENIZER_FILE):
        raise CheckpointError(f"{TOKENIZER_FILE}: contents do not match the sha256 in config.json (truncated, "
                              "corrupted or replaced); retrain or restore it")
    vocab = bpe_from_json(parse_json(contents, CheckpointError, TOKENIZER_FILE))
    if config["vocab"].get("tokens") != len(vocab):
        raise CheckpointError(f"{TOKENIZER_FILE} holds {len(vocab)} tokens, config.json says "
                              f"{str(config['vocab'].get('tokens'))[:20]}; the checkpoint is broken")
    return vocab


HEADER_ROOM = 1 << 20  # bytes of a safetensors header: ~100 a tensor, for names, dtypes, shapes, offsets
MAX_PROCESSES = 1024  # torchrun processes whose streams' state resume.safetensors may carry


@dataclass
class TensorLimits:
    """The most bytes a checkpoint's tensor files can hold for its config: a larger file is not
    read, nor hashed."""

    weights: int  # model.safetensors: every weight in float32
    resume: int  # resume.safetensors: Adam's two moments of each, and the carried state

    @classmethod
    def of(cls, expected: dict[str, torch.Tensor], model: ModelConfig, training: TrainConfig) -> TensorLimits:
        weights = sum(t.numel() for t in expected.values()) * 4
        carried = 2 * model.layers * model.hidden * 4 * training.batch_size * MAX_PROCESSES  # (h, c) per stream
        return cls(weights + HEADER_ROOM, 2 * weights + carried + HEADER_ROOM)


def _read_tensors(path: Path, name: str, config: dict, limit: int) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, once it is known to be a regular file of at most `limit`
    bytes (a FIFO or /dev/zero would block or fill memory) whose sha256 is the one recorded."""
    file = path / name
    if not os.path.lexists(file):
        raise CheckpointError(f"{file}: missing; the checkpoint is incomplete")
    expected = config.get("files", {}).get(name)
    contents = read_bytes(file, limit, CheckpointError, "safetensors file of this model")  # hashed and loaded
    if expected is not None and _digest_of(contents) != expected:
        raise CheckpointError(f"{file}: contents do not match the sha256 in config.json (truncated or corrupted); "
                              "retrain or restore it")
    try:
        return load_tensors(contents)
    except (OSError, SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{file}: not a readable safetensors file ({exc}); the checkpoint is broken") from None


def _build_model(path: Path, model_config: ModelConfig, device: torch.device) -> LanguageModel:
    """On the meta device first: a hand-edited config with a huge size allocates nothing before
    its shapes are checked against the weights (which take no more memory than their file)."""
    try:
        with device:
            return LanguageModel(model_config, initialise=False)
    except (TypeError, ValueError, RuntimeError) as exc:  # e.g. a hidden size that is not an integer
        first_line = str(exc).partition("\n")[0]  # torch appends its C++ stack to some messages
        raise CheckpointError(f"{path}: the model config does not describe a buildable model ({first_line}); "
                              "the checkpoint is broken") from None


def _check_names_and_shapes(path: Path, expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor]) -> None:
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match the config "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{path}: weight {name} has shape {tuple(tensor.shape)}, config says {tuple(expected[name].shape)}"
            )


def _load_weights(model: LanguageModel, tensors: dict[str, torch.Tensor], path: Path) -> None:
    for name, tensor in tensors.items():
        if not tensor.is_floating_point() or not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: weight {name} holds non-finite or non-float values; "
                                  "the checkpoint is broken")
    model.load_state_dict(tensors)


def _read_resume(path: Path, config: dict, limit: int) -> dict:
    if not os.path.lexists(path / RESUME_JSON_FILE):
        raise CheckpointError(f"{path}: holds no training state to resume from; "
                              "resume from the run's folder (its last/)")
    try:
        state = read_json(path / RESUME_JSON_FILE, RESUME_JSON_LIMIT, CheckpointError, "resume state")
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; the run's training state is broken: resume from another checkpoint "
                              "of the run, or start a new run") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path / RESUME_JSON_FILE}: not a JSON object; the checkpoint is broken")
    state["tensors"] = _read_tensors(path, RESUME_TENSORS_FILE, config, limit)
    return state
