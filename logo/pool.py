"""The adapter pool: loads PEFT LoRA adapters (safetensors only), validates them and stacks them per module."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."
_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class LoraAdapter:
    """One LoRA adapter as plain tensors: per module (A (r, d_in), B (d_out, r)) and its scaling."""

    name: str
    source: str
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]]
    scalings: dict[str, float]
    digest: str
    config: dict = field(repr=False)


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


def _pattern_value(patterns: dict, module: str, default):
    """PEFT's rank_pattern / alpha_pattern lookup: a key matches the end of the module name."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def resolve_adapter_dir(source: str) -> Path:
    """A local adapter directory, or a hub id downloaded (safetensors and config only)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if _HUB_ID.match(source) and not path.exists():
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(source, allow_patterns=[ADAPTER_CONFIG, "*.safetensors"]))
        except Exception as err:  # hub errors come in many types; all mean "could not fetch"
            raise FileNotFoundError(
                f"adapter {source!r} is neither a local directory nor reachable on the hub ({err.__class__.__name__}): "
                f"download it first and pass its directory"
            ) from err
    raise FileNotFoundError(f"adapter directory {source!r} does not exist: pass an existing directory or a hub id")


def discover_adapters(sources: tuple[str, ...] | list[str]) -> list[Path]:
    """Expand pool directories (a folder of adapter folders) into adapter directories, in sorted order."""
    found: list[Path] = []
    for source in sources:
        path = resolve_adapter_dir(source)
        if (path / ADAPTER_CONFIG).is_file():
            found.append(path)
            continue
        children = sorted(p for p in path.iterdir() if (p / ADAPTER_CONFIG).is_file())
        if not children:
            raise FileNotFoundError(
                f"{path} holds no adapter: expected {ADAPTER_CONFIG} in it or in its sub-directories"
            )
        found.extend(children)
    return found


def load_adapter(directory: Path, name: str | None = None) -> LoraAdapter:
    """Read one PEFT LoRA adapter directory. Only safetensors weights are read (never pickle)."""
    name = name or directory.name
    config_path = directory / ADAPTER_CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(f"adapter {name!r}: {config_path} is missing")
    config = json.loads(config_path.read_text())
    weights_path = directory / ADAPTER_WEIGHTS
    if not weights_path.is_file():
        if list(directory.glob("*.bin")):
            raise ValueError(
                f"adapter {name!r} at {directory} has only pickle (.bin) weights, which are never loaded: "
                f"convert them to {ADAPTER_WEIGHTS} (e.g. PeftModel.save_pretrained(..., safe_serialization=True))"
            )
        raise FileNotFoundError(f"adapter {name!r}: {weights_path} is missing")
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise ValueError(f"adapter {name!r} is a {peft_type} adapter: only LoRA adapters can be routed")
    for flag in ("use_dora", "lora_bias"):
        if config.get(flag):
            raise ValueError(f"adapter {name!r} uses {flag}, which LoGo's merge does not support: retrain without it")

    raw = load_file(str(weights_path))
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in raw.items():
        match = _KEY.match(key)
        if match is None:
            raise ValueError(
                f"adapter {name!r} has weight {key!r} that is not a LoRA A/B matrix of a linear layer "
                f"(embeddings, biases and modules_to_save are not supported)"
            )
        module = match["module"].removeprefix(PEFT_PREFIX)
        pairs.setdefault(module, {})[match["ab"]] = tensor
    if not pairs:
        raise ValueError(f"adapter {name!r} at {directory} contains no LoRA weights")

    factors, scalings = {}, {}
    for module, ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            raise ValueError(f"adapter {name!r}: module {module!r} has lora_{next(iter(ab))} but not its partner")
        a, b = ab["A"], ab["B"]
        rank = a.shape[0]
        alpha = _pattern_value(config.get("alpha_pattern"), module, config.get("lora_alpha", rank))
        scale = alpha / rank**0.5 if config.get("use_rslora") else alpha / rank
        factors[module] = (a, b)
        scalings[module] = float(scale)
    digest = hashlib.sha256(weights_path.read_bytes() + config_path.read_bytes()).hexdigest()[:16]
    return LoraAdapter(
        name=name, source=str(directory), factors=factors, scalings=scalings, digest=digest, config=config
    )


def validate_adapter(adapter: LoraAdapter, model: nn.Module) -> None:
    """Every target module exists in the base model as nn.Linear and every shape matches."""
    for module, (a, b) in adapter.factors.items():
        try:
            target = model.get_submodule(module)
        except AttributeError:
            raise ValueError(
                f"adapter {adapter.name!r} targets {module!r}, but the base model has no such module: "
                f"was it trained for another base model?"
            ) from None
        target = getattr(target, "base", target)  # an already wrapped MixtureLinear validates as its base layer
        if not isinstance(target, nn.Linear):
            raise ValueError(
                f"adapter {adapter.name!r} targets {module!r}, a {type(target).__name__}: only nn.Linear is supported"
            )
        rank = a.shape[0]
        want_a, want_b = (rank, target.in_features), (target.out_features, rank)
        if a.dim() != 2 or b.dim() != 2 or tuple(a.shape) != want_a or tuple(b.shape) != want_b:
            raise ValueError(
                f"adapter {adapter.name!r}, module {module!r}: expected lora_A {want_a} and lora_B {want_b} "
                f"for this base model, found {tuple(a.shape)} and {tuple(b.shape)} "
                f"(an adapter for a model with another hidden size?)"
            )


class AdapterPool:
    """N validated adapters; per adapted module the stacked A, B and scalings of all of them."""

    def __init__(self, adapters: list[LoraAdapter], model: nn.Module):
        if not adapters:
            raise ValueError(
                "the adapter pool is empty: give at least one adapter directory or hub id (EngineConfig.adapters, --adapters)"
            )
        names = [a.name for a in adapters]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"adapter names must be unique; repeated: {duplicates}. Rename the directories.")
        for adapter in adapters:
            validate_adapter(adapter, model)
        self.adapters = tuple(adapters)
        self.names = tuple(names)
        self.digest = hashlib.sha256("|".join(f"{a.name}:{a.digest}" for a in adapters).encode()).hexdigest()[:16]
        param = next(model.parameters())
        self.modules: dict[str, StackedModule] = {
            module: self._stack(module, model.get_submodule(module), param.device, param.dtype)
            for module in sorted({m for a in adapters for m in a.factors})
        }

    @classmethod
    def load(cls, sources, model: nn.Module) -> AdapterPool:
        return cls([load_adapter(d) for d in discover_adapters(sources)], model)

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
        for i, (adapter, f) in enumerate(zip(self.adapters, present)):
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

    def mixture_factors(self, index: torch.Tensor, coef: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per module, the weighted mixture of selected adapters as one stacked low-rank product.

        index: (B, K) adapter indices; coef: (B, K) merge weights (0 for padding).
        Returns module -> (a_t (B, d_in, K*r), b_t (B, K*r, d_out)) with w_i * scaling_i folded into b_t,
        so that x @ a_t @ b_t == sum_i w_i scaling_i B_i A_i x for every row.
        """
        rows, k = index.shape
        factors = {}
        for module, st in self.modules.items():
            r = st.a.shape[1]
            c = (coef.to(st.scaling) * st.scaling[index]).to(st.b.dtype)  # (B, K)
            a_t = st.a[index].reshape(rows, k * r, -1).transpose(1, 2)  # (B, d_in, K*r)
            b_t = (st.b[index] * c[..., None, None]).permute(0, 1, 3, 2).reshape(rows, k * r, -1)  # (B, K*r, d_out)
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
