"""The physical floor of batch-1 decoding: measured memory bandwidth and the bytes of weights read per token.

At batch 1 every decode step reads every weight matrix once, so no step can take less than
bytes_per_token / bandwidth. The bandwidth is measured in the same run as the benchmark it judges:
  - on a GPU, a large device-to-device copy timed with CUDA events (bytes read + bytes written);
  - on the CPU, a sum over a large tensor (bytes read), best of a few, with the benchmark's thread count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from logo.pool import AdapterPool


@dataclass(frozen=True)
class Floor:
    """The least time one decode step can take: `bytes_per_token` read at `bandwidth_gbs` (10^9 bytes/s)."""

    bandwidth_gbs: float
    bytes_per_token: int

    @property
    def ms_per_token(self) -> float:
        return self.bytes_per_token / (self.bandwidth_gbs * 1e9) * 1000

    def times(self, ms_per_token: float) -> float:
        """How many floors a measured decode step takes (1.0 is the hardware's limit)."""
        return ms_per_token / self.ms_per_token

    def describe(self) -> str:
        return (
            f"{self.bytes_per_token / 1e6:.1f} MB/token at {self.bandwidth_gbs:.1f} GB/s = {self.ms_per_token:.2f} ms"
        )


def cpu_bandwidth_gbs(gib: float = 1.0, repeats: int = 3) -> float:
    """Read bandwidth of the CPU: the fastest of `repeats` sums over a `gib`-GiB float32 tensor."""
    data = torch.ones(int(gib * 2**30) // 4, dtype=torch.float32)
    data.sum()  # pages touched, threads started
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        data.sum()
        best = min(best, time.perf_counter() - started)
    return data.numel() * 4 / best / 1e9


def gpu_bandwidth_gbs(device: torch.device, gib: float = 2.0, repeats: int = 5) -> float:
    """Copy bandwidth of the GPU's memory: the fastest of `repeats` copies of `gib` GiB, read + write counted."""
    source = torch.empty(int(gib * 2**30), dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    best = float("inf")
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        target.copy_(source)
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1000)
    del source, target
    torch.cuda.empty_cache()
    return 2 * int(gib * 2**30) / best / 1e9


def bandwidth_gbs(device: torch.device | str) -> float:
    device = torch.device(device)
    return gpu_bandwidth_gbs(device) if device.type == "cuda" else cpu_bandwidth_gbs()


def _tensor_bytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the weights one decode step reads: every parameter and weight buffer, each tensor once.

    An embedding table is read one row per token, so it counts only when it is also the output head (tied);
    int8 layers count their int8 weights and scales; torch's dynamic quantized Linear its packed weight.
    """
    seen: set[int] = set()
    total = 0

    def add(tensor: torch.Tensor) -> None:
        nonlocal total
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            total += _tensor_bytes(tensor)

    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    heads = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    for module in model.modules():
        packed = getattr(module, "_packed_params", None)
        if packed is not None and hasattr(module, "weight") and callable(module.weight):  # quantize_dynamic
            # weight() unpacks a fresh tensor each call, whose address a later one reuses: count it, not its address
            total += module.weight().numel() + module.out_features * 8  # int8 weight; scale and zero point at most
        for name, buffer in module.named_buffers(recurse=False):
            if name in ("weight_int8", "scales"):  # bench.quantize.Int8Linear
                add(buffer)
        for param in module.parameters(recurse=False):
            if id(param) in embeddings and id(param) not in heads:
                continue
            add(param)
    return total


def mixture_bytes(pool: AdapterPool, k: int) -> int:
    """Bytes of k adapters' factors, which a mixture step reads on top of the base weights."""
    return sum(k * (_tensor_bytes(stack.a[0]) + _tensor_bytes(stack.b[0])) for stack in pool.modules.values())
