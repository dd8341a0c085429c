"""Configuration of LoRA-Gen: the generator's architecture and its training run, validated dataclasses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

EXPERT_KINDS = ("trained", "zoo")
FFN_MODULES = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


@dataclass(frozen=True)
class LoraGenConfig:
    """The generator: reader LM + meta tokens -> per-layer routers -> gated experts on the edge model."""

    edge_model: str = field(
        default="embedded",
        metadata={"help": "The edge model the LoRA is generated for (a name for load_base_model)."},
    )
    reader_model: str = field(
        default="embedded",
        metadata={
            "help": "The 'cloud' reader LM. The paper uses LLaMA3-8B; offline the only model that ships is the "
            "embedded SmolLM2-135M, loaded as a separate frozen copy with its own LoRA."
        },
    )
    experts: str = field(
        default="trained",
        metadata={
            "help": "'trained': n LoRA experts per edge layer on the FFN (the paper). "
            "'zoo': the zoo's task adapters as frozen experts, so every gate names a task."
        },
    )
    n_experts: int = field(default=8, metadata={"help": "Experts per layer (paper: 8 best of 4/8/12)."})
    top_k: int = field(default=2, metadata={"help": "KeepTop-K: experts kept per layer (paper: 2)."})
    expert_rank: int = field(
        default=2,
        metadata={
            "help": "Rank of each trained expert. 30 layers x 8 experts x 3 modules x r x (576+1536) params is "
            "3.04 MB of fp16 per unit of r: r=2 keeps the shipped generator under 12 MB."
        },
    )
    expert_alpha: float = field(default=4.0, metadata={"help": "LoRA alpha of each trained expert (s = alpha / r)."})
    expert_modules: tuple[str, ...] = field(
        default=FFN_MODULES, metadata={"help": "Modules inside each edge block that trained experts adapt."}
    )
    router_hidden: int = field(default=64, metadata={"help": "Width of f1 in R_i = BN(f2(SiLU(f1(m_i))))."})
    reader_lora_rank: int = field(default=8, metadata={"help": "Rank of the reader's trainable LoRA on q/v."})
    reader_lora_alpha: int = field(default=16, metadata={"help": "Alpha of the reader's LoRA."})
    max_description_tokens: int = field(
        default=2048,
        metadata={"help": "Longest system prompt (description + demos) the reader accepts, in reader tokens."},
    )

    def __post_init__(self) -> None:
        if self.experts not in EXPERT_KINDS:
            raise ValueError(f"unknown experts {self.experts!r}: choose one of {', '.join(EXPERT_KINDS)}")
        for name in ("n_experts", "top_k", "expert_rank", "router_hidden", "reader_lora_rank"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.experts == "trained" and self.top_k > self.n_experts:
            raise ValueError(f"top_k={self.top_k} exceeds n_experts={self.n_experts}: lower top_k")
        if self.max_description_tokens < 8:
            raise ValueError(f"max_description_tokens={self.max_description_tokens} is too small: use at least 8")
        object.__setattr__(self, "expert_modules", tuple(self.expert_modules))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LoraGenConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"generator config has unknown keys {unknown}: was it written by a newer version?")
        return cls(**known)


@dataclass(frozen=True)
class TrainConfig:
    """One training run of the generator: end to end, edge model frozen."""

    steps: int = field(default=1500, metadata={"help": "Optimiser steps in total (across resumed runs)."})
    batch_size: int = field(default=32, metadata={"help": "Examples per step (paper: 64)."})
    lr: float = field(
        default=3e-4,
        metadata={
            "help": "Peak learning rate. The paper's 2e-5 suits 4 epochs of an 8B reader, not minutes here; "
            "1e-3 diverged (NaN within 420 steps) on the H200 in bf16."
        },
    )
    reader_lr: float = field(default=1e-4, metadata={"help": "Peak learning rate of the reader's LoRA."})
    warmup_steps: int = field(default=50, metadata={"help": "Linear warm-up before the cosine decay (paper: 50)."})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay (paper: 0.1)."})
    balance_weight: float = field(default=0.01, metadata={"help": "Weight of the CV(gates)^2 balance loss (paper)."})
    seed: int = field(default=0, metadata={"help": "Seeds the data order and the initialisation."})
    max_minutes: float = field(
        default=9.0, metadata={"help": "Stop and checkpoint after this long, so one run fits a 10-minute slot."}
    )
    checkpoint_every: int = field(default=200, metadata={"help": "Steps between checkpoints."})
    grad_clip: float = field(default=1.0, metadata={"help": "Gradient norm clip."})

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.reader_lr < 0:
            raise ValueError(f"learning rates must be positive, got lr={self.lr}, reader_lr={self.reader_lr}")
        if self.warmup_steps < 0 or self.max_minutes <= 0:
            raise ValueError("warmup_steps must be >= 0 and max_minutes > 0")
