"""The page's manual control over routing: pinned and excluded adapters, and a hand-written mixture to compare."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

_PAIR = re.compile(r"^\s*([^=\s]+)\s*(?:=\s*(\S+))?\s*$")


@dataclass(frozen=True)
class Override:
    """Adapters always selected (`pin`) and never selected (`exclude`); both are still scored."""

    pin: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "pin", tuple(self.pin or ()))
        object.__setattr__(self, "exclude", tuple(self.exclude or ()))

    @property
    def active(self) -> bool:
        return bool(self.pin or self.exclude)

    def check(self, names: Sequence[str], k: int) -> None:
        for name in (*self.pin, *self.exclude):
            if name not in names:
                raise ValueError(f"adapter {name!r} is not in the pool: choose among {', '.join(names)}")
        both = sorted(set(self.pin) & set(self.exclude))
        if both:
            raise ValueError(f"{', '.join(both)} is both pinned and excluded: remove it from one of the two lists")
        if len(self.pin) > k:
            raise ValueError(f"{len(self.pin)} adapters pinned but k={k}: raise k or pin fewer adapters")

    def record(self) -> dict:
        """What a routing records of the override (empty when there is none)."""
        return {"pinned": list(self.pin), "excluded": list(self.exclude)} if self.active else {}


def parse_mixture(text: str, names: Sequence[str]) -> dict[str, float]:
    """'en_fr=0.7, en_de=0.3' or 'en_fr' (weight 1) -> {adapter: weight}; {} for an empty text."""
    mixture: dict[str, float] = {}
    for part in filter(str.strip, (text or "").replace("\n", ",").split(",")):
        match = _PAIR.match(part)
        if match is None:
            raise ValueError(f"manual mixture: {part.strip()!r} is not 'adapter' or 'adapter=weight'")
        name, weight = match.group(1), match.group(2)
        if name not in names:
            raise ValueError(f"manual mixture: adapter {name!r} is not in the pool: choose among {', '.join(names)}")
        try:
            value = 1.0 if weight is None else float(weight)
        except ValueError:
            raise ValueError(f"manual mixture: the weight of {name} is {weight!r}, not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"manual mixture: the weight of {name} is {value}: give a finite number")
        mixture[name] = value
    return mixture


def manual_mixture(text: str, names: Sequence[str], oracle: str | None) -> tuple[dict[str, float], str]:
    """The third answer's mixture and its label: the typed mixture, else the oracle adapter, else none."""
    typed = parse_mixture(text, names)
    if typed:
        return typed, "manual: " + ", ".join(f"{n}={w:g}" for n, w in typed.items())
    if oracle is not None:
        return {oracle: 1.0}, f"oracle: {oracle} (the adapter trained on this example's task)"
    return {}, ""


def mixture_text(selected: Sequence[str], weights: Sequence[float]) -> str:
    """A routing's mixture as the manual box writes it, for editing its weights."""
    return ", ".join(f"{name}={weight:.3f}" for name, weight in zip(selected, weights, strict=True))
