"""Per-adapter signal statistics on reference prompts, cached on disk by content, for calibrated routing."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .config import SIGNALS, ProbeConfig


@dataclass(frozen=True)
class CalibrationStats:
    """Mean and standard deviation of every adapter's raw signal over a reference prompt set.

    mean/std map signal name -> tuple of N floats in pool order.
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

    @classmethod
    def from_signals(cls, key: str, adapters: tuple[str, ...], signals: dict[str, torch.Tensor]) -> CalibrationStats:
        """signals: signal name -> (P, N) raw signals of P reference prompts."""
        n_prompts = next(iter(signals.values())).shape[0]
        if n_prompts < 2:
            raise ValueError("calibration needs at least 2 reference prompts")
        return cls(
            key=key,
            adapters=adapters,
            mean={s: tuple(v.mean(dim=0).tolist()) for s, v in signals.items()},
            std={s: tuple(v.std(dim=0).tolist()) for s, v in signals.items()},
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
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def load_cached(cache_dir: Path, key: str) -> CalibrationStats | None:
    path = cache_dir / "calibration" / f"{key}.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return CalibrationStats(
            key=data["key"],
            adapters=tuple(data["adapters"]),
            mean={s: tuple(v) for s, v in data["mean"].items()},
            std={s: tuple(v) for s, v in data["std"].items()},
            n_prompts=data["n_prompts"],
        )
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache entry is recomputed, never trusted


def save_cached(cache_dir: Path, stats: CalibrationStats) -> None:
    folder = cache_dir / "calibration"
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(stats), f)
    os.replace(tmp, folder / f"{stats.key}.json")


def read_reference_prompts(path: Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with '#' are skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"reference prompt file {path} is missing: give EngineConfig.reference_prompts")
    prompts = [line.strip() for line in path.read_text().splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if len(prompts) < 2:
        raise ValueError(f"{path} has {len(prompts)} prompt(s); calibration needs at least 2")
    return prompts
