"""LoGo Studio's engine: training-free, instance-level LoRA selection and merging (the LoGo method).

    from logo import LoGoEngine, EngineConfig, RoutingConfig, GenerationConfig

The names are imported on first use, so `import logo` (and `logo --help`) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# public name -> the module that defines it
_EXPORTS = {
    "LoGoEngine": "logo.engine",
    "EngineConfig": "logo.config",
    "RoutingConfig": "logo.config",
    "GenerationConfig": "logo.config",
    "ProbeConfig": "logo.config",
    "Routing": "logo.results",
    "Generation": "logo.results",
    "Timings": "logo.results",
}
__all__ = [
    "EngineConfig",
    "Generation",
    "GenerationConfig",
    "LoGoEngine",
    "ProbeConfig",
    "Routing",
    "RoutingConfig",
    "Timings",
]

if TYPE_CHECKING:
    from .config import EngineConfig, GenerationConfig, ProbeConfig, RoutingConfig
    from .engine import LoGoEngine
    from .results import Generation, Routing, Timings


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'logo' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
