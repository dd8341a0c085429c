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


def select_top_k(
    scores: torch.Tensor,
    k: int,
    *,
    weighting: str = "linear",
    temperature: float = 1.0,
    score_margin: float | None = None,
    min_score_ratio: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k adapters per row and their merge weights, in four steps (the fields of RoutingConfig):

    1. Rank: the k highest scores of each row, highest first (torch.topk).
    2. Adaptive k: a slot after the best one is dropped when its score is below `best - score_margin` or below
       `min_score_ratio * best` (each rule only when set); the best adapter is always kept.
    3. Weights over the kept slots: 'linear' (the paper) w_i = max(c_i, 0) / sum_j max(c_j, 0), a row whose
       kept scores are all <= 0 falling back to uniform weights with a warning; 'softmax' w_i = softmax(c / T)_i.
    4. Dropped slots get index -1 and weight 0; they are always the last ones of a row.

    scores: (B, N) -> indices (B, k), weights (B, k) summing to 1 per row. NaN or inf is an error.
    """
    if not torch.isfinite(scores).all():
        rows = torch.nonzero(~torch.isfinite(scores).all(dim=1)).flatten().tolist()
        raise FloatingPointError(f"non-finite adapter scores in rows {rows}: check the adapters' weights and dtype")
    n = scores.shape[1]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} is out of range: the pool has {n} adapters, so choose 1 <= k <= {n}")
    top, idx = torch.topk(scores.float(), k, dim=1)  # 1. (B, k), descending
    best = top[:, :1]  # (B, 1)
    kept = torch.ones_like(top, dtype=torch.bool)  # 2. (B, k)
    if score_margin is not None:
        kept &= top >= best - score_margin
    if min_score_ratio is not None:
        kept &= top >= min_score_ratio * best
    kept[:, 0] = True
    if weighting == "linear":  # 3.
        weights = normalise(top, kept)
    elif weighting == "softmax":
        if not temperature > 0:
            raise ValueError(f"softmax temperature must be > 0, got {temperature}")
        weights = torch.softmax((top / temperature).masked_fill(~kept, float("-inf")), dim=1)
    else:
        raise ValueError(f"unknown weighting {weighting!r}: choose linear or softmax")
    return idx.masked_fill(~kept, -1), weights.masked_fill(~kept, 0.0)  # 4.


def normalise(values: torch.Tensor, kept: torch.Tensor | None = None) -> torch.Tensor:
    """w = max(v, 0) / sum max(v, 0) along the last dim over the `kept` entries (all by default; the others get 0).

    Rows whose kept values are all <= 0 become uniform over their kept entries (with a warning).
    """
    kept = torch.ones_like(values, dtype=torch.bool) if kept is None else kept
    clipped = values.clamp_min(0) * kept
    total = clipped.sum(dim=-1, keepdim=True)
    zero = total.squeeze(-1) == 0
    if zero.any():
        warnings.warn(
            f"{int(zero.sum())} row(s) have all-zero selected scores; using uniform weights for them",
            RuntimeWarning,
            stacklevel=3,
        )
        clipped = torch.where(zero[..., None], kept.to(clipped.dtype), clipped)
        total = clipped.sum(dim=-1, keepdim=True)
    return clipped / total
