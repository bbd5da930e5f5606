"""Save and restore everything a trial run changes, bitwise.

A :class:`Snapshot` holds the model's parameters, gradients and buffers (BatchNorm statistics
included) and train/eval modes, the optimizer's state and every param group's
hyper-parameters, torch's CPU and CUDA RNG states, a GradScaler's state, and the state of any
``torch.Generator`` given (a loader's shuffling generator, so a re-run sees the same batches). It lives on the CPU
by default, so a GPU model's memory is not doubled, or in a private temporary directory with
``where="disk"``. Restoring copies into the existing tensors, so references the user holds stay
valid.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return copy.deepcopy(value)


def _like(saved, current, default_device: torch.device, key: str):
    """A fresh copy of a saved value, on the device the live value uses (or a sensible default:
    the parameter's device, but the CPU for Adam-like "step" counters, as torch keeps them)."""
    if not isinstance(saved, torch.Tensor):
        return copy.deepcopy(saved)
    if isinstance(current, torch.Tensor):
        device = current.device
    else:
        device = torch.device("cpu") if key == "step" else default_device
    return saved.to(device, copy=True)


class Snapshot:
    """``Snapshot(model, optimizer, scaler=None, where="cpu" | "disk")``; then ``restore()``."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler | None = None, where: str = "cpu",
                 generators: list[torch.Generator] = ()):
        if where not in ("cpu", "disk"):
            raise ValueError(f"where must be 'cpu' or 'disk', got {where!r}")
        self.model, self.optimizer, self.scaler = model, optimizer, scaler
        self.generators = list(generators)
        self._directory: Path | None = None
        state = {
            "tensors": {name: t for name, t in self._tensors().items()},
            "grads": {name: p.grad for name, p in model.named_parameters() if p.grad is not None},
            "modes": [m.training for m in model.modules()],
            "optimizer_state": {id_: s for id_, s in self._optimizer_state().items()},
            "param_groups": [{k: v for k, v in g.items() if k != "params"}
                             for g in optimizer.param_groups],
            "cpu_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "generators": [g.get_state() for g in self.generators],
        }
        state = _to_cpu(state)
        if where == "disk":
            self._directory = Path(tempfile.mkdtemp(prefix="dw-snapshot-"))
            torch.save(state, self._directory / "state.pt")
            self._state = None
        else:
            self._state = state

    def _tensors(self) -> dict[str, torch.Tensor]:
        named = dict(self.model.named_parameters())
        named.update(self.model.named_buffers())
        return named

    def _optimizer_state(self) -> dict[int, dict]:
        """Optimizer state keyed by the position of its parameter across param groups."""
        order = [p for g in self.optimizer.param_groups for p in g["params"]]
        return {i: self.optimizer.state[p] for i, p in enumerate(order) if p in self.optimizer.state}

    def _load(self) -> dict:
        if self._state is not None:
            return self._state
        return torch.load(self._directory / "state.pt", weights_only=False)

    def restore(self) -> None:
        """Put everything back as it was when the snapshot was taken."""
        state = self._load()
        with torch.no_grad():
            for name, tensor in self._tensors().items():
                tensor.copy_(state["tensors"][name])
            for name, param in self.model.named_parameters():
                saved = state["grads"].get(name)
                if saved is None:
                    param.grad = None
                elif param.grad is None or param.grad.shape != saved.shape:
                    param.grad = saved.to(param.device, param.dtype)
                else:
                    param.grad.copy_(saved)
        for module, training in zip(self.model.modules(), state["modes"]):
            module.training = training
        order = [p for g in self.optimizer.param_groups for p in g["params"]]
        current = {p: self.optimizer.state[p] for p in order if p in self.optimizer.state}
        self.optimizer.state.clear()
        for index, saved in state["optimizer_state"].items():
            param = order[index]
            self.optimizer.state[param] = {
                key: _like(value, current.get(param, {}).get(key), param.device, key)
                for key, value in saved.items()}
        for group, saved in zip(self.optimizer.param_groups, state["param_groups"]):
            for key in [k for k in group if k != "params" and k not in saved]:
                del group[key]  # keys a scheduler added, such as "initial_lr"
            for key, value in saved.items():
                group[key] = _like(value, group.get(key), torch.device("cpu"), key)
        torch.set_rng_state(state["cpu_rng"])
        if state["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        for generator, saved in zip(self.generators, state["generators"]):
            generator.set_state(saved)

    def discard(self) -> None:
        """Delete the temporary directory of a disk snapshot (restore() is then impossible)."""
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
