"""One PEFT LoRA adapter read from disk and checked against the base model: every bad file is a clear AdapterError.

What is served is exactly what PEFT would compute, or the adapter is refused with the reason:
  1. the config is a JSON object whose fields either match our maths (lora_alpha, default 8 as in PEFT; use_rslora;
     rank_pattern / alpha_pattern; layers_to_transform; fan_in_fan_out, which PEFT turns off for nn.Linear) or are
     refused (LoRA variants, extra trainable modules, initialisations that change the base weights);
  2. the weights are a readable safetensors file of 2-D, finite LoRA A/B pairs of rank >= 1, each of the rank its
     config gives the module;
  3. against the base model: every module the config targets exists as nn.Linear with matching shapes and has its
     tensors, and no delta is absurdly large next to its base weight (the rule: DELTA_WARN_RATIO, DELTA_MAX_RATIO).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."
PEFT_DEFAULT_ALPHA = 8  # LoraConfig.lora_alpha's default: a config without it is served as PEFT serves it
PEFT_DEFAULT_RANK = 8  # LoraConfig.r's default
# ||scaling * B A||_F / ||W0||_F of one module. The trained zoo peaks at 0.19 (en_de, layer 0 v_proj); the tests'
# deliberately loud random adapters at 35. Above 1 the adapter outweighs the base layer (warned); above 100 it
# drowns it (refused): such factors are corrupt or scaled by mistake (e.g. B set to fp16's 65504).
DELTA_WARN_RATIO = 1.0
DELTA_MAX_RATIO = 100.0
_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
# config fields that change the maths and are not implemented: refused whenever set
_UNSUPPORTED_FIELDS = {
    "use_dora": "DoRA rescales each weight column by a learned magnitude",
    "lora_bias": "it trains a bias on lora_B",
    "use_qalora": "QALoRA pools the input of quantised layers",
    "alora_invocation_tokens": "activated LoRA applies the adapter only after its invocation tokens",
    "velora_config": "it is a LoRA variant",
    "monteclora_config": "it is a LoRA variant",
    "kasa_config": "KaSA truncates the base weights and adds a learned diagonal",
    "use_bdlora": "it is a block-diagonal LoRA variant",
    "arrow_config": "Arrow routes per token itself",
    "layer_replication": "it changes the base model's layers",
    "target_parameters": "it adapts raw parameters, not nn.Linear modules",
    "trainable_token_indices": "it trains embedding rows",
    "modules_to_save": "it replaces whole modules with trained copies",
    "megatron_config": "it targets Megatron parallel layers",
}
# initialisations that leave the base weights as they are (the loaded factors override the initial ones)
_PLAIN_INITS = (True, False, "gaussian", "eva", "orthogonal")


class AdapterError(ValueError):
    """An adapter that cannot be served exactly: the message names the adapter, the file and the fix."""


@dataclass(frozen=True)
class LoraAdapter:
    """One LoRA adapter as plain tensors: per module (A (r, d_in), B (d_out, r)) and its scaling."""

    name: str
    source: str
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]]
    scalings: dict[str, float]
    digest: str
    config: dict = field(repr=False)


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
        found.extend(discover_one(source))
    return found


def discover_one(source: str) -> list[Path]:
    """The adapter directories of one source: itself, or its sub-directories that hold an adapter config."""
    path = resolve_adapter_dir(source)
    if (path / ADAPTER_CONFIG).is_file():
        return [path]
    children = sorted(p for p in path.iterdir() if (p / ADAPTER_CONFIG).is_file())
    if not children:
        raise FileNotFoundError(f"{path} holds no adapter: expected {ADAPTER_CONFIG} in it or in its sub-directories")
    return children


def read_config(name: str, path: Path) -> dict:
    """adapter_config.json as a dict, with every field that would change the maths checked (step 1)."""
    try:
        config = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AdapterError(f"adapter {name!r}: {path} is not valid JSON ({err}): re-save it with PEFT") from None
    if not isinstance(config, dict):
        raise AdapterError(
            f"adapter {name!r}: {path} holds a JSON {type(config).__name__}, not an object of PEFT LoraConfig fields"
        )
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise AdapterError(f"adapter {name!r} ({path}) is a {peft_type} adapter: only LoRA adapters can be routed")
    for key, why in _UNSUPPORTED_FIELDS.items():
        if config.get(key):
            raise AdapterError(
                f"adapter {name!r} ({path}) sets {key}={config[key]!r}, which LoGo does not support ({why}): "
                f"retrain without it or merge it into a plain LoRA"
            )
    if config.get("bias", "none") != "none":
        raise AdapterError(
            f"adapter {name!r} ({path}) trains biases (bias={config['bias']!r}): retrain with bias='none'"
        )
    init = config.get("init_lora_weights", True)
    if init not in _PLAIN_INITS:
        raise AdapterError(
            f"adapter {name!r} ({path}) was initialised with init_lora_weights={init!r}, which changes the base "
            f"weights too: convert it to a plain LoRA first (PEFT's path_initial_model_for_weight_conversion)"
        )
    for key in ("lora_alpha", "r"):
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise AdapterError(f"adapter {name!r} ({path}): {key}={value!r} must be a positive number")
    for key in ("rank_pattern", "alpha_pattern"):
        if not isinstance(config.get(key) or {}, dict):
            raise AdapterError(f"adapter {name!r} ({path}): {key} must be an object of module pattern -> value")
    return config


def read_weights(name: str, path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """module -> {"A": (r, d_in), "B": (d_out, r)} from a safetensors file, every tensor checked (step 2)."""
    try:
        raw = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise AdapterError(
            f"adapter {name!r}: {path} is not a readable safetensors file ({err}): it is truncated, empty or "
            f"not safetensors; re-save the adapter (PeftModel.save_pretrained(..., safe_serialization=True))"
        ) from None
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in raw.items():
        match = _KEY.match(key)
        if match is None:
            raise AdapterError(
                f"adapter {name!r} ({path}) has weight {key!r} that is not a LoRA A/B matrix of a linear layer "
                f"(embeddings, biases and modules_to_save are not supported)"
            )
        if not tensor.is_floating_point() or tensor.dim() != 2 or 0 in tensor.shape:
            raise AdapterError(
                f"adapter {name!r} ({path}): {key} is a {tuple(tensor.shape)} {tensor.dtype} tensor; LoRA factors are "
                f"non-empty 2-D floating-point matrices (rank >= 1)"
            )
        finite = torch.isfinite(tensor)
        if not finite.all():
            raise AdapterError(
                f"adapter {name!r} ({path}): {key} holds {int((~finite).sum())} NaN or infinite value(s) of "
                f"{tensor.numel()}: the adapter is corrupt (e.g. training diverged); retrain or re-export it"
            )
        pairs.setdefault(match["module"].removeprefix(PEFT_PREFIX), {})[match["ab"]] = tensor
    if not pairs:
        raise AdapterError(f"adapter {name!r}: {path} contains no LoRA weights")
    return pairs


def load_adapter(directory: Path, name: str | None = None) -> LoraAdapter:
    """Read one PEFT LoRA adapter directory. Only safetensors weights are read (never pickle)."""
    directory = Path(directory)
    name = name or directory.name
    config_path = directory / ADAPTER_CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(f"adapter {name!r}: {config_path} is missing")
    weights_path = directory / ADAPTER_WEIGHTS
    if not weights_path.is_file():
        if list(directory.glob("*.bin")):
            raise AdapterError(
                f"adapter {name!r} at {directory} has only pickle (.bin) weights, which are never loaded: "
                f"convert them to {ADAPTER_WEIGHTS} (e.g. PeftModel.save_pretrained(..., safe_serialization=True))"
            )
        raise FileNotFoundError(f"adapter {name!r}: {weights_path} is missing")
    config = read_config(name, config_path)
    pairs = read_weights(name, weights_path)

    factors, scalings = {}, {}
    for module, ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            raise AdapterError(
                f"adapter {name!r} ({weights_path}): module {module!r} has lora_{next(iter(ab))} but not its partner"
            )
        a, b = ab["A"], ab["B"]
        rank = a.shape[0]
        if b.shape[1] != rank:
            raise AdapterError(
                f"adapter {name!r} ({weights_path}): module {module!r} has lora_A of rank {rank} but lora_B of "
                f"rank {b.shape[1]}"
            )
        want = _pattern_value(config.get("rank_pattern"), module, config.get("r", PEFT_DEFAULT_RANK))
        if rank != want:
            raise AdapterError(
                f"adapter {name!r}: module {module!r} has rank {rank} in {weights_path.name}, but its config "
                f"(r / rank_pattern) gives {want}: PEFT would not load it; fix r or rank_pattern in {config_path}"
            )
        alpha = _pattern_value(config.get("alpha_pattern"), module, config.get("lora_alpha", PEFT_DEFAULT_ALPHA))
        scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
        factors[module] = (a, b)
        scalings[module] = float(scale)
    digest = hashlib.sha256(weights_path.read_bytes() + config_path.read_bytes()).hexdigest()[:16]
    return LoraAdapter(
        name=name, source=str(directory), factors=factors, scalings=scalings, digest=digest, config=config
    )


def linear_modules(model: nn.Module) -> dict[str, nn.Linear]:
    """name -> nn.Linear of the model; a layer already wrapped by a MixtureLinear counts under its own name."""
    found: dict[str, nn.Linear] = {}
    for name, module in model.named_modules():
        base = getattr(module, "base", None)
        if isinstance(base, nn.Linear):
            found[name] = base
        elif isinstance(module, nn.Linear) and not (name.endswith(".base") and name.removesuffix(".base") in found):
            found[name] = module
    return found


def _matches(rule, name: str) -> bool:
    """PEFT's module match: a string is a full regex; a list names modules exactly or by their last parts."""
    if isinstance(rule, str):
        return re.fullmatch(rule, name) is not None
    return any(name == t or name.endswith(f".{t}") for t in rule)


def _in_layers(config: dict, name: str) -> bool:
    """PEFT's layers_to_transform filter (with layers_pattern, or any `<name>.<index>.` part)."""
    layers = config.get("layers_to_transform")
    if layers is None:
        return True
    layers = [layers] if isinstance(layers, int) else list(layers)
    patterns = config.get("layers_pattern") or [r"[^.]*"]
    patterns = [patterns] if isinstance(patterns, str) else patterns
    for pattern in patterns:
        match = re.match(rf".*\.{pattern}\.(\d+)\.", name)
        if match:
            return int(match[1]) in layers
    return False


def targeted_modules(config: dict, model: nn.Module) -> set[str] | None:
    """The linear modules PEFT would adapt for this config, or None when target_modules is unset (PEFT's default)."""
    rule = config.get("target_modules")
    if rule is None:
        return None
    linears = linear_modules(model)
    candidates = [n for n in linears if n != "lm_head"] if rule == "all-linear" else list(linears)
    chosen = {n for n in candidates if rule == "all-linear" or _matches(rule, n)}
    exclude = config.get("exclude_modules")
    if exclude:
        chosen = {n for n in chosen if not _matches(exclude, n)}
    return {n for n in chosen if _in_layers(config, n)}


def validate_adapter(adapter: LoraAdapter, model: nn.Module) -> None:
    """Step 3: targets, shapes and delta sizes against the base model."""
    modules = dict(model.named_modules())
    rule = adapter.config.get("target_modules")
    if isinstance(rule, list):
        unknown = [t for t in rule if not any(_matches([t], n) for n in modules)]
        if unknown:
            raise AdapterError(
                f"adapter {adapter.name!r} ({adapter.source}) targets {unknown}, but the base model has no such "
                f"module: was it trained for another base model?"
            )
    worst = (0.0, "")
    for module, (a, b) in adapter.factors.items():
        if module not in modules:
            raise AdapterError(
                f"adapter {adapter.name!r} targets {module!r}, but the base model has no such module: "
                f"was it trained for another base model?"
            )
        target = modules[module]
        target = getattr(target, "base", target)  # an already wrapped MixtureLinear validates as its base layer
        if not isinstance(target, nn.Linear):
            raise AdapterError(
                f"adapter {adapter.name!r} targets {module!r}, a {type(target).__name__}: only nn.Linear is supported"
            )
        rank = a.shape[0]
        want_a, want_b = (rank, target.in_features), (target.out_features, rank)
        if tuple(a.shape) != want_a or tuple(b.shape) != want_b:
            raise AdapterError(
                f"adapter {adapter.name!r}, module {module!r}: expected lora_A {want_a} and lora_B {want_b} "
                f"for this base model, found {tuple(a.shape)} and {tuple(b.shape)} "
                f"(an adapter for a model with another hidden size?)"
            )
        worst = max(worst, (delta_ratio(a, b, adapter.scalings[module], target.weight), module))
    _check_delta_size(adapter, *worst)
    expected = targeted_modules(adapter.config, model)
    if expected is not None:
        extra, missing = sorted(set(adapter.factors) - expected), sorted(expected - set(adapter.factors))
        if extra:
            raise AdapterError(
                f"adapter {adapter.name!r} ({adapter.source}) has LoRA weights for {len(extra)} module(s) its config "
                f"does not target (target_modules / exclude_modules / layers_to_transform), e.g. {extra[0]!r}: "
                f"fix {ADAPTER_CONFIG}"
            )
        if missing:
            raise AdapterError(
                f"adapter {adapter.name!r} ({adapter.source}): its config targets {len(missing)} module(s) that have "
                f"no LoRA weights in {ADAPTER_WEIGHTS}, e.g. {missing[0]!r}: the file is incomplete or the config "
                f"names the wrong modules"
            )


def delta_ratio(a: torch.Tensor, b: torch.Tensor, scaling: float, weight: torch.Tensor) -> float:
    """||scaling * B A||_F / ||W0||_F without forming B A: ||B A||_F^2 = sum((A A^T) * (B^T B)), (r, r) each."""
    a, b = a.double(), b.double()
    delta = abs(scaling) * math.sqrt(max(float(((a @ a.T) * (b.T @ b)).sum()), 0.0))
    base = float(torch.linalg.matrix_norm(weight.detach().double()))
    return delta / base if base > 0 else math.inf


def _check_delta_size(adapter: LoraAdapter, ratio: float, module: str) -> None:
    """The rule of DELTA_WARN_RATIO / DELTA_MAX_RATIO, applied to the adapter's largest module delta."""
    if not ratio <= DELTA_MAX_RATIO:
        raise AdapterError(
            f"adapter {adapter.name!r} ({adapter.source}), module {module!r}: its delta is {ratio:.3g} times the "
            f"base weight (||scaling B A|| / ||W0||, refused above {DELTA_MAX_RATIO:g}; trained adapters stay well "
            f"under 1): the factors are corrupt or mis-scaled"
        )
    if ratio > DELTA_WARN_RATIO:
        log.warning(
            "adapter %r, module %r: its delta is %.3g times the base weight (above %g): answers may be garbage",
            adapter.name,
            module,
            ratio,
            DELTA_WARN_RATIO,
        )
