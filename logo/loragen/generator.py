"""LoraGenerator: a task description (+ demos) -> a GeneratedLora for the edge model, saved as a PEFT adapter."""

from __future__ import annotations

import copy
import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig
from safetensors.torch import load_file, save_file

from ..base_model import BaseModel, load_base_model
from ..pool import ADAPTER_WEIGHTS, PEFT_PREFIX, AdapterPool, LoraAdapter, load_adapter
from .assemble import compact_factors
from .config import LoraGenConfig
from .model import ExpertBank, LoraGenModel, Reader, Routers, edge_delta, edge_signature
from .prompts import Demo, check_description, normalise_demos, prompt_digest, system_prompt

WEIGHTS = "generator.safetensors"
CONFIG = "generator_config.json"
CARD = "card.json"


@dataclass(frozen=True)
class GeneratedLora:
    """One generated adapter as plain values on the CPU: gates (layers x experts), factors, counts, timings."""

    description: str
    demos: tuple[Demo, ...]
    digest: str  # hash of description + demos
    edge_model: str
    expert_names: tuple[str, ...]
    gates: tuple[tuple[float, ...], ...]  # (L, n), each row sums to 1 with K non-zero
    rank: int
    reader_tokens: int  # the system prompt in the reader's chat template
    context_tokens: int  # the same system prompt in the edge model's chat template: what leaves its context
    timings: dict  # reader_ms, assemble_ms, total_ms
    factors: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)  # module -> A (r, d_in), B (d_out, r)

    @property
    def gate_array(self) -> np.ndarray:
        return np.asarray(self.gates, dtype=np.float32)  # (L, n)

    def card(self) -> dict:
        return {
            "kind": "LoRA-Gen generated adapter",
            "description": self.description,
            "description_hash": self.digest,
            "n_demos": len(self.demos),
            "edge_model": self.edge_model,
            "expert_names": list(self.expert_names),
            "gates": [list(row) for row in self.gates],
            "rank": self.rank,
            "reader_tokens": self.reader_tokens,
            "context_tokens": self.context_tokens,
            "timings": self.timings,
        }

    def save(self, directory: Path | str) -> Path:
        """A standard PEFT LoRA directory: adapter_model.safetensors, adapter_config.json and card.json.

        Gates and expert scalings are folded into B, so lora_alpha = r (scaling 1) reproduces the delta exactly.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for module, (a, b) in self.factors.items():
            tensors[f"{PEFT_PREFIX}{module}.lora_A.weight"] = torch.from_numpy(np.ascontiguousarray(a))
            tensors[f"{PEFT_PREFIX}{module}.lora_B.weight"] = torch.from_numpy(np.ascontiguousarray(b))
        save_file(tensors, str(directory / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        targets = sorted({m.rsplit(".", 1)[-1] for m in self.factors})
        config = LoraConfig(
            r=self.rank,
            lora_alpha=self.rank,
            target_modules=targets,
            lora_dropout=0.0,
            bias="none",
            task_type="CAUSAL_LM",
            base_model_name_or_path=self.edge_model,
            inference_mode=True,
        )
        config.save_pretrained(str(directory))
        (directory / CARD).write_text(json.dumps(self.card(), indent=2) + "\n")
        return directory


class LoraGenerator:
    """Reader + routers + experts bound to an edge model. `generate` is deterministic and cached by prompt hash."""

    def __init__(self, model: LoraGenModel, edge: BaseModel, reader_tokenizer, config: LoraGenConfig, cache_size=64):
        self.model, self.edge, self.reader_tokenizer, self.config = model.eval(), edge, reader_tokenizer, config
        self.device = next(edge.model.parameters()).device
        reader_positions = getattr(model.reader.model.get_base_model().config, "max_position_embeddings", None)
        limit = config.max_description_tokens
        self.max_prompt_tokens = min(limit, reader_positions - model.reader.n_meta) if reader_positions else limit
        self._cache: OrderedDict[str, GeneratedLora] = OrderedDict()
        self._cache_size = cache_size

    # ---------------------------------------------------------------- construction

    @classmethod
    def build(
        cls,
        config: LoraGenConfig | None = None,
        *,
        edge: BaseModel | None = None,
        reader: BaseModel | None = None,
        expert_adapters: Sequence[LoraAdapter] = (),
        device: str | None = None,
        seed: int = 0,
    ) -> LoraGenerator:
        """A fresh (untrained) generator. Zoo experts need `expert_adapters` (logo.pool.load_adapter each)."""
        config = config or LoraGenConfig()
        edge = edge or load_base_model(config.edge_model, device=device, dtype="float32")
        if reader is None:  # a separate frozen copy: the reader's LoRA must never touch the edge model
            reader = (
                BaseModel(copy.deepcopy(edge.model), edge.tokenizer, edge.name, edge.fingerprint)
                if config.reader_model == config.edge_model
                else load_base_model(config.reader_model, device=device, dtype="float32")
            )
        torch.manual_seed(seed)
        if config.experts == "zoo":
            if not expert_adapters:
                raise ValueError(
                    "experts='zoo' needs the task adapters it routes over: pass expert_adapters "
                    "(logo.pool.load_adapter each), or `logo gen --experts DIR` on the command line"
                )
            pool = AdapterPool(list(expert_adapters), edge.model)
            experts = ExpertBank.from_stacks(edge.model, pool.adapters, pool.modules)
        else:
            experts = ExpertBank.trained(edge.model, config)
        n_layers = edge.model.config.num_hidden_layers
        top_k = min(config.top_k, experts.n_experts)
        reader_module = Reader(reader.model, n_layers, config.reader_lora_rank, config.reader_lora_alpha)
        routers = Routers(n_layers, reader.model.config.hidden_size, config.router_hidden, experts.n_experts, top_k)
        model = LoraGenModel(reader_module, routers, experts).to(next(edge.model.parameters()).device)
        return cls(model, edge, reader.tokenizer, config)

    @classmethod
    def load(
        cls,
        directory: Path | str,
        *,
        edge: BaseModel | None = None,
        reader: BaseModel | None = None,
        expert_adapters: Sequence[LoraAdapter] = (),
        device: str | None = None,
    ) -> LoraGenerator:
        """A trained generator from `directory` (generator.safetensors + generator_config.json)."""
        directory = Path(directory)
        if not (directory / CONFIG).is_file() or not (directory / WEIGHTS).is_file():
            raise FileNotFoundError(f"{directory} is no generator checkpoint: it needs {CONFIG} and {WEIGHTS}")
        meta = json.loads((directory / CONFIG).read_text())
        config = LoraGenConfig.from_dict(meta["config"])
        generator = cls.build(config, edge=edge, reader=reader, expert_adapters=expert_adapters, device=device)
        found = edge_signature(generator.edge.model)
        if found != meta["edge_signature"]:
            raise ValueError(
                f"generator checkpoint {directory} was trained for an edge model with {meta['edge_signature']}, "
                f"but edge model {generator.edge.name!r} has {found}: load the edge model it was trained for "
                f"({config.edge_model!r}) or train a generator for this one"
            )
        if list(generator.expert_names) != meta["expert_names"]:
            raise ValueError(
                f"generator checkpoint {directory} routes over experts {meta['expert_names']}, "
                f"but {list(generator.expert_names)} were given: pass the same adapters in the same order"
            )
        state = load_file(str(directory / WEIGHTS), device=str(generator.device))
        own = generator.model.generator_state()
        if set(state) != set(own):
            raise ValueError(
                f"generator checkpoint {directory} does not match its config: "
                f"missing {sorted(set(own) - set(state))[:3]}, unexpected {sorted(set(state) - set(own))[:3]}"
            )
        generator.model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)
        generator.model.eval()
        return generator

    def save_checkpoint(self, directory: Path | str, card: dict | None = None) -> Path:
        """fp16 safetensors of the trained parts, the config (with the edge signature) and a card."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in self.model.generator_state().items()}
        save_file(state, str(directory / WEIGHTS), metadata={"format": "pt"})
        meta = {
            "config": self.config.to_dict(),
            "edge_signature": edge_signature(self.edge.model),
            "expert_names": list(self.expert_names),
        }
        (directory / CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
        size = (directory / WEIGHTS).stat().st_size
        card = {"kind": "LoRA-Gen generator", "weights_bytes": size, **(card or {})}
        (directory / CARD).write_text(json.dumps(card, indent=2) + "\n")
        return directory

    # ---------------------------------------------------------------- reading

    @property
    def expert_names(self) -> tuple[str, ...]:
        return self.model.experts.names

    def reader_ids(self, text: str) -> list[int]:
        """The system prompt in the reader's chat template, as token ids."""
        return _chat_ids(self.reader_tokenizer, text)

    def context_tokens(self, text: str) -> int:
        """How many edge tokens the system prompt adds when carried in the edge model's context."""
        return len(_chat_ids(self.edge.tokenizer, text))

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded reader ids and mask (B, T); a prompt over the reader's limit is refused."""
        rows = [self.reader_ids(t) for t in texts]
        for i, ids in enumerate(rows):
            if len(ids) > self.max_prompt_tokens:
                raise ValueError(
                    f"system prompt {i} is {len(ids)} reader tokens, over the limit of {self.max_prompt_tokens} "
                    f"(LoraGenConfig.max_description_tokens): shorten the description or give fewer demos"
                )
        width = max(len(r) for r in rows)
        pad = self.reader_tokenizer.pad_token_id or 0
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        return ids, mask

    def gates(self, texts: Sequence[str]) -> torch.Tensor:
        """System prompts -> gates (B, L, n), with gradients when the model is in training mode."""
        ids, mask = self.encode(texts)
        return self.model(ids, mask)

    # ---------------------------------------------------------------- generation

    def generate(self, description: str, demos: Sequence = (), *, allow_empty: bool = False) -> GeneratedLora:
        """1. check and hash the prompt; 2. one reader pass -> gates; 3. assemble each module's compact factors.

        `allow_empty` admits an empty description: only for the evaluation's empty-description control.
        """
        description = (
            description.strip() if allow_empty and isinstance(description, str) else check_description(description)
        )
        demos = normalise_demos(demos)
        digest = prompt_digest(description, demos)
        if digest in self._cache:
            self._cache.move_to_end(digest)
            return self._cache[digest]
        text = system_prompt(description, demos)
        start = time.perf_counter()
        self.model.eval()  # BN over a batch of one needs its running statistics
        with torch.no_grad():
            gates = self.gates([text])[0].float()  # (L, n)
            read = time.perf_counter()
            factors = self._factors(gates)
        done = time.perf_counter()
        result = GeneratedLora(
            description=description,
            demos=demos,
            digest=digest,
            edge_model=self.edge.name,
            expert_names=self.expert_names,
            gates=tuple(tuple(float(g) for g in row) for row in gates.cpu().tolist()),
            rank=next(iter(factors.values()))[0].shape[0],
            reader_tokens=len(self.reader_ids(text)),
            context_tokens=self.context_tokens(text),
            timings={
                "reader_ms": 1000 * (read - start),
                "assemble_ms": 1000 * (done - read),
                "total_ms": 1000 * (done - start),
            },
            factors=factors,
        )
        self._cache[digest] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def _factors(self, gates: torch.Tensor) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """gates (L, n) -> module -> (A (K*r, d_in), B (d_out, K*r)) as float32 arrays."""
        experts = self.model.experts
        factors = {}
        for layer in range(experts.n_layers):
            for kind in experts.kinds:
                a, b, s = experts.factors(layer, kind)
                a_cat, b_cat = compact_factors(a.float(), b.float(), s.float(), gates[layer])
                factors[experts.module_name(layer, kind)] = (a_cat.cpu().numpy(), b_cat.cpu().numpy())
        return factors

    def edge_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """The edge model's logits with each row's gated delta hooked in (training's path). gates: (B, L, n)."""
        with edge_delta(self.edge.model, self.model.experts, gates):
            return self.edge.model(input_ids=input_ids, attention_mask=attention_mask).logits


def _chat_ids(tokenizer, text: str) -> list[int]:
    if tokenizer.chat_template:
        rendered = tokenizer.apply_chat_template([{"role": "system", "content": text}], tokenize=False)
        return tokenizer(rendered, add_special_tokens=False)["input_ids"]
    return tokenizer(text)["input_ids"]


def experts_named_by(generator: Path | str, pool: Path | str) -> list[LoraAdapter]:
    """The adapters under `pool` that the zoo-experts generator checkpoint at `generator` names as its experts,
    in its order (what `LoraGenerator.load` needs as `expert_adapters`)."""
    generator, pool = Path(generator), Path(pool)
    if not pool.is_dir():
        raise ValueError(f"expert pool {pool} is not a directory: give the folder of the generator's task adapters")
    names = json.loads((generator / CONFIG).read_text())["expert_names"] if (generator / CONFIG).is_file() else []
    missing = [name for name in names if not (pool / name).is_dir()]
    if missing:
        raise ValueError(
            f"expert pool {pool} lacks {len(missing)} of the generator's experts ({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''}): give the pool it was trained on"
        )
    return [load_adapter(pool / name) for name in names]
