"""The adapter pool: validated adapters (see adapters.py) stacked per module, within the memory there is."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

import torch
from torch import nn

from .adapters import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    PEFT_PREFIX,
    AdapterError,
    LoraAdapter,
    discover_adapters,
    discover_one,
    load_adapter,
    resolve_adapter_dir,
    validate_adapter,
)

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "PEFT_PREFIX",
    "AdapterError",
    "AdapterPool",
    "LoraAdapter",
    "StackedModule",
    "discover_adapters",
    "load_adapter",
    "resolve_adapter_dir",
    "validate_adapter",
]

log = logging.getLogger(__name__)
ON_ERROR = ("raise", "skip")


@dataclass(frozen=True)
class StackedModule:
    """All adapters of the pool at one module, zero-padded to the largest rank.

    a: (N, r_max, d_in); b: (N, d_out, r_max); scaling: (N,). An adapter that does not
    target this module has zero factors here, so it contributes nothing.
    """

    a: torch.Tensor
    b: torch.Tensor
    scaling: torch.Tensor
    covered: tuple[bool, ...]


def stacked_bytes(adapters: list[LoraAdapter], model: nn.Module, dtype: torch.dtype) -> int:
    """Memory the stacked pool will take: per module N * r_max * (d_in + d_out) elements, plus the scalings."""
    total = 0
    item = torch.empty((), dtype=dtype).element_size()
    for module in {m for a in adapters for m in a.factors}:
        target = getattr(model.get_submodule(module), "base", model.get_submodule(module))
        r_max = max(a.factors[module][0].shape[0] for a in adapters if module in a.factors)
        total += len(adapters) * (r_max * (target.in_features + target.out_features) * item + 4)
    return total


def available_bytes(device: torch.device) -> int:
    """Free memory on the device: the GPU's free memory, or the host's available memory (MemAvailable)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def _max_rank(adapter: LoraAdapter) -> int:
    return max(a.shape[0] for a, _ in adapter.factors.values())


class AdapterPool:
    """N validated adapters; per adapted module the stacked A, B and scalings of all of them.

    `refused` lists the adapters that were left out when loading with on_error="skip": (source, reason).
    """

    MEMORY_HEADROOM = 0.9  # the stacked pool may take this share of the free memory; the rest is for activations

    def __init__(self, adapters: list[LoraAdapter], model: nn.Module, refused: tuple[tuple[str, str], ...] = ()):
        if not adapters:
            raise ValueError(
                "the adapter pool is empty: give at least one adapter directory or hub id "
                "(EngineConfig.adapters, --adapters)"
            )
        names = [a.name for a in adapters]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"adapter names must be unique; repeated: {duplicates}. Rename the directories.")
        for adapter in adapters:
            validate_adapter(adapter, model)
        param = next(model.parameters())
        self._check_memory(adapters, model, param.device, param.dtype)
        self.adapters = tuple(adapters)
        self.names = tuple(names)
        self.refused = tuple(refused)
        self.digest = hashlib.sha256("|".join(f"{a.name}:{a.digest}" for a in adapters).encode()).hexdigest()[:16]
        self.modules: dict[str, StackedModule] = {
            module: self._stack(module, model.get_submodule(module), param.device, param.dtype)
            for module in sorted({m for a in adapters for m in a.factors})
        }

    @classmethod
    def _check_memory(cls, adapters: list[LoraAdapter], model: nn.Module, device, dtype) -> None:
        """Refuse, before allocating anything, a pool whose padded stack does not fit in the free memory."""
        need, free = stacked_bytes(adapters, model, dtype), available_bytes(device)
        if need > cls.MEMORY_HEADROOM * free:
            widest = max(adapters, key=_max_rank)
            raise AdapterError(
                f"the stacked pool of {len(adapters)} adapters needs {_gib(need)} on {device} (every adapter is "
                f"zero-padded to the largest rank at each module; adapter {widest.name!r} has rank "
                f"{_max_rank(widest)}), but only {_gib(free)} is free: drop the highest-rank adapters, serve them "
                f"in a pool of their own, or use a smaller dtype"
            )

    @classmethod
    def load(cls, sources, model: nn.Module, on_error: str = "raise") -> AdapterPool:
        """Load and validate every adapter of `sources`.

        on_error="raise" stops at the first bad adapter; "skip" keeps the good ones and records each bad one
        (and, when the padded pool would not fit in memory, the highest-rank ones) in `pool.refused`.
        """
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error={on_error!r}: choose one of {ON_ERROR}")
        adapters: list[LoraAdapter] = []
        refused: list[tuple[str, str]] = []
        for source in sources:
            try:
                directories = discover_one(source)
            except FileNotFoundError as err:
                if on_error == "raise":
                    raise
                refused.append((str(source), str(err)))
                continue
            for directory in directories:
                try:
                    adapter = load_adapter(directory)
                    validate_adapter(adapter, model)
                    if adapter.name in {a.name for a in adapters}:
                        raise AdapterError(
                            f"adapter name {adapter.name!r} ({directory}) is already in the pool: names must be "
                            f"unique; rename the directory"
                        )
                except (AdapterError, FileNotFoundError) as err:
                    if on_error == "raise":
                        raise
                    refused.append((str(directory), str(err)))
                    continue
                adapters.append(adapter)
        param = next(model.parameters())
        while on_error == "skip" and len(adapters) > 1:
            try:
                cls._check_memory(adapters, model, param.device, param.dtype)
                break
            except AdapterError as err:
                widest = max(reversed(adapters), key=_max_rank)
                adapters.remove(widest)
                refused.append((widest.source, f"left out for memory (rank {_max_rank(widest)}): {err}"))
        if not adapters:
            details = "; ".join(f"{source}: {reason}" for source, reason in refused)
            raise AdapterError(f"no usable adapter among {list(sources)}: {details}")
        for source, reason in refused:
            log.warning("adapter refused: %s: %s", source, reason)
        return cls(adapters, model, refused=tuple(refused))

    @classmethod
    def random(
        cls,
        model: nn.Module,
        n: int,
        rank: int = 16,
        targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj"),
        alpha: float = 32.0,
        seed: int = 0,
        b_std: float = 0.01,
    ) -> AdapterPool:
        """N random adapters stacked directly on the model's device (benchmarks at 8B scale: no files, no copies).

        A ~ N(0, 1/d_in), B ~ N(0, b_std^2): with the default, deltas of about 1% of typical weights, like
        trained adapters; tests raise b_std so that the adapters visibly change a tiny model's answers.
        """
        pool = cls.__new__(cls)
        pool.names = tuple(f"random_{i:04d}" for i in range(n))
        pool.adapters = ()
        pool.refused = ()
        pool.digest = f"random:{n}:{rank}:{seed}"
        param = next(model.parameters())
        generator = torch.Generator(device=param.device).manual_seed(seed)
        pool.modules = {}
        for name, module in model.named_modules():
            module = getattr(module, "base", module)
            if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets and ".layers." in name:
                a = torch.randn(
                    n, rank, module.in_features, generator=generator, device=param.device, dtype=param.dtype
                )
                b = torch.randn(
                    n, module.out_features, rank, generator=generator, device=param.device, dtype=param.dtype
                )
                pool.modules[name] = StackedModule(
                    a=a.mul_(module.in_features**-0.5),
                    b=b.mul_(b_std),
                    scaling=torch.full((n,), alpha / rank, device=param.device),
                    covered=(True,) * n,
                )
        return pool

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no adapter named {name!r} in the pool; known: {', '.join(self.names)}") from None

    def _stack(self, module: str, target: nn.Linear, device, dtype) -> StackedModule:
        present = [a.factors.get(module) for a in self.adapters]
        r_max = max(f[0].shape[0] for f in present if f is not None)
        n = len(self.adapters)
        a = torch.zeros(n, r_max, target.in_features, dtype=dtype)
        b = torch.zeros(n, target.out_features, r_max, dtype=dtype)
        scaling = torch.zeros(n, dtype=torch.float32)
        for i, (adapter, f) in enumerate(zip(self.adapters, present, strict=True)):
            if f is None:
                continue
            rank = f[0].shape[0]
            a[i, :rank] = f[0].to(dtype)
            b[i, :, :rank] = f[1].to(dtype)
            scaling[i] = adapter.scalings[module]
        return StackedModule(
            a=a.to(device), b=b.to(device), scaling=scaling.to(device), covered=tuple(f is not None for f in present)
        )

    def nbytes(self) -> int:
        """Memory of the stacked pool on its device."""
        return sum(m.a.nbytes + m.b.nbytes + m.scaling.nbytes for m in self.modules.values())

    @property
    def pad_index(self) -> int:
        """An index that selects no adapter: padding of mixtures narrower than their batch."""
        return len(self.names)

    def mixture_factors(self, index: torch.Tensor, coef: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per module, the weighted mixture of selected adapters as one stacked low-rank product.

        index: (B, K) adapter indices; coef: (B, K) merge weights. A slot is padding when its index is
        `pad_index` (or out of range) or its weight is 0: its factors are exact zeros, never 0 times an adapter's
        factors, so no adapter's values (not even a NaN) reach another row.
        Returns module -> (a_t (B, d_in, K*r), b_t (B, K*r, d_out)) with w_i * scaling_i folded into b_t,
        so that x @ a_t @ b_t == sum_i w_i scaling_i B_i A_i x for every row.
        """
        rows, k = index.shape
        pad = (coef == 0) | (index < 0) | (index >= len(self.names))  # (B, K)
        index = index.masked_fill(pad, 0)  # a valid index to gather; the gathered values are replaced below
        keep = ~pad[..., None, None]  # (B, K, 1, 1)
        factors = {}
        for module, st in self.modules.items():
            r = st.a.shape[1]
            zero = torch.zeros((), dtype=st.a.dtype, device=st.a.device)
            c = (coef.to(st.scaling) * st.scaling[index]).to(st.b.dtype)  # (B, K)
            a_sel = torch.where(keep, st.a[index], zero)  # (B, K, r, d_in)
            b_sel = torch.where(keep, st.b[index] * c[..., None, None], zero)  # (B, K, d_out, r)
            a_t = a_sel.reshape(rows, k * r, -1).transpose(1, 2)  # (B, d_in, K*r)
            b_t = b_sel.permute(0, 1, 3, 2).reshape(rows, k * r, -1)  # (B, K*r, d_out)
            factors[module] = (a_t.contiguous(), b_t.contiguous())
        return factors

    def parameter_average(self, weights: dict[str, float]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Factors of ONE adapter whose A and B are weighted sums of the pool's (LoraHub / AdapterSoup merging).

        A' = sum_i w_i sqrt(s_i) A_i and B' = sum_i w_i sqrt(s_i) B_i, so delta = B' A' (with a common scaling s
        this is s (sum w B)(sum w A), as LoraHub merges). This is NOT the LoGo mixture sum_i w_i s_i B_i A_i.
        Returns module -> (a_t (1, d_in, r), b_t (1, r, d_out)).
        """
        index = torch.tensor([self.index(n) for n in weights])
        w = torch.tensor([float(v) for v in weights.values()], dtype=torch.float32)
        factors = {}
        for module, st in self.modules.items():
            c = (w.to(st.scaling.device) * st.scaling[index.to(st.scaling.device)].sqrt()).to(st.a.dtype)  # (n,)
            a = torch.einsum("n,nri->ri", c, st.a[index])  # (r, d_in)
            b = torch.einsum("n,nor->or", c, st.b[index])  # (d_out, r)
            factors[module] = (a.T.contiguous()[None], b.T.contiguous()[None])
        return factors
