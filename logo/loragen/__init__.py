"""LoRA-Gen (arXiv 2506.11638): a reader LM turns a task description into a LoRA for the edge model."""

from __future__ import annotations

import importlib

__all__ = ["GeneratedLora", "LoraGenConfig", "LoraGenerator", "TrainConfig"]
_HOME = {"GeneratedLora": "generator", "LoraGenerator": "generator", "LoraGenConfig": "config", "TrainConfig": "config"}


def __getattr__(name: str):
    """Lazy: `logo gen --help` and the logo command's start-up need not import torch and PEFT."""
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
