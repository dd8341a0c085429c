"""LoRA-Gen's modules: the reader with meta tokens, the per-layer routers with KeepTop-K, and the expert bank.

Algorithm (LoRA-Gen, arXiv 2506.11638, as ../../shared/LOGO.md section 6 reads it):
  1. The reader LM reads the system prompt followed by L meta tokens (one per edge layer), causal mask.
  2. Its final-layer hidden state at meta token i is m_i.
  3. Router i: logits = BN(f2(SiLU(f1(m_i)))).
  4. KeepTop-K: softmax, keep the K largest, renormalise, zero the rest -> gates g_i (n,).
  5. Layer i's delta is sum_j g_ij s_j B_ij A_ij on every adapted module (assemble.py), merged or hooked in.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from ..pool import LoraAdapter, StackedModule
from .assemble import gated_factors, lowrank_delta
from .config import LoraGenConfig


def decoder_layers_prefix(model: nn.Module) -> str:
    """The dotted name of the model's list of decoder blocks (e.g. 'model.layers' for Llama)."""
    n_layers = model.config.num_hidden_layers
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return name
    raise ValueError(f"{type(model).__name__} has no list of {n_layers} decoder blocks: it cannot be an edge model")


def edge_signature(model: nn.Module) -> dict:
    """The shapes a generator checkpoint depends on; another edge model with these shapes would also fit."""
    cfg = model.config
    return {
        "layers": cfg.num_hidden_layers,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": getattr(cfg, "intermediate_size", None),
        "vocab_size": cfg.vocab_size,
    }


class Reader(nn.Module):
    """A frozen causal LM with a trainable LoRA on q/v and L learned meta-token embeddings after the prompt."""

    def __init__(self, model: nn.Module, n_meta: int, rank: int, alpha: int):
        super().__init__()
        model.requires_grad_(False)
        lora = LoraConfig(r=rank, lora_alpha=alpha, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
        self.model = get_peft_model(model, lora)
        embed = model.get_input_embeddings().weight
        self.meta = nn.Parameter(torch.randn(n_meta, embed.shape[1]) * embed.detach().float().std().item())
        self.n_meta = n_meta

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask: (B, T), left-padded -> meta hidden states (B, L, d)."""
        base = self.model.get_base_model()
        embeds = base.get_input_embeddings()(input_ids)  # (B, T, d)
        meta = self.meta.to(embeds.dtype).expand(input_ids.shape[0], -1, -1)  # (B, L, d)
        inputs = torch.cat([embeds, meta], dim=1)  # (B, T+L, d)
        ones = attention_mask.new_ones(input_ids.shape[0], self.n_meta)
        mask = torch.cat([attention_mask, ones], dim=1)  # (B, T+L)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding does not shift the positions
        trunk = getattr(base, base.base_model_prefix)  # the decoder without its LM head: no vocab-sized logits
        hidden = trunk(inputs_embeds=inputs, attention_mask=mask, position_ids=positions).last_hidden_state
        return hidden[:, -self.n_meta :].float()  # (B, L, d)


class Routers(nn.Module):
    """L routers R_i = BN(f2(SiLU(f1(m_i)))), held as one batched weight per layer, and KeepTop-K."""

    def __init__(self, n_layers: int, d_model: int, hidden: int, n_experts: int, top_k: int):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(n_layers, hidden, d_model) / math.sqrt(d_model))
        self.b1 = nn.Parameter(torch.zeros(n_layers, hidden))
        self.w2 = nn.Parameter(torch.randn(n_layers, n_experts, hidden) / math.sqrt(hidden))
        self.b2 = nn.Parameter(torch.zeros(n_layers, n_experts))
        self.bn = nn.BatchNorm1d(n_layers * n_experts)  # per layer and expert: the same as L separate BNs
        self.n_layers, self.n_experts, self.top_k = n_layers, n_experts, top_k

    def logits(self, meta: torch.Tensor) -> torch.Tensor:
        """meta (B, L, d) -> router logits (B, L, n), in fp32 whatever the autocast (BN statistics need it)."""
        with torch.autocast(meta.device.type, enabled=False):
            return self._logits(meta.float())

    def _logits(self, meta: torch.Tensor) -> torch.Tensor:
        h = torch.einsum("bld,lhd->blh", meta, self.w1) + self.b1  # (B, L, h)
        z = torch.einsum("blh,lnh->bln", nn.functional.silu(h), self.w2) + self.b2  # (B, L, n)
        if self.training and z.shape[0] < 2:
            raise ValueError("router BatchNorm needs a batch of at least 2 in training: raise batch_size")
        return self.bn(z.reshape(z.shape[0], -1)).reshape_as(z)  # (B, L, n)

    def forward(self, meta: torch.Tensor) -> torch.Tensor:
        """meta (B, L, d) -> gates (B, L, n): KeepTop-K of the softmax, renormalised, exactly K non-zero."""
        return keep_top_k(self.logits(meta), self.top_k)


def keep_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Softmax over the last axis, keep the k largest, renormalise to sum 1, zero the rest."""
    probs = logits.float().softmax(-1)
    top = probs.topk(k, dim=-1)
    kept = torch.zeros_like(probs).scatter(-1, top.indices, top.values)
    return kept / kept.sum(-1, keepdim=True)


class ExpertBank(nn.Module):
    """Per adapted module kind (e.g. 'mlp.up_proj') and layer: n experts' A (n, r, d_in), B (n, d_out, r), s (n,).

    Trained experts are parameters (B starts at zero, so the untrained generator is the base model);
    zoo experts are frozen, non-persistent buffers filled from task adapters (a checkpoint names them only).
    """

    def __init__(self, layers_prefix: str, n_layers: int, names: Sequence[str]):
        super().__init__()
        self.layers_prefix, self.n_layers, self.names = layers_prefix, n_layers, tuple(names)
        self.kinds: list[str] = []

    @property
    def n_experts(self) -> int:
        return len(self.names)

    @classmethod
    def trained(cls, edge: nn.Module, config: LoraGenConfig) -> ExpertBank:
        prefix, n_layers = decoder_layers_prefix(edge), edge.config.num_hidden_layers
        bank = cls(prefix, n_layers, [f"expert_{j}" for j in range(config.n_experts)])
        n, r = config.n_experts, config.expert_rank
        for kind in config.expert_modules:
            target = edge.get_submodule(f"{prefix}.0.{kind}")
            target = getattr(target, "base", target)  # an engine's MixtureLinear wraps the nn.Linear as .base
            if not isinstance(target, nn.Linear):
                raise ValueError(
                    f"expert module {kind!r} is a {type(target).__name__} in the edge model: need nn.Linear"
                )
            a = torch.randn(n_layers, n, r, target.in_features) / math.sqrt(target.in_features)
            bank.register_parameter(f"{_key(kind)}_a", nn.Parameter(a))  # (L, n, r, d_in)
            bank.register_parameter(f"{_key(kind)}_b", nn.Parameter(torch.zeros(n_layers, n, target.out_features, r)))
            bank.register_buffer(f"{_key(kind)}_s", torch.full((n_layers, n), config.expert_alpha / r))
            bank.kinds.append(kind)
        return bank

    @classmethod
    def from_stacks(cls, edge: nn.Module, adapters: Sequence[LoraAdapter], stacks: dict[str, StackedModule]):
        """Zoo experts: `stacks` is AdapterPool.modules of these adapters on the edge model."""
        prefix, n_layers = decoder_layers_prefix(edge), edge.config.num_hidden_layers
        bank = cls(prefix, n_layers, [a.name for a in adapters])
        kinds = sorted({name[len(prefix) + 1 :].split(".", 1)[1] for name in stacks if name.startswith(prefix + ".")})
        for kind in kinds:
            per_layer = [stacks.get(f"{prefix}.{i}.{kind}") for i in range(n_layers)]
            if any(s is None for s in per_layer):
                missing = [i for i, s in enumerate(per_layer) if s is None]
                raise ValueError(f"zoo experts adapt {kind!r} in some layers only (missing {missing}): all or none")
            bank.register_buffer(f"{_key(kind)}_a", torch.stack([s.a.float() for s in per_layer]), persistent=False)
            bank.register_buffer(f"{_key(kind)}_b", torch.stack([s.b.float() for s in per_layer]), persistent=False)
            bank.register_buffer(f"{_key(kind)}_s", torch.stack([s.scaling.float() for s in per_layer]), False)
            bank.kinds.append(kind)
        return bank

    def factors(self, layer: int, kind: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Layer `layer`'s experts at `kind`: a (n, r, d_in), b (n, d_out, r), scaling (n,)."""
        key = _key(kind)
        return getattr(self, f"{key}_a")[layer], getattr(self, f"{key}_b")[layer], getattr(self, f"{key}_s")[layer]

    def module_name(self, layer: int, kind: str) -> str:
        return f"{self.layers_prefix}.{layer}.{kind}"


def _key(kind: str) -> str:
    return kind.replace(".", "__")


class LoraGenModel(nn.Module):
    """Reader + routers + experts: system-prompt tokens in, gates (B, L, n) out."""

    def __init__(self, reader: Reader, routers: Routers, experts: ExpertBank):
        super().__init__()
        self.reader, self.routers, self.experts = reader, routers, experts

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.routers(self.reader(input_ids, attention_mask))  # (B, L, n)

    def generator_state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint holds: everything trained plus BN statistics, never the frozen reader weights."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("reader.model.") or "lora_" in k}


@contextlib.contextmanager
def edge_delta(edge: nn.Module, experts: ExpertBank, gates: torch.Tensor) -> Iterator[None]:
    """Add each row's gated expert delta to the edge model's outputs while inside. gates: (B, L, n)."""
    handles = []
    try:
        for layer in range(experts.n_layers):
            for kind in experts.kinds:
                a, b, s = experts.factors(layer, kind)
                a_cat, b_cat = gated_factors(a, b, s, gates[:, layer])  # (n*r, d_in), (B, d_out, n*r)
                module = edge.get_submodule(experts.module_name(layer, kind))
                handles.append(module.register_forward_hook(_adder(a_cat, b_cat)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _adder(a_cat: torch.Tensor, b_cat: torch.Tensor):
    def hook(module, args, output):
        x = args[0]
        return output + lowrank_delta(x, a_cat.to(x.dtype), b_cat.to(x.dtype)).to(output.dtype)

    return hook
