"""Scoring with the engine's model for baselines and tests: logits under mixtures, answer losses, parameter averages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from .mixture import Factors
from .probe import position_ids

if TYPE_CHECKING:
    from .engine import LoGoEngine


@torch.inference_mode()
def logits(
    engine: LoGoEngine,
    prompts: str | Sequence[str],
    mixtures: Sequence[Mapping[str, float]] = (),
    mode: str = "mixture",
    *,
    factors: Factors | None = None,
) -> torch.Tensor:
    """Next-token logits over each whole prompt with per-row mixtures (or given factors): (B, T, V), left-padded.

    `mixtures` holds one mixture per prompt (adapter -> weight, {} for the base model); `factors` (for example
    `parameter_average(...)`) applies one precomputed merge to every row instead.
    """
    ids, mask = engine.encode(prompts)  # (B, T) each
    if factors is None and len(mixtures) != ids.shape[0]:
        raise ValueError(f"{ids.shape[0]} prompts but {len(mixtures)} mixtures: give one mixture per prompt")
    with engine._activated(mixtures, mode, factors=factors):
        return engine.model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).logits


@torch.inference_mode()
def answer_loss(
    engine: LoGoEngine, prompts: Sequence[str], answers: Sequence[str], *, factors: Factors | None = None
) -> torch.Tensor:
    """Mean cross-entropy of each answer (plus end of turn) after its prompt, under `factors`: (B,) on the CPU.

    The objective of LoraHub's weight search (lower is better); `factors` None scores the base model.
    """
    ids, mask, prompt_lengths = engine.encode_answers(prompts, answers)  # (B, T), (B, T), B ints
    with engine._activated(factors=factors):
        out = engine.model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).logits
    log_probs = torch.log_softmax(out[:, :-1].float(), dim=-1)  # (B, T-1, V): predicts token t+1
    token_lp = log_probs.gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
    losses = []
    for row, prompt_len in enumerate(prompt_lengths):
        real = int(mask[row].sum())
        start = ids.shape[1] - real + prompt_len  # left padding: the answer starts after pad + prompt
        losses.append(-token_lp[row, start - 1 :].mean())
    return torch.stack(losses).cpu()


def parameter_average(engine: LoGoEngine, weights: Mapping[str, float]) -> Factors:
    """One adapter whose A and B are weighted sums of the pool's (the LoraHub / AdapterSoup merge).

    To generate with it, pass the weights to `engine.generate_batch(..., parameter_average=weights)`, which
    records the merge in its results.
    """
    return engine.parameter_average_factors(weights)
