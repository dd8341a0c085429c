"""LoraHub: a gradient-free search, per task, over weights that average the adapters' A and B separately."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from logo.scoring import answer_loss, parameter_average

if TYPE_CHECKING:
    from logo.engine import LoGoEngine


@dataclass(frozen=True)
class LoraHubResult:
    """The outcome of one search: generate with `engine.generate_batch(..., parameter_average=result.weights)`."""

    weights: dict[str, float]  # adapter -> weight, in the order searched
    loss: float  # the objective at `weights`: cross_entropy + l1 * mean |w|
    cross_entropy: float  # mean answer cross-entropy of the examples at `weights`
    seconds: float  # wall time of the whole search
    history: tuple[float, ...]  # the objective of every evaluation, in order


def lorahub_objective(
    engine: LoGoEngine,
    examples: Sequence[tuple[str, str]],
    weights: dict[str, float],
    l1: float = 0.05,
    batch_size: int = 5,
) -> tuple[float, float]:
    """(objective, cross-entropy) of one weight vector: mean answer cross-entropy + l1 * mean_i |w_i|.

    The cross-entropy is `logo.scoring.answer_loss` (mean over each answer's tokens) averaged over the examples,
    under the merge `logo.scoring.parameter_average(engine, weights)`.
    """
    factors = parameter_average(engine, weights)
    losses = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        losses.append(answer_loss(engine, [p for p, _ in chunk], [a for _, a in chunk], factors=factors))
    cross_entropy = float(np.concatenate([loss.numpy() for loss in losses]).mean())
    penalty = l1 * float(np.abs(np.asarray(list(weights.values()), dtype=np.float64)).mean())
    return cross_entropy + penalty, cross_entropy


def lorahub_search(
    engine: LoGoEngine,
    examples: Sequence[tuple[str, str]],
    names: Sequence[str],
    budget: int = 40,
    l1: float = 0.05,
    bounds: tuple[float, float] = (-1.5, 1.5),
    seed: int = 0,
    batch_size: int = 5,
) -> LoraHubResult:
    """LoraHub's weight search (sail-sg/lorahub, `lorahub/algorithm.py: lorahub_learning`) over `names`.

    1. Parametrise w in [lower, upper]^N, starting at w = 0 (the base model), as LoraHub.
    2. Objective(w) = mean answer cross-entropy of the labelled `examples` (prompt, answer) under the merge
       A' = sum_i w_i A_i, B' = sum_i w_i B_i (`logo.scoring.parameter_average`), plus l1 * mean_i |w_i|.
    3. Minimise it with Nevergrad's NGOpt within `budget` evaluations (LoraHub: 40, with 5 examples).
    4. Return NGOpt's recommendation and its objective (for this noise-free objective the best point evaluated).

    Leave-one-out: pass the pool minus the excluded adapters as `names`.

    Deviations from sail-sg/lorahub:
    - Loss scale. LoraHub sums the token-mean cross-entropy of each batch of examples and divides by the number
      of examples; with its 5 examples in one batch (batch_size=5) that is the cross-entropy / 5, so its L1 term
      weighs 5x more than here. We use the mean over examples of each answer's token-mean cross-entropy
      (batching does not change the value). Pass l1=0.25 to reproduce LoraHub's balance with 5 examples.
    - Penalty form: as LoraHub's `default_l1_regularization`, 0.05 * sum|w| / N (the mean, not the sum).
    - Scalings: LoraHub loads the merged state into the first adapter's PEFT config (equal shapes required, that
      adapter's lora_alpha for all); the engine folds sqrt(s_i) into both factors and zero-pads ranks, which is
      LoraHub's merge whenever ranks and scalings agree (as in the zoo: r=6, alpha=12 everywhere).
    - Seeding: only the parametrisation's random state is seeded; LoraHub also reseeds the global `random`
      and `numpy.random` (state we leave alone). Its default seed is 42. With nevergrad 1.0.12, NGOpt hands
      these sizes (N ~ 5-30, budget 8-40) to COBYLA, which is deterministic: the seed then changes nothing.
      COBYLA first steps each weight by +0.5 in turn, so with 40 evaluations over ~26 adapters the search is
      mostly that coordinate scan. LoraHub pins no nevergrad version, so its NGOpt may have chosen otherwise.
    - The prompts are the engine's: the chat template of an instruct decoder (LoraHub: FLAN-T5, encoder input,
      decoder labels).
    """
    import nevergrad as ng

    names = list(names)
    examples = list(examples)
    lower, upper = bounds
    if not examples:
        raise ValueError("LoraHub needs labelled examples: pass (prompt, answer) pairs of the task")
    if not names or len(set(names)) != len(names):
        raise ValueError(f"LoraHub needs distinct adapter names to weigh, got {names}")
    if not lower < upper:
        raise ValueError(f"bounds {bounds} must be (lower, upper) with lower < upper")
    if budget < 1 or batch_size < 1 or l1 < 0:
        raise ValueError(f"budget ({budget}) and batch_size ({batch_size}) must be >= 1 and l1 ({l1}) >= 0")
    for name in names:
        engine.pool.index(name)  # an unknown adapter fails before the search starts

    started = time.perf_counter()
    history: list[float] = []
    seen: dict[bytes, tuple[float, float]] = {}  # point -> (objective, cross-entropy), to report the answer's

    def objective(w: np.ndarray) -> float:
        weights = dict(zip(names, w.tolist(), strict=True))
        seen[w.tobytes()] = lorahub_objective(engine, examples, weights, l1, batch_size)
        history.append(seen[w.tobytes()][0])
        return history[-1]

    parametrization = ng.p.Array(init=np.zeros(len(names)), lower=lower, upper=upper)
    parametrization.random_state = np.random.RandomState(seed)
    optimizer = ng.optimizers.NGOpt(parametrization=parametrization, budget=budget)
    with warnings.catch_warnings():
        # NGOpt may pick COBYLA, whose scipy wrapper warns that nevergrad's default final radius is invalid
        warnings.filterwarnings("ignore", message="COBYLA: Invalid RHOEND")
        recommendation = optimizer.minimize(objective)
    point = np.asarray(recommendation.value, dtype=np.float64)  # (N,)
    best = dict(zip(names, point.tolist(), strict=True))
    # NGOpt recommends the best point it evaluated here; should it ever recommend an unseen one, score that
    loss, ce = seen.get(point.tobytes()) or lorahub_objective(engine, examples, best, l1, batch_size)
    return LoraHubResult(
        weights=best,
        loss=loss,
        cross_entropy=ce,
        seconds=time.perf_counter() - started,
        history=tuple(history),
    )
