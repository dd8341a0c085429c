"""Weight formats of a CPU engine: float32, bfloat16, int8 weight-only and torch's dynamic int8, built per engine.

  float32       the CPU default today
  bfloat16      EngineConfig(dtype="bfloat16"): weights, activations and adapter factors in bf16
  int8          weight-only int8 (per output channel, symmetric), dequantised inside the matmul kernel
                (torch._weight_int8pack_mm); activations, adapter factors and the mixture stay float32
  int8-dynamic  torch.ao.quantization.quantize_dynamic on every nn.Linear: int8 weights and int8 activations
                quantised per step; the mixture's low-rank path stays float32
The int8 formats quantise a float32 engine after it has wrapped its layers, so the adapted layers keep their
MixtureLinear and only the base matmul changes; fused mode (a merge into the base weight) is not available.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from logo.mixture import MixtureLinear

FORMATS = ("float32", "bfloat16", "int8", "int8-dynamic")
ENGINE_DTYPE = {"float32": "float32", "bfloat16": "bfloat16", "int8": "float32", "int8-dynamic": "float32"}
FUSED_FORMATS = ("float32", "bfloat16")


class Int8Linear(nn.Module):
    """nn.Linear with int8 weights and one scale per output channel; the scale is applied inside the kernel."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()  # (d_out, d_in)
        scales = weight.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / 127  # (d_out,)
        self.register_buffer("weight_int8", torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scales", scales.to(linear.weight.dtype))
        self.bias = linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)  # (B*T, d_in)
        y = torch._weight_int8pack_mm(flat, self.weight_int8, self.scales.to(x.dtype))  # (B*T, d_out)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


def _linears(model: nn.Module) -> list[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, layer) of every nn.Linear, the base layer inside each MixtureLinear included."""
    found = []
    for parent in model.modules():
        for attribute, child in parent.named_children():
            if type(child) is nn.Linear:
                found.append((parent, attribute, child))
    return found


def quantize(model: nn.Module, fmt: str) -> nn.Module:
    """Quantise every nn.Linear of `model` in place to `fmt` ('int8' or 'int8-dynamic'); other formats: unchanged."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown weight format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "int8":
        for parent, attribute, layer in _linears(model):
            setattr(parent, attribute, Int8Linear(layer))
    elif fmt == "int8-dynamic":
        with warnings.catch_warnings():  # torch 2.13 deprecates torch.ao in favour of torchao, not installed here
            warnings.simplefilter("ignore")
            torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
    if fmt.startswith("int8"):
        for layer in model.modules():
            if isinstance(layer, MixtureLinear) and type(layer.base) is nn.Linear:
                raise RuntimeError(f"{layer.name} was not quantised to {fmt}")
    return model
