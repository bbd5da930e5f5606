"""Argument checks shared by the public API: fail early, name the parameter, change nothing."""

from __future__ import annotations

import math
import os

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


def an_int(name: str, value) -> int:
    """``value`` must be an int (not a bool), such as a seed; returns it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    return value


def finite_float(name: str, value) -> float:
    """``value`` must be a finite number; returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def dict_or_none(name: str, value) -> dict:
    """``value`` must be a dict (of keyword arguments, say) or None; returns a copy ({})."""
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict or None, got {type(value).__name__} ({value!r})")
    return dict(value or {})


def positive_float(name: str, value) -> float:
    """``value`` must be a finite number > 0; returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def number_in(name: str, value, low: float, high: float, *, include_low: bool = True,
              include_high: bool = True) -> float:
    """``value`` must be a finite number in the interval from ``low`` to ``high``; as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    above = value >= low if include_low else value > low
    below = value <= high if include_high else value < high
    if not (math.isfinite(value) and above and below):
        interval = f"{'[' if include_low else '('}{low:g}, {high:g}{']' if include_high else ')'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


def instance_of(name: str, value, kind: type, made_by: str):
    """``value`` must be a ``kind`` (``made_by`` says where one comes from); returns it."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__} ({made_by}), got "
                        f"{type(value).__name__}")
    return value


def flag(name: str, value) -> bool:
    """``value`` must be True or False (not a truthy string such as ``"no"``)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def path_or_none(name: str, value):
    """``value`` must be None, a str or an ``os.PathLike`` (a folder or file name)."""
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or pathlib.Path) or None, got "
                        f"{type(value).__name__} ({value!r})")
    return value


def momentum_pair(name: str, value, *, ordered: bool = True) -> tuple[float, float]:
    """``(max, min)`` momentums with ``0 <= min <= max < 1``, as floats (``ordered=False``: two
    momentums in ``[0, 1)`` in either order)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        kind = "(max, min) pair" if ordered else "pair"
        raise TypeError(f"{name} must be a {kind} such as (0.95, 0.85), or None, got {value!r}")
    high, low = (number_in(name, v, 0, 1, include_high=False) for v in value)
    if ordered and low > high:
        raise ValueError(f"{name} must be (max, min) with min <= max, got {value!r}")
    return high, low


def to_json_numbers(values) -> list:
    """A list of numbers for strict JSON: NaN and infinities become None."""
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in values]


def from_json_numbers(values) -> list:
    """The inverse of :func:`to_json_numbers` for losses: None becomes NaN."""
    return [math.nan if v is None else v for v in values]


def dict_fields(what: str, data, fields, version: int) -> dict:
    """``data`` as written by ``what.to_dict()``: exactly ``fields`` (plus ``version``), or a
    clear error naming the missing, unknown or mismatched keys."""
    if not isinstance(data, dict):
        raise TypeError(f"{what}.from_dict needs a dict, got {type(data).__name__}")
    data = dict(data)
    found = data.pop("version", version)
    if found != version:
        raise ValueError(f"{what}.from_dict reads version {version}, got version {found!r}")
    missing, unknown = sorted(set(fields) - set(data)), sorted(set(data) - set(fields))
    if missing or unknown:
        raise ValueError(f"{what}.from_dict: missing keys {missing}, unknown keys {unknown}")
    return data


def same_lengths(what: str, data: dict, names) -> None:
    """The lists ``data[name]`` for ``names`` must all have one length."""
    lengths = {name: len(data[name]) for name in names}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{what}.from_dict: lists of different lengths {lengths}")


def existing_device(device) -> torch.device:
    """``device`` as a ``torch.device`` that exists on this machine, or a ``ValueError``."""
    try:
        found = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N', 'mps' or None (the best "
                         f"available), got {device!r}") from None
    available = {"cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None
                 and torch.backends.mps.is_available()}
    if not available.get(found.type, True):
        raise ValueError(f"device={device!r}, but this machine has no {found.type.upper()} "
                         f"device; use device='cpu' or None (the best available)")
    return found


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
