"""Per-adapter signal statistics on reference prompts, cached on disk by content, for calibrated routing."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .config import SIGNALS, ProbeConfig

log = logging.getLogger(__name__)


# The norm's std is floored at this fraction of the adapter's mean: an adapter whose output norm barely varies over
# the reference prompts (an adapter built to be loud on every input) would otherwise have a tiny std that turns
# small wobbles into large z-scores. Chosen on dev (analysis/hostile.py dev, hostile_dev.csv): the zoo's adapters
# vary by 0.119-0.214 of their mean, so 0.1 leaves their routing exactly as it was (own top-1 0.909 on dev) and
# cuts the constructed loud adapter from the top 3 of 11.3% of dev inputs to 3.5%. A constant scale (B x 10)
# still changes nothing. Not for entropy: its inverse entropy varies by 0.0004-0.003 of its mean on every adapter.
NORM_STD_FLOOR = 0.1
# RoutingConfig.loudness_limit is a multiple of this quantile of the pool's mean output norms (see too_loud)
LOUDNESS_QUANTILE = 0.75


@dataclass(frozen=True)
class CalibrationStats:
    """Mean and standard deviation of every adapter's raw signal over a reference prompt set.

    mean/std map signal name -> tuple of N floats in pool order; the norm's std is at least NORM_STD_FLOOR x mean.
    """

    key: str
    adapters: tuple[str, ...]
    mean: dict[str, tuple[float, ...]]
    std: dict[str, tuple[float, ...]]
    n_prompts: int

    def tensors(self, signal: str, device) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            torch.tensor(self.mean[signal], dtype=torch.float32, device=device),
            torch.tensor(self.std[signal], dtype=torch.float32, device=device),
        )

    def too_loud(self, limit: float) -> tuple[str, ...]:
        """Adapters whose mean output norm on the reference prompts is above `limit` x the pool's upper quartile.

        The upper quartile, not the median: a pool with many quiet adapters (random LoRAs barely respond to real
        inputs) pulls its median down until ordinary trained adapters look loud. With 270 distractors beside the
        zoo, 3x the median left out 12 of the 27 zoo adapters; 3x the upper quartile leaves out none, and still
        both hostile adapters (analysis/pool_scaling.py loudness, pool_scaling_loudness.csv).
        """
        norms = self.mean["norm"]
        upper = torch.tensor(norms, dtype=torch.float64).quantile(LOUDNESS_QUANTILE).item()
        return tuple(name for name, m in zip(self.adapters, norms, strict=True) if m > limit * upper)

    @classmethod
    def from_signals(cls, key: str, adapters: tuple[str, ...], signals: dict[str, torch.Tensor]) -> CalibrationStats:
        """signals: signal name -> (P, N) raw signals of P reference prompts."""
        n_prompts = next(iter(signals.values())).shape[0]
        if n_prompts < 2:
            raise ValueError("calibration needs at least 2 reference prompts")
        std = {s: v.std(dim=0) for s, v in signals.items()}  # (N,) each
        if "norm" in std:
            std["norm"] = torch.maximum(std["norm"], NORM_STD_FLOOR * signals["norm"].mean(dim=0).abs())
        return cls(
            key=key,
            adapters=adapters,
            mean={s: tuple(v.mean(dim=0).tolist()) for s, v in signals.items()},
            std={s: tuple(v.tolist()) for s, v in std.items()},
            n_prompts=n_prompts,
        )


def calibration_key(
    base_fingerprint: str, pool_digest: str, probe: ProbeConfig, chat_template: bool, prompts: list[str]
) -> str:
    """Changes whenever the model, any adapter, the probe location or the reference prompts change."""
    payload = json.dumps(
        {
            "base": base_fingerprint,
            "pool": pool_digest,
            "probe": asdict(probe),
            "chat_template": chat_template,
            "prompts": hashlib.sha256("\n".join(prompts).encode()).hexdigest(),
            "signals": SIGNALS,
            "norm_std_floor": NORM_STD_FLOOR,  # statistics cached before the floor are recomputed
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def entry_problems(stats: CalibrationStats, key: str, adapters: tuple[str, ...] | None = None) -> list[str]:
    """Why a cache entry cannot be trusted (empty when it can): wrong key or adapters, bad shapes or values."""
    problems = []
    if stats.key != key:
        problems.append(f"its key is {stats.key!r}, not {key!r}")
    if adapters is not None and tuple(stats.adapters) != tuple(adapters):
        problems.append(f"it holds statistics of adapters {list(stats.adapters)}, not of the pool {list(adapters)}")
    if not isinstance(stats.n_prompts, int) or stats.n_prompts < 2:
        problems.append(f"n_prompts is {stats.n_prompts!r}, not an integer >= 2")
    for what, values in (("mean", stats.mean), ("std", stats.std)):
        if set(values) != set(SIGNALS):
            problems.append(f"{what} covers signals {sorted(values)}, not {sorted(SIGNALS)}")
        for signal, row in values.items():
            if len(row) != len(stats.adapters):
                problems.append(f"{what}[{signal!r}] has {len(row)} values for {len(stats.adapters)} adapters")
            elif not all(isinstance(v, (int, float)) and math.isfinite(v) for v in row):
                problems.append(f"{what}[{signal!r}] holds non-finite values")
            elif what == "std" and min(row, default=1.0) <= 0:
                problems.append(f"std[{signal!r}] holds values <= 0")
    return problems


def load_cached(cache_dir: Path, key: str, adapters: tuple[str, ...] | None = None) -> CalibrationStats | None:
    """The cached statistics of `key`, or None when absent or not to be trusted (then the caller recomputes them).

    `adapters` (the pool's names, in order) is checked too when given.
    """
    path = cache_dir / "calibration" / f"{key}.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        stats = CalibrationStats(
            key=data["key"],
            adapters=tuple(data["adapters"]),
            mean={s: tuple(v) for s, v in data["mean"].items()},
            std={s: tuple(v) for s, v in data["std"].items()},
            n_prompts=data["n_prompts"],
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        log.warning("calibration cache %s is unreadable (%s): recomputing it", path, err)
        return None
    problems = entry_problems(stats, key, adapters)
    if problems:
        log.warning("calibration cache %s is not trusted (%s): recomputing it", path, "; ".join(problems))
        return None
    return stats


_UNWRITABLE: set[Path] = set()  # cache folders already reported as unwritable: said once, not per request


def save_cached(cache_dir: Path, stats: CalibrationStats) -> bool:
    """Write the statistics atomically; False (and one warning per folder) when the cache cannot be written.

    A read-only cache is not an error: the caller keeps the statistics in memory.
    """
    folder = cache_dir / "calibration"
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(stats), f)
        os.replace(tmp, folder / f"{stats.key}.json")
        return True
    except OSError as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if folder not in _UNWRITABLE:
            _UNWRITABLE.add(folder)
            log.warning(
                "the calibration cache %s cannot be written (%s): statistics are kept in memory for this process "
                "only; set LOGO_CACHE (EngineConfig.cache_dir) to a writable directory to keep them",
                folder,
                err,
            )
        return False


def read_reference_prompts(path: Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with '#' are skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"reference prompt file {path} is missing: give EngineConfig.reference_prompts")
    prompts = [line.strip() for line in path.read_text().splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if len(prompts) < 2:
        raise ValueError(f"{path} has {len(prompts)} prompt(s); calibration needs at least 2")
    return prompts
