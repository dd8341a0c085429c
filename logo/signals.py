"""The LoGo maths, written once: LoRA outputs of a stacked pool, their signals, calibration, top-k and weights.

Every caller (the probe, calibration, the baselines and the benchmarks) uses these functions.
Shapes: B = batch rows, N = adapters, r = (padded) rank, d_in / d_out = module widths.
"""

from __future__ import annotations

import warnings

import torch

ENTROPY_EPS = 1e-8  # inside the log: H(p) = -sum p log(p + 1e-8), as the paper's code
INVERSE_EPS = 1e-6  # s = 1 / (H + 1e-6)


def lora_outputs(h: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scaling: torch.Tensor) -> torch.Tensor:
    """o_i = scaling_i * B_i A_i h for every adapter i at once, as two stacked products (no loop over adapters).

    h: (B, d_in); a: (N, r, d_in); b: (N, d_out, r); scaling: (N,)  ->  (B, N, d_out)
    """
    u = torch.einsum("bi,nri->bnr", h, a)  # (B, N, r)
    return torch.einsum("bnr,nor->bno", u, b) * scaling[None, :, None]


def signal_from_outputs(outputs: torch.Tensor, signal: str) -> torch.Tensor:
    """The paper's per-adapter signal over the hidden dimension, computed in float32.

    outputs: (..., d_out) -> (...)
      norm:    s = ||o||_2
      entropy: p = softmax(o); s = 1 / (H(p) + 1e-6), H(p) = -sum p log(p + 1e-8)
    """
    o = outputs.float()
    if signal == "norm":
        return torch.linalg.vector_norm(o, dim=-1)
    if signal == "entropy":
        p = torch.softmax(o, dim=-1)
        h = -(p * torch.log(p + ENTROPY_EPS)).sum(dim=-1)
        return 1.0 / (h + INVERSE_EPS)
    raise ValueError(f"unknown signal {signal!r}: choose norm or entropy")


def calibrate(signals: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None, method: str) -> torch.Tensor:
    """Calibrated score of each adapter: its signal relative to its own behaviour on reference prompts.

    signals: (B, N); mean, std: (N,) statistics of the same signal on the reference set.
      none:   score = s
      mean:   score = s / mean         (1.0 means "as loud as usual")
      zscore: score = (s - mean) / std (0.0 means "as loud as usual")
    """
    if method == "none":
        return signals
    if mean is None or std is None:
        raise ValueError(f"calibration {method!r} needs reference statistics")
    if method == "mean":
        return signals / mean.clamp_min(torch.finfo(torch.float32).tiny)
    if method == "zscore":
        return (signals - mean) / std.clamp_min(1e-12)
    raise ValueError(f"unknown calibration {method!r}: choose none, mean or zscore")


def select_top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k adapters per row and their merge weights w_i = c_i / sum_j c_j over the selection.

    scores: (B, N) -> indices (B, k) sorted by score (highest first), weights (B, k) summing to 1.
    Negative calibrated scores are clipped at zero before normalising; a row whose selected scores
    are all zero falls back to uniform weights with a warning. NaN or inf is an error.
    """
    if not torch.isfinite(scores).all():
        rows = torch.nonzero(~torch.isfinite(scores).all(dim=1)).flatten().tolist()
        raise FloatingPointError(f"non-finite adapter scores in rows {rows}: check the adapters' weights and dtype")
    n = scores.shape[1]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} is out of range: the pool has {n} adapters, so choose 1 <= k <= {n}")
    top, idx = torch.topk(scores, k, dim=1)  # (B, k), descending
    weights = normalise(top)
    return idx, weights


def normalise(values: torch.Tensor) -> torch.Tensor:
    """w = max(v, 0) / sum max(v, 0) along the last dim; all-zero rows become uniform (with a warning)."""
    clipped = values.clamp_min(0)
    total = clipped.sum(dim=-1, keepdim=True)
    zero = total.squeeze(-1) == 0
    if zero.any():
        warnings.warn(
            f"{int(zero.sum())} row(s) have all-zero selected scores; using uniform weights for them",
            RuntimeWarning,
            stacklevel=3,
        )
        clipped = torch.where(zero[..., None], torch.ones_like(clipped), clipped)
        total = clipped.sum(dim=-1, keepdim=True)
    return clipped / total
