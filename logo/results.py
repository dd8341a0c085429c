"""Frozen result objects of plain values (no handle to the model) that serialise to JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

MERGES = ("none", "mixture", "fused", "parameter_average")


@dataclass(frozen=True)
class Routing:
    """The probe's verdict for one prompt.

    `adapters`, `signals` and `scores` are in pool order; `selected` and `weights` are highest weight first.
    Without calibration `scores == signals`. `probe_ms` is this prompt's share of the probe's compute time;
    `queue_ms` is how long the routing call waited for other requests (for the model's lock), not shared out.
    """

    prompt: str
    adapters: tuple[str, ...]
    signals: tuple[float, ...]
    scores: tuple[float, ...]
    selected: tuple[str, ...]
    weights: tuple[float, ...]
    config: dict
    probe_ms: float
    queue_ms: float = 0.0

    @property
    def signal_by_adapter(self) -> dict[str, float]:
        return dict(zip(self.adapters, self.signals, strict=True))

    @property
    def score_by_adapter(self) -> dict[str, float]:
        return dict(zip(self.adapters, self.scores, strict=True))

    @property
    def mixture(self) -> dict[str, float]:
        return dict(zip(self.selected, self.weights, strict=True))

    def to_dict(self) -> dict:
        return {
            "prompt": self.prompt,
            "selected": list(self.selected),
            "weights": list(self.weights),
            "signals": self.signal_by_adapter,
            "scores": self.score_by_adapter,
            "config": self.config,
            "timings": {"probe_ms": self.probe_ms, "queue_ms": self.queue_ms},
        }


@dataclass(frozen=True)
class Timings:
    """Milliseconds spent in each phase of one request (a batch shares its probe and merge).

    Waiting for another request (for the model's lock) counts in `queue_ms` only, never in probe_ms or merge_ms;
    `total_ms` is the wall time from the request's start, waiting included.
    """

    probe_ms: float
    merge_ms: float
    prefill_ms: float
    decode_ms: float
    total_ms: float
    queue_ms: float = 0.0


@dataclass(frozen=True)
class Generation:
    """One generated answer, with the routing that chose its mixture and per-token timestamps."""

    prompt: str
    text: str
    routing: Routing | None  # None when the mixture was given explicitly (baselines) or for the base model
    mixture: dict[str, float]  # adapter -> weight actually used, combined as `merge` says ({} = base model)
    # How the adapters of `mixture` were combined, one of MERGES: 'mixture' and 'fused' both compute
    # W0 x + sum_i w_i s_i B_i A_i x (per row / merged into W0); 'parameter_average' is ONE adapter whose A and B
    # are the w-weighted sums of the adapters' (LoraHub, AdapterSoup); 'none' is the base model.
    merge: str
    mode: str
    token_ids: tuple[int, ...]
    token_times_ms: tuple[float, ...]  # time since the request started at which each token was ready
    timings: Timings
    config: dict

    def __post_init__(self) -> None:
        if self.merge not in MERGES:
            raise ValueError(f"unknown merge {self.merge!r}: choose one of {', '.join(MERGES)}")
        if (self.merge == "none") != (not self.mixture):
            raise ValueError(f"merge {self.merge!r} with mixture {self.mixture}: 'none' means no adapter, and only it")

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    def to_dict(self) -> dict:
        routing = self.routing.to_dict() if self.routing else {}
        return {
            "prompt": self.prompt,
            "text": self.text,
            "selected": list(self.mixture),
            "weights": list(self.mixture.values()),
            "signals": routing.get("signals", {}),
            "scores": routing.get("scores", {}),
            "mode": self.mode,
            "merge": self.merge,
            "n_tokens": self.n_tokens,
            "token_times_ms": list(self.token_times_ms),
            "config": {"routing": routing.get("config"), "generation": self.config},
            "timings": asdict(self.timings),
        }


def to_json(result: Routing | Generation | list, indent: int | None = 2) -> str:
    if isinstance(result, list):
        return json.dumps([r.to_dict() for r in result], indent=indent)
    return json.dumps(result.to_dict(), indent=indent)
