"""The adapted model: its wrapped linear layers and the per-model request state (active mixture, readers-writer lock).

Request state belongs to the model, not to an engine: `AdaptedModel.of(model)` creates it once and attaches it
to the model, so every engine built on that model shares the same wrapped layers, the same context variable of
active factors and the same lock; each engine's mixtures then apply as when it is alone.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Iterable, Iterator

import torch
from torch import nn

# module name -> (a_t (B, d_in, R), b_t (B, R, d_out)); see AdapterPool.mixture_factors
Factors = dict[str, tuple[torch.Tensor, torch.Tensor]]

STATE_ATTRIBUTE = "logo_adapted"  # where AdaptedModel.of keeps the state on the model


class MixtureLinear(nn.Module):
    """Wraps one nn.Linear of the base model.

    The mixture to apply is read from the model's context variable, so two threads serving two
    requests each see only their own mixture; with none set, this is the base layer.
    `merge`/`unmerge` fold a delta into the weight for the fused mode: an explicit, reversible
    state (`merged`) that restores the original weight tensor bit for bit.
    """

    def __init__(self, base: nn.Linear, name: str, active: contextvars.ContextVar[Factors | None]):
        super().__init__()
        self.base = base
        self.name = name
        self.active = active
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
        mixture = self.active.get()
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


class ReadWriteLock:
    """Many readers (probes, mixture requests) or one writer (a fused request that changes base weights).

    Readers yield to a waiting writer, so fused requests are not starved, except a thread that already
    reads: its nested reads pass at once (they would otherwise wait for a writer that waits for them).
    Both context managers yield the milliseconds spent waiting. A thread that holds the write lock may
    not read (its probe would see merged weights) nor write again; a reading thread may not write.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer: int | None = None  # thread id of the writer
        self._writers_waiting = 0
        self._held = threading.local()  # .reads: this thread's read depth

    @property
    def writers_waiting(self) -> int:
        """How many fused requests wait for the readers to finish."""
        return self._writers_waiting

    def _reads(self) -> int:
        return getattr(self._held, "reads", 0)

    @contextlib.contextmanager
    def read(self) -> Iterator[float]:
        if self._writer == threading.get_ident():
            raise RuntimeError(
                "this thread holds the model for a fused merge: it cannot also read (a probe would see the merged "
                "weights); route before entering the fused request"
            )
        started = time.perf_counter()
        with self._cond:
            if not self._reads():  # a nested read must not wait for a writer that waits for this thread
                self._cond.wait_for(lambda: self._writer is None and not self._writers_waiting)
            self._readers += 1
        waited_ms = (time.perf_counter() - started) * 1000
        self._held.reads = self._reads() + 1
        try:
            yield waited_ms
        finally:
            self._held.reads -= 1
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[float]:
        if self._reads() or self._writer == threading.get_ident():
            raise RuntimeError(
                "this thread already uses the model (a mixture request or a fused merge): a fused request inside it "
                "would wait for itself; run the fused request after the block ends"
            )
        started = time.perf_counter()
        with self._cond:
            self._writers_waiting += 1
            try:
                self._cond.wait_for(lambda: self._writer is None and self._readers == 0)
            finally:
                self._writers_waiting -= 1
            self._writer = threading.get_ident()
        waited_ms = (time.perf_counter() - started) * 1000
        try:
            yield waited_ms
        finally:
            with self._cond:
                self._writer = None
                self._cond.notify_all()


class AdaptedModel:
    """The request state of one base model, shared by every engine built on it.

    `layers` are the model's wrapped linear layers (the union of what every engine's pool adapts), `active`
    the context variable holding this thread's factors, `lock` the readers-writer lock between mixture
    requests and fused merges. Create it with `AdaptedModel.of(model)`, never directly.
    """

    def __init__(self, model: nn.Module):
        self.active: contextvars.ContextVar[Factors | None] = contextvars.ContextVar(
            f"logo-mixture-{id(model)}", default=None
        )
        self.lock = ReadWriteLock()
        self.layers: dict[str, MixtureLinear] = {}
        self._model = model
        self._wrap_lock = threading.Lock()

    @classmethod
    def of(cls, model: nn.Module) -> AdaptedModel:
        """The model's request state, created and attached on first use (the same object on every later call)."""
        state = model.__dict__.get(STATE_ATTRIBUTE)
        if state is None:
            state = model.__dict__.setdefault(STATE_ATTRIBUTE, cls(model))
        return state

    def wrap(self, names: Iterable[str]) -> None:
        """Wrap each named nn.Linear of the model once; layers wrapped before (by another engine) are kept as is."""
        with self._wrap_lock, self.lock.write():  # no request runs while layers are swapped
            for name in names:
                if name in self.layers:
                    continue
                current = self._model.get_submodule(name)
                if isinstance(current, MixtureLinear):
                    raise RuntimeError(
                        f"{name!r} is wrapped by another copy of the LoGo request state (was the model deep-copied "
                        f"after an engine wrapped it?): build engines on an unwrapped model"
                    )
                if not isinstance(current, nn.Linear):
                    raise TypeError(f"{name!r} is a {type(current).__name__}: only nn.Linear layers can be adapted")
                parent_name, _, child = name.rpartition(".")
                parent = self._model.get_submodule(parent_name) if parent_name else self._model
                layer = MixtureLinear(current, name, self.active)
                setattr(parent, child, layer)
                self.layers[name] = layer

    @contextlib.contextmanager
    def applied(self, factors: Factors | None) -> Iterator[float]:
        """Forward passes of this thread apply `factors` (None: the base model) per row; other threads are unaffected.

        Holds the lock for reading; yields the milliseconds spent waiting for it.
        """
        token = self.active.set(factors)
        try:
            with self.lock.read() as waited_ms:
                yield waited_ms
        finally:
            self.active.reset(token)

    @contextlib.contextmanager
    def merged(self, factors: Factors) -> Iterator[float]:
        """Merge one row's factors into the base weights and hold the model exclusively until the block exits.

        Yields the milliseconds spent waiting for the lock; the weights are restored bit for bit however it exits.
        """
        with self.lock.write() as waited_ms:
            token = self.active.set(None)  # the merged weights already hold the mixture
            try:
                for name, (a_t, b_t) in factors.items():
                    if a_t.shape[0] != 1:
                        raise ValueError(f"fused mode merges one selection at a time, got {a_t.shape[0]}")
                    # delta (d_out, d_in) = (a_t[0] @ b_t[0]).T = sum_i w_i s_i B_i A_i
                    self.layers[name].merge((a_t[0] @ b_t[0]).T)
                yield waited_ms
            finally:
                for layer in self.layers.values():
                    layer.unmerge()
                self.active.reset(token)
