"""The one LoRA-Gen merge: a layer's delta sum_j g_j s_j B_j A_j as concatenated factors, gates folded into B."""

from __future__ import annotations

import torch


def gated_factors(
    a: torch.Tensor, b: torch.Tensor, scaling: torch.Tensor, gates: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate n experts' factors so that B_cat @ A_cat = sum_j g_j s_j B_j A_j exactly.

    a: (n, r, d_in); b: (n, d_out, r); scaling: (n,); gates: (..., n) (a leading batch is allowed).
    Returns a_cat (n*r, d_in) and b_cat (..., d_out, n*r). A's and B's are never averaged separately:
    that would add cross terms B_j A_k that no expert learnt.
    """
    n, r, d_in = a.shape
    a_cat = a.reshape(n * r, d_in)  # (n*r, d_in)
    weight = gates * scaling  # (..., n)
    b_per = b.permute(1, 0, 2)  # (d_out, n, r)
    b_cat = b_per * weight[..., None, :, None]  # (..., d_out, n, r)
    return a_cat, b_cat.reshape(*b_cat.shape[:-2], n * r)  # (..., d_out, n*r)


def kept_experts(gates: torch.Tensor) -> torch.Tensor:
    """Indices of the experts with a non-zero gate (KeepTop-K leaves exactly K), ascending. gates: (n,)."""
    return torch.nonzero(gates > 0, as_tuple=False).flatten()


def compact_factors(
    a: torch.Tensor, b: torch.Tensor, scaling: torch.Tensor, gates: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """gated_factors over the kept experts only: rank K*r instead of n*r, the same delta. gates: (n,)."""
    keep = kept_experts(gates)
    return gated_factors(a[keep], b[keep], scaling[keep], gates[keep])


def lowrank_delta(x: torch.Tensor, a_cat: torch.Tensor, b_cat: torch.Tensor) -> torch.Tensor:
    """x (B, T, d_in) -> (B, T, d_out): x A_cat^T B_cat^T with a per-row b_cat (B or 1, d_out, n*r)."""
    hidden = x @ a_cat.T  # (B, T, n*r)
    return hidden @ b_cat.transpose(1, 2)  # (B, T, d_out); one b_cat broadcasts over the batch
