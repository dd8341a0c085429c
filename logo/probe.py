"""The probe pass: run the base model only as far as the probed module and return its aggregated input."""

from __future__ import annotations

import threading

import torch
from torch import nn

from .config import ProbeConfig


class _Captured(Exception):
    """Raised by the probe hook to stop the forward pass once the probed input is known."""

    def __init__(self, value: torch.Tensor):
        super().__init__()
        self.value = value


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The model's list of transformer blocks, whatever the architecture calls it."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    if decoder is not None and isinstance(getattr(decoder, "layers", None), nn.ModuleList):
        return decoder.layers
    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return module
    raise ValueError(
        f"cannot find the transformer blocks of {type(model).__name__}: no ModuleList of num_hidden_layers"
    )


def block_index(model: nn.Module, block: int) -> int:
    """A non-negative block index; negative indices count from the end."""
    n = len(decoder_blocks(model))
    if not -n <= block < n:
        raise ValueError(f"probe block {block} is out of range: the model has {n} blocks, so use -{n}..{n - 1}")
    return block % n


def probe_module_name(model: nn.Module, probe: ProbeConfig) -> str:
    """Full name of the probed module in the base model, e.g. 'model.layers.29.self_attn.q_proj'."""
    blocks = decoder_blocks(model)
    index = block_index(model, probe.block)
    target = blocks[index].get_submodule(probe.module) if _has(blocks[index], probe.module) else None
    if target is None:
        raise ValueError(f"block {index} has no module {probe.module!r}: pick a module path inside the block")
    return next(name for name, m in model.named_modules() if m is target)


def _has(module: nn.Module, path: str) -> bool:
    try:
        module.get_submodule(path)
        return True
    except AttributeError:
        return False


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, so a padded row sees the same positions as when alone: (B, T)."""
    return (attention_mask.long().cumsum(dim=1) - 1).clamp_min(0)


def _aggregate(h: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """(B, T, d) -> (B, d): the last non-padding token, or the mean over non-padding tokens."""
    mask = attention_mask.to(h.device)
    if how == "last":
        last = mask.shape[1] - 1 - mask.flip(1).argmax(dim=1)  # works for left and right padding
        return h[torch.arange(h.shape[0], device=h.device), last]
    weights = mask.to(h.dtype)[..., None]  # (B, T, 1)
    return (h * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1)


@torch.inference_mode()
def probe_inputs(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, probe: ProbeConfig
) -> torch.Tensor:
    """The probed module's input for each prompt, aggregated over tokens: (B, d_in).

    'module' reads the true input of the module (after the block's RMSNorm); 'residual' reads the
    residual stream entering the block (what the official code reads as hidden_states[T]).
    The caller guarantees that no mixture is active, so every upstream layer runs with base weights.
    """
    index = block_index(model, probe.block)
    return probe_inputs_at_blocks(model, input_ids, attention_mask, probe, [index])[index]


@torch.inference_mode()
def probe_inputs_at_blocks(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, probe: ProbeConfig, blocks: list[int]
) -> dict[int, torch.Tensor]:
    """Like probe_inputs, for several blocks in one forward pass (probe.block is ignored): block -> (B, d_in).

    The pass stops as soon as the deepest requested block's input is known.
    """
    all_blocks = decoder_blocks(model)
    indices = sorted({block_index(model, b) for b in blocks})
    owner = threading.get_ident()
    captured: dict[int, torch.Tensor] = {}

    def hook_for(index: int):
        def hook(_module, args, kwargs):
            # The hook sits on a module shared by every request: only this thread's pass is read and stopped.
            if threading.get_ident() != owner:
                return None
            captured[index] = _aggregate(args[0] if args else kwargs["hidden_states"], attention_mask, probe.aggregate)
            if index == indices[-1]:
                raise _Captured(captured[index])
            return None

        return hook

    handles = []
    for index in indices:
        target = all_blocks[index] if probe.probe_input == "residual" else all_blocks[index].get_submodule(probe.module)
        handles.append(target.register_forward_pre_hook(hook_for(index), with_kwargs=True))
    try:
        model.get_decoder()(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids(attention_mask),
            use_cache=False,
        )
    except _Captured:
        return captured
    finally:
        for handle in handles:
            handle.remove()
    raise RuntimeError(f"the forward pass never reached {probe.module!r} of block {indices[-1]}")
