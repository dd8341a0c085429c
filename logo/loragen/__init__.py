"""LoRA-Gen (arXiv 2506.11638): a reader LM turns a task description into a LoRA for the edge model."""

from .config import LoraGenConfig, TrainConfig
from .generator import GeneratedLora, LoraGenerator

__all__ = ["GeneratedLora", "LoraGenConfig", "LoraGenerator", "TrainConfig"]
