"""The adapted linear layer: W0 x plus the active request's weighted LoRA mixture, or a reversible fused merge."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator

import torch
from torch import nn

# module name -> (a_t (B, d_in, R), b_t (B, R, d_out)); see AdapterPool.mixture_factors
Factors = dict[str, tuple[torch.Tensor, torch.Tensor]]


class MixtureLinear(nn.Module):
    """Wraps one nn.Linear of the base model.

    The mixture to apply is read from a context variable owned by the engine, so two threads
    serving two requests each see only their own mixture; with none set, this is the base layer.
    `merge`/`unmerge` fold a delta into the weight for the fused mode: an explicit, reversible
    state (`merged`) that restores the original weight tensor bit for bit.
    """

    def __init__(self, base: nn.Linear, name: str, active: contextvars.ContextVar):
        super().__init__()
        self.base = base
        self.name = name
        self._active = active
        self._original: torch.Tensor | None = None

    @property
    def merged(self) -> bool:
        return self._original is not None

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        mixture = self._active.get()
        if mixture is None or self.name not in mixture:
            return y
        a_t, b_t = mixture[self.name]
        # x: (B, T, d_in) @ (B, d_in, R) -> (B, T, R) @ (B, R, d_out) -> (B, T, d_out); B may broadcast from 1
        return y + (x.to(a_t.dtype) @ a_t @ b_t).to(y.dtype)

    def merge(self, delta: torch.Tensor) -> None:
        if self.merged:
            raise RuntimeError(f"{self.name} is already merged; unmerge first")
        self._original = self.base.weight.data
        self.base.weight.data = self._original + delta.to(self._original.dtype)

    def unmerge(self) -> None:
        if self._original is not None:
            self.base.weight.data = self._original
            self._original = None


def wrap_modules(model: nn.Module, names: list[str], active: contextvars.ContextVar) -> dict[str, MixtureLinear]:
    """Replace each named nn.Linear of `model` with a MixtureLinear reading `active`.

    A layer wrapped before (by an earlier engine on the same model) is rebound to `active`: the newest
    engine owns the model, so its mixtures are the ones applied.
    """
    wrapped = {}
    for name in names:
        current = model.get_submodule(name)
        if isinstance(current, MixtureLinear):
            current._active = active
            wrapped[name] = current
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = MixtureLinear(current, name, active)
        setattr(parent, child, layer)
        wrapped[name] = layer
    return wrapped


@contextlib.contextmanager
def fused(layers: dict[str, MixtureLinear], factors: Factors) -> Iterator[None]:
    """Merge one row's weighted deltas into the base weights, and restore them however the block exits."""
    try:
        for name, (a_t, b_t) in factors.items():
            if a_t.shape[0] != 1:
                raise ValueError(f"fused mode merges one selection at a time, got {a_t.shape[0]}")
            # delta (d_out, d_in) = (a_t[0] @ b_t[0]).T = sum_i w_i s_i B_i A_i
            layers[name].merge((a_t[0] @ b_t[0]).T)
        yield
    finally:
        for layer in layers.values():
            layer.unmerge()


class ReadWriteLock:
    """Many readers (probes, mixture requests) or one writer (a fused request that changes base weights)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0  # readers yield to a waiting writer, so fused requests are not starved

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            self._cond.wait_for(lambda: not self._writer and self._readers == 0)
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
