"""A run's training state beside its weights, for --resume: position, optimizer, random state,
the carried recurrent state and the loss scale. checkpoint.py writes and reads the files
(resume.json, resume.safetensors); this module turns the state into them and back."""

from __future__ import annotations

import math
from dataclasses import asdict, fields

import torch

from lstm_repl.errors import CheckpointError
from lstm_repl.model import State
from lstm_repl.training.schedule import Position


def capture(position: Position, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
            carry: State | None, device: torch.device) -> dict:
    """{"json": ..., "tensors": ...} as checkpoint.save takes it."""
    opt = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    for index, param_state in opt["state"].items():
        for key, value in param_state.items():
            tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous().clone().reshape(value.shape)
    for k, s in enumerate(carry or ()):
        tensors[f"carry.{k}"] = s.detach().float().cpu().contiguous()
    groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]} for g in opt["param_groups"]]
    best = position.best_val_loss
    return {
        "json": {
            "position": {**asdict(position), "best_val_loss": best if math.isfinite(best) else None},
            "optimizer_param_groups": groups,
            "carry_dtype": str(carry[0].dtype).removeprefix("torch.") if carry else None,
            "loss_scale": scaler.state_dict() if scaler.is_enabled() else None,
        },
        "tensors": tensors,
    }


def restore(resume: dict, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
            device: torch.device, expected_carry: State) -> tuple[Position, State | None]:
    """Check every field and tensor of a saved training state against this run (types, ranges,
    shapes: anyone can edit the files and recompute their sha256), then load the optimizer,
    random and loss-scale state; -> the position and the carried state."""
    position = _position(resume.get("position"))
    tensors = resume.get("tensors", {})
    optimizer_state = _optimizer_state(tensors, optimizer)
    groups = _param_groups(resume.get("optimizer_param_groups"), optimizer)
    carry = _carry(tensors, expected_carry)
    dtype = _choice("carry_dtype", resume.get("carry_dtype") or "float32", CARRY_DTYPES)
    _rng(tensors)
    loss_scale = _loss_scale(resume.get("loss_scale"), scaler)
    unknown = sorted(set(tensors) - set(optimizer_state["names"]) - {"rng.torch", "rng.cuda"}
                     - {f"carry.{k}" for k in range(len(carry))})
    if unknown:
        raise _broken(f"resume.safetensors holds unexpected tensors ({', '.join(unknown[:3])})")
    optimizer.load_state_dict({"state": optimizer_state["state"], "param_groups": groups})
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    if loss_scale is not None and scaler.is_enabled():
        scaler.load_state_dict(loss_scale)
    return position, tuple(c.to(device, getattr(torch, dtype)) for c in carry) if carry else None


CARRY_DTYPES = ("float32", "bfloat16", "float16")
_COUNTS = ("step", "epoch", "chunk", "tokens_seen", "skipped_steps")
_NUMBERS = ("elapsed_s", "progress")


def _broken(what: str) -> CheckpointError:
    return CheckpointError(f"the run's training state is broken: {what}; "
                           "resume from another checkpoint of the run, or start a new run")


LARGEST = 2**53  # beyond this a count or a time is a hostile edit (and float arithmetic would overflow)
FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _is_number(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < LARGEST
            and math.isfinite(value))


def _position(saved: object) -> Position:
    if not isinstance(saved, dict):
        raise _broken("resume.json has no position object")
    known = {f.name for f in fields(Position)}
    if unknown := sorted(set(saved) - known):
        raise _broken(f"resume.json position has unknown fields ({', '.join(unknown)})")
    for name in _COUNTS:
        value = saved.get(name, 0)
        if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < LARGEST):
            raise _broken(f"resume.json position.{name} must be a whole number >= 0, not {value!r}")
    for name in _NUMBERS:
        if not (_is_number(saved.get(name, 0.0)) and saved.get(name, 0.0) >= 0):
            raise _broken(f"resume.json position.{name} must be a number >= 0, not {saved.get(name)!r}")
    if saved.get("progress", 0.0) > 1.0:
        raise _broken(f"resume.json position.progress must be between 0 and 1, not {saved['progress']!r}")
    best = saved.get("best_val_loss")
    if best is not None and not (_is_number(best) and best >= 0):
        raise _broken(f"resume.json position.best_val_loss must be null or a number >= 0, not {best!r}")
    anchor = saved.get("anchor")
    if anchor is not None and not (isinstance(anchor, list) and len(anchor) == 2
                                   and all(_is_number(a) and a >= 0 for a in anchor)):
        raise _broken(f"resume.json position.anchor must be null or two numbers >= 0, not {anchor!r}")
    return Position(**{**saved, "best_val_loss": best if best is not None else math.inf})


def _param_groups(saved: object, optimizer: torch.optim.Optimizer) -> list[dict]:
    """This optimizer's groups with the saved hyperparameters (lr, betas, eps, weight decay),
    each checked; settings that belong to the device or the torch version (fused, foreach, ...)
    stay this run's own."""
    current = optimizer.state_dict()["param_groups"]
    if not (isinstance(saved, list) and len(saved) == len(current) and all(isinstance(g, dict) for g in saved)):
        raise _broken(f"resume.json optimizer_param_groups must be a list of {len(current)} objects")
    groups = []
    for index, (group, ours) in enumerate(zip(saved, current)):
        where = f"resume.json optimizer_param_groups[{index}]"
        if group.get("params") != ours["params"]:
            raise _broken(f"{where}.params does not list this model's parameters")
        for key in _HYPERPARAMETERS:
            if key in ours and not _same_kind(group.get(key), ours[key]):
                raise _broken(f"{where}.{key} is {group.get(key)!r}, not a value of its kind (like {ours[key]!r})")
        groups.append({**ours, **{key: group[key] for key in _HYPERPARAMETERS if key in ours}})
    return groups


_HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay")


def _same_kind(value: object, reference: object) -> bool:
    if isinstance(reference, (list, tuple)):  # Adam's betas: each in [0, 1)
        return (isinstance(value, (list, tuple)) and len(value) == len(reference)
                and all(_is_number(v) and 0 <= v < 1 for v in value))
    return _is_number(value) and value >= 0


def _optimizer_state(tensors: dict, optimizer: torch.optim.Optimizer) -> dict:
    """optimizer.{index}.{key} tensors -> the optimizer's state, each shaped like its parameter."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict] = {}
    names = [name for name in tensors if name.startswith("optimizer.")]
    for name in names:
        parts = name.split(".", 2)
        if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdecimal()) or int(parts[1]) >= len(params):
            raise _broken(f"resume.safetensors has a tensor {name} for no parameter of this model")
        index, key, value = int(parts[1]), parts[2], tensors[name]
        expected = () if key == "step" else tuple(params[index].shape)
        if key not in ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            raise _broken(f"resume.safetensors has a tensor {name} the optimizer does not keep")
        if tuple(value.shape) != expected and not (key == "step" and value.numel() == 1):
            raise _broken(f"resume.safetensors {name} has shape {tuple(value.shape)}, the parameter needs {expected}")
        negative = key != "exp_avg" and bool((value < 0).any()) if value.dtype in FLOAT_DTYPES else True
        if value.dtype not in FLOAT_DTYPES or not torch.isfinite(value).all() or negative:
            raise _broken(f"resume.safetensors {name} holds values the optimizer cannot have")
        state.setdefault(index, {})[key] = value.reshape(expected)
    if state and any({"step", "exp_avg", "exp_avg_sq"} - set(kept) for kept in state.values()):
        raise _broken("resume.safetensors lacks part of the optimizer state (step, exp_avg, exp_avg_sq)")
    return {"state": state, "names": names}


def _carry(tensors: dict, expected: State) -> list[torch.Tensor]:
    carry = [tensors[f"carry.{k}"] for k in range(len(expected)) if f"carry.{k}" in tensors]
    if not carry:
        return []
    if len(carry) != len(expected):
        raise _broken(f"resume.safetensors carries {len(carry)} state tensors, this cell has {len(expected)}")
    for k, (value, reference) in enumerate(zip(carry, expected)):
        if value.shape != reference.shape or value.dtype not in FLOAT_DTYPES or not torch.isfinite(value).all():
            raise _broken(f"resume.safetensors carry.{k} has shape {tuple(value.shape)} or values that do not fit "
                          f"this run (expected finite numbers of shape {tuple(reference.shape)})")
    return carry


def _rng(tensors: dict) -> None:
    value = tensors.get("rng.torch")
    expected = torch.get_rng_state()
    if value is None or value.dtype != torch.uint8 or value.shape != expected.shape or not _usable_rng(value):
        raise _broken("resume.safetensors lacks a valid rng.torch (the random generator's state)")
    cuda = tensors.get("rng.cuda")
    if cuda is not None and (cuda.dtype != torch.uint8 or cuda.dim() != 1):
        raise _broken("resume.safetensors rng.cuda is not a random generator's state")


def _usable_rng(value: torch.Tensor) -> bool:
    try:
        torch.Generator().set_state(value.clone())
        return True
    except (RuntimeError, ValueError):
        return False


_LOSS_SCALE = {"scale": float, "growth_factor": float, "backoff_factor": float, "growth_interval": int,
               "_growth_tracker": int}


def _loss_scale(saved: object, scaler: torch.amp.GradScaler) -> dict | None:
    """The fp16 loss scaler's state: exactly its keys, each a number of its kind, all > 0 but the tracker."""
    if saved is None:
        return None
    ok = isinstance(saved, dict) and set(saved) == set(_LOSS_SCALE) and all(
        _is_number(saved[key]) and (kind is float or isinstance(saved[key], int))
        and (saved[key] > 0 or (key == "_growth_tracker" and saved[key] == 0)) for key, kind in _LOSS_SCALE.items())
    if not ok:
        raise _broken(f"resume.json loss_scale must be null or the loss scaler's state "
                      f"({', '.join(_LOSS_SCALE)}), not {saved!r}")
    return saved


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _broken(f"resume.json {name} must be one of {', '.join(allowed)}, not {value!r}")
    return value  # type: ignore[return-value]
