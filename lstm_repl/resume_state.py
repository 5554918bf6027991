"""A run's training state beside its weights, for --resume: position, optimizer, random state,
the carried recurrent state and the loss scale. checkpoint.py writes and reads the files
(resume.json, resume.safetensors); this module turns the state into them and back."""

from __future__ import annotations

import math
from dataclasses import asdict

import torch

from lstm_repl.errors import CheckpointError
from lstm_repl.model import State
from lstm_repl.schedule import Position


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
            device: torch.device) -> tuple[Position, State | None]:
    """Load the optimizer, random and loss-scale state; -> the position and the carried state."""
    try:
        saved = resume["position"]
        best = saved["best_val_loss"]
        position = Position(**{**saved, "best_val_loss": best if best is not None else math.inf})
        tensors = resume["tensors"]
        state: dict = {}
        for name, value in tensors.items():
            if name.startswith("optimizer."):
                _, index, key = name.split(".", 2)
                state.setdefault(int(index), {})[key] = value
        optimizer.load_state_dict({"state": state, "param_groups": resume["optimizer_param_groups"]})
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], device)
        carry = [tensors[f"carry.{k}"] for k in range(len(tensors)) if f"carry.{k}" in tensors]
        dtype = getattr(torch, resume.get("carry_dtype") or "float32")
        if resume.get("loss_scale") and scaler.is_enabled():
            scaler.load_state_dict(resume["loss_scale"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"the training state in the checkpoint is broken ({exc}); start a new run") from None
    return position, tuple(c.to(device, dtype) for c in carry) if carry else None
