"""An optimizer's learning rate and momentum, read and set the same way for every optimizer.

Momentum is SGD's (or RMSprop's) ``momentum``, or Adam's beta1 (``betas[0]``: for Adam-like
optimizers beta1 plays the role of momentum, Smith 1803.09820 section 4.3). The defaults of
cyclical momentum live here: it falls from 0.95 to 0.85 while the LR rises, and back.
"""

from __future__ import annotations

import torch

CYCLICAL_MOMENTUM = (0.95, 0.85)  # (max, min): at the LR's min and at its max


def momentum_key(group: dict) -> str | None:
    """``"momentum"``, ``"betas"``, or None when the param group has neither."""
    if "momentum" in group:
        return "momentum"
    return "betas" if "betas" in group else None


def has_momentum(optimizer: torch.optim.Optimizer) -> bool:
    return momentum_key(optimizer.param_groups[0]) is not None


def momentum_of(group: dict) -> float | None:
    """A param group's momentum (Adam: beta1); None when it has neither."""
    key = momentum_key(group)
    if key is None:
        return None
    return float(group["momentum"] if key == "momentum" else group["betas"][0])


def set_momentum(group: dict, value: float) -> None:
    """Set a param group's momentum (Adam: beta1, beta2 kept)."""
    key = momentum_key(group)
    if key is None:
        raise ValueError("this optimizer has no momentum or betas")
    group[key] = float(value) if key == "momentum" else (float(value), *group["betas"][1:])


def lr_of(optimizer: torch.optim.Optimizer) -> float:
    """The first param group's LR (the one History records)."""
    return float(optimizer.param_groups[0]["lr"])


def scale_lrs(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Multiply every param group's LR by ``factor`` (their ratios are kept)."""
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * factor
