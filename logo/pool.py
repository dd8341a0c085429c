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
from .signals import lora_outputs

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "PEFT_PREFIX",
    "AdapterError",
    "AdapterPool",
    "LoraAdapter",
    "RankGroup",
    "StackedModule",
    "discover_adapters",
    "load_adapter",
    "resolve_adapter_dir",
    "validate_adapter",
]

log = logging.getLogger(__name__)
ON_ERROR = ("raise", "skip")


@dataclass(frozen=True)
class RankGroup:
    """The adapters of one rank at one module, stacked: a (n, r, d_in), b (n, d_out, r), scaling (n,).

    `members` are their indices in the pool; `local` (N,) maps a pool index to its row here (-1: not a member).
    """

    members: tuple[int, ...]
    a: torch.Tensor
    b: torch.Tensor
    scaling: torch.Tensor
    local: torch.Tensor

    @property
    def rank(self) -> int:
        return self.a.shape[1]


@dataclass(frozen=True)
class StackedModule:
    """All adapters of the pool at one module, stacked per rank: one wide adapter costs only its own memory.

    `groups` hold the adapters that adapt this module, one RankGroup per rank; `scaling` (N,) is each adapter's
    scaling here (0 where it does not adapt the module); `covered[i]` says whether adapter i adapts it.
    """

    groups: tuple[RankGroup, ...]
    scaling: torch.Tensor
    covered: tuple[bool, ...]

    @property
    def dense(self) -> bool:
        """One group holding every adapter in pool order: the stack is the plain (N, r, d_in) tensor, no padding."""
        return len(self.groups) == 1 and self.groups[0].members == tuple(range(len(self.covered)))

    @property
    def dtype(self) -> torch.dtype:
        return self.groups[0].a.dtype

    @property
    def rank(self) -> int:
        """The largest rank at this module."""
        return max(g.rank for g in self.groups)

    @property
    def a(self) -> torch.Tensor:
        """(N, r_max, d_in): the stack itself when dense, else a zero-padded copy built now (tests, LoRA-Gen's zoo)."""
        return self._padded()[0]

    @property
    def b(self) -> torch.Tensor:
        """(N, d_out, r_max), like `a`."""
        return self._padded()[1]

    def _padded(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.dense:
            return self.groups[0].a, self.groups[0].b
        first, n, r = self.groups[0], len(self.covered), self.rank
        a = first.a.new_zeros(n, r, first.a.shape[2])
        b = first.b.new_zeros(n, first.b.shape[1], r)
        for g in self.groups:
            a[list(g.members), : g.rank] = g.a
            b[list(g.members), :, : g.rank] = g.b
        return a, b

    def factors_of(self, i: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Adapter i's own (A (r_i, d_in), B (d_out, r_i)) here, or None where it does not adapt the module."""
        for g in self.groups:
            row = int(g.local[i])
            if row >= 0:
                return g.a[row], g.b[row]
        return None

    def outputs(self, h: torch.Tensor) -> torch.Tensor:
        """o_i = scaling_i B_i A_i h of every adapter (zeros where it does not adapt the module).

        h: (B, d_in) -> (B, N, d_out)
        """
        if self.dense:
            g = self.groups[0]
            return lora_outputs(h, g.a, g.b, g.scaling)
        g0 = self.groups[0]
        dtype = torch.promote_types(g0.a.dtype, g0.scaling.dtype)  # lora_outputs' own (float32 scalings)
        out = h.new_zeros(h.shape[0], len(self.covered), g0.b.shape[1], dtype=dtype)
        for g in self.groups:
            out[:, list(g.members)] = lora_outputs(h, g.a, g.b, g.scaling)
        return out


def module_ranks(adapters: list[LoraAdapter]) -> dict[str, dict[int, int]]:
    """module -> rank -> how many adapters have that rank there."""
    ranks: dict[str, dict[int, int]] = {}
    for adapter in adapters:
        for module, (a, _) in adapter.factors.items():
            per_rank = ranks.setdefault(module, {})
            per_rank[a.shape[0]] = per_rank.get(a.shape[0], 0) + 1
    return ranks


def stacked_bytes(adapters: list[LoraAdapter], model: nn.Module, dtype: torch.dtype) -> int:
    """Memory the stacked pool will take: per module and rank group n * r * (d_in + d_out) elements, plus the
    scalings and index maps (the sum of the adapters' own factors: no padding across ranks)."""
    total = 0
    item = torch.empty((), dtype=dtype).element_size()
    for module, per_rank in module_ranks(adapters).items():
        target = getattr(model.get_submodule(module), "base", model.get_submodule(module))
        for rank, count in per_rank.items():
            total += count * rank * (target.in_features + target.out_features) * item + count * 4
            total += len(adapters) * 8  # the group's index map
        total += len(adapters) * 4  # the module's scalings
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
        """Refuse, before allocating anything, a pool whose stack does not fit in the free memory."""
        need, free = stacked_bytes(adapters, model, dtype), available_bytes(device)
        if need > cls.MEMORY_HEADROOM * free:
            widest = max(adapters, key=_max_rank)
            raise AdapterError(
                f"the stacked pool of {len(adapters)} adapters needs {_gib(need)} on {device} (the adapters' own "
                f"factors, stacked per rank; the widest, {widest.name!r}, has rank {_max_rank(widest)}), but only "
                f"{_gib(free)} is free: drop the highest-rank adapters, serve them in a pool of their own, or use a "
                f"smaller dtype"
            )

    @classmethod
    def load(cls, sources, model: nn.Module, on_error: str = "raise") -> AdapterPool:
        """Load and validate every adapter of `sources`.

        on_error="raise" stops at the first bad adapter; "skip" keeps the good ones and records each bad one
        (and, when the pool would not fit in memory, the highest-rank ones) in `pool.refused`.
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
                scaling = torch.full((n,), alpha / rank, device=param.device)
                group = RankGroup(
                    members=tuple(range(n)),
                    a=a.mul_(module.in_features**-0.5),
                    b=b.mul_(b_std),
                    scaling=scaling,
                    local=torch.arange(n, device=param.device),
                )
                pool.modules[name] = StackedModule(groups=(group,), scaling=scaling, covered=(True,) * n)
        return pool

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no adapter named {name!r} in the pool; known: {', '.join(self.names)}") from None

    def _stack(self, module: str, target: nn.Linear, device, dtype) -> StackedModule:
        return stack_module(self.adapters, module, target, device, dtype)

    def nbytes(self) -> int:
        """Memory of the stacked pool on its device (the index maps included)."""
        return sum(
            g.a.nbytes + g.b.nbytes + g.scaling.nbytes + g.local.nbytes + m.scaling.nbytes
            for m in self.modules.values()
            for g in m.groups
        )

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
        so that x @ a_t @ b_t == sum_i w_i scaling_i B_i A_i x for every row. r is the module's rank when all
        adapters share it, else the largest rank among the adapters this batch selects (narrower slots are
        zero-padded), so a wide adapter in the pool costs nothing to requests that do not select it.
        """
        rows, k = index.shape
        pad = (coef == 0) | (index < 0) | (index >= len(self.names))  # (B, K)
        index = index.masked_fill(pad, 0)  # a valid index to gather; the gathered values are replaced below
        keep = ~pad[..., None, None]  # (B, K, 1, 1)
        selected: set[int] | None = None  # the adapters of the batch, read once, only for modules of mixed ranks
        factors = {}
        for module, st in self.modules.items():
            c = (coef.to(st.scaling) * st.scaling[index]).to(st.dtype)  # (B, K)
            if st.dense:
                g = st.groups[0]
                zero = torch.zeros((), dtype=g.a.dtype, device=g.a.device)
                a_sel = torch.where(keep, g.a[index], zero)  # (B, K, r, d_in)
                b_sel = torch.where(keep, g.b[index] * c[..., None, None], zero)  # (B, K, d_out, r)
            else:
                if selected is None:
                    selected = set(index[~pad].tolist())
                a_sel, b_sel = _gather_groups(st, index, keep, c, selected)
            r = a_sel.shape[2]
            a_t = a_sel.reshape(rows, k * r, -1).transpose(1, 2)  # (B, d_in, K*r)
            b_t = b_sel.permute(0, 1, 3, 2).reshape(rows, k * r, -1)  # (B, K*r, d_out)
            factors[module] = (a_t.contiguous(), b_t.contiguous())
        return factors

    def parameter_average(self, weights: dict[str, float]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Factors of ONE adapter whose A and B are weighted sums of the pool's (LoraHub / AdapterSoup merging).

        A' = sum_i w_i sqrt(s_i) A_i and B' = sum_i w_i sqrt(s_i) B_i (narrower adapters zero-padded to the widest),
        so delta = B' A' (with a common scaling s this is s (sum w B)(sum w A), as LoraHub merges). This is NOT the
        LoGo mixture sum_i w_i s_i B_i A_i. Returns module -> (a_t (1, d_in, r), b_t (1, r, d_out)).
        """
        chosen = [(self.index(n), float(v)) for n, v in weights.items()]
        factors = {}
        for module, st in self.modules.items():
            own = [(st.factors_of(i), w * float(st.scaling[i]) ** 0.5) for i, w in chosen]
            own = [(f, c) for f, c in own if f is not None]
            g0 = st.groups[0]
            if not own:
                a, b = g0.a.new_zeros(1, g0.a.shape[2]), g0.b.new_zeros(g0.b.shape[1], 1)
            else:
                r = max(f[0].shape[0] for f, _ in own)
                a, b = g0.a.new_zeros(r, g0.a.shape[2]), g0.b.new_zeros(g0.b.shape[1], r)
                for (fa, fb), c in own:
                    a[: fa.shape[0]] += c * fa
                    b[:, : fb.shape[1]] += c * fb
            factors[module] = (a.T.contiguous()[None], b.T.contiguous()[None])
        return factors

    def with_adapters(self, extra: list[LoraAdapter], model: nn.Module) -> AdapterPool:
        """This pool and `extra` after it, as a new pool that shares this pool's stacks (nothing of them is copied).

        For per-session adapters (app/uploads.py): the new adapters are validated against the model, their names
        must be new, their own stacks must fit in memory (checked before allocating); this pool is unchanged, so
        other sessions never see them. Indices 0..N-1 are this pool's adapters, N.. the extra ones.
        """
        if not self.adapters and self.names:
            raise ValueError("a random pool (AdapterPool.random) cannot be extended: it keeps no adapter files")
        if not extra:
            return self
        names = [a.name for a in extra]
        clashes = sorted({n for n in names if n in self.names or names.count(n) > 1})
        if clashes:
            raise AdapterError(f"adapter names {clashes} are already in the pool: rename the uploaded adapter")
        for adapter in extra:
            validate_adapter(adapter, model)
        param = next(model.parameters())
        self._check_memory(extra, model, param.device, param.dtype)
        adapters = [*self.adapters, *extra]
        pool = AdapterPool.__new__(AdapterPool)
        pool.adapters, pool.names, pool.refused = tuple(adapters), tuple(a.name for a in adapters), self.refused
        pool.digest = hashlib.sha256("|".join(f"{a.name}:{a.digest}" for a in adapters).encode()).hexdigest()[:16]
        n, offset = len(adapters), len(self.adapters)
        pool.modules = {}
        for module in sorted(set(self.modules) | {m for a in extra for m in a.factors}):
            target = model.get_submodule(module)
            own = stack_module(extra, module, target, param.device, param.dtype, offset=offset, total=n)
            base = self.modules.get(module)
            if base is None:
                pool.modules[module] = StackedModule(
                    groups=own.groups, scaling=own.scaling, covered=(False,) * offset + own.covered[offset:]
                )
                continue
            groups = tuple(_widen(g, n) for g in base.groups) + own.groups
            scaling = torch.cat([base.scaling, own.scaling[offset:]])
            pool.modules[module] = StackedModule(
                groups=groups, scaling=scaling, covered=base.covered + own.covered[offset:]
            )
        return pool


def stack_module(
    adapters, module: str, target: nn.Module, device, dtype, offset: int = 0, total: int | None = None
) -> StackedModule:
    """The adapters' factors at one module, one RankGroup per rank; pool indices start at `offset`, the pool
    has `total` adapters (len(adapters) by default). Adapters that do not adapt the module are in no group."""
    target = getattr(target, "base", target)
    total = offset + len(adapters) if total is None else total
    by_rank: dict[int, list[int]] = {}
    scaling = torch.zeros(total, dtype=torch.float32)
    covered = [False] * total
    for j, adapter in enumerate(adapters):
        f = adapter.factors.get(module)
        if f is None:
            continue
        by_rank.setdefault(f[0].shape[0], []).append(j)
        scaling[offset + j] = adapter.scalings[module]
        covered[offset + j] = True
    groups = []
    for rank in sorted(by_rank):
        rows = by_rank[rank]
        a = torch.empty(len(rows), rank, target.in_features, dtype=dtype)
        b = torch.empty(len(rows), target.out_features, rank, dtype=dtype)
        local = torch.full((total,), -1, dtype=torch.long)
        for row, j in enumerate(rows):
            a[row], b[row] = (t.to(dtype) for t in adapters[j].factors[module])
            local[offset + j] = row
        members = tuple(offset + j for j in rows)
        groups.append(
            RankGroup(
                members=members,
                a=a.to(device),
                b=b.to(device),
                scaling=scaling[list(members)].to(device),
                local=local.to(device),
            )
        )
    return StackedModule(groups=tuple(groups), scaling=scaling.to(device), covered=tuple(covered))


def _widen(group: RankGroup, total: int) -> RankGroup:
    """The same group in a pool of `total` adapters (its index map padded with -1; its factors shared)."""
    local = torch.full((total,), -1, dtype=torch.long, device=group.local.device)
    local[: group.local.shape[0]] = group.local
    return RankGroup(members=group.members, a=group.a, b=group.b, scaling=group.scaling, local=local)


def _gather_groups(
    st: StackedModule, index: torch.Tensor, keep: torch.Tensor, c: torch.Tensor, selected: set[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, K, r, d_in) and (B, K, d_out, r) of the selected slots for a module of several ranks (see mixture_factors):
    r is the largest rank among the groups the batch selects; other slots and the padding are exact zeros."""
    rows, k = index.shape
    used = [g for g in st.groups if selected.intersection(g.members)] or [st.groups[0]]
    r = max(g.rank for g in used)
    g0 = st.groups[0]
    a_sel = g0.a.new_zeros(rows, k, r, g0.a.shape[2])
    b_sel = g0.b.new_zeros(rows, k, g0.b.shape[1], r)
    for g in used:
        local = g.local[index]  # (B, K); -1 where the slot's adapter is not in this group
        member = keep & (local >= 0)[..., None, None]
        local = local.clamp(min=0)
        a_sel[:, :, : g.rank] = torch.where(member, g.a[local], a_sel[:, :, : g.rank])
        b_sel[:, :, :, : g.rank] = torch.where(member, g.b[local] * c[..., None, None], b_sel[:, :, :, : g.rank])
    return a_sel, b_sel
