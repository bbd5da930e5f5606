"""Argument checks shared by the public API: fail early, name the parameter, change nothing."""

from __future__ import annotations

import math

import torch
from torch import nn


def positive_int(name: str, value, *, allow_none: bool = False) -> None:
    """``value`` must be a positive int (or None when ``allow_none``)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def positive_float(name: str, value) -> float:
    """``value`` must be a finite number > 0; returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def optimizer_holds(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """The optimizer must hold every trainable parameter of the model."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    missing = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in held]
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise ValueError(f"optimizer does not hold {len(missing)} of the model's trainable "
                         f"parameters ({shown}); build it from model.parameters()")
