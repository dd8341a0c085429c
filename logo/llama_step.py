"""The engine's own decode step for Llama-architecture models: static buffers, captured once per engine and shape.

Why: a step of transformers' forward is hundreds of small kernels (launch-bound for a 135M model), and a CUDA
graph captured per request pays the capture on every request. Here, per engine:

  1. The adapted model's linear weights are copied once into owned buffers, q/k/v and gate/up concatenated
     (one matmul each). A fused request (weights merged into the base layers) copies its merged weights in;
     the next unmerged request copies the originals back.
  2. A `StepGraph` per (batch rows, cache-length bucket, rank bucket, adapted groups) owns a static KV cache,
     the step's input buffers (token, position per row, cache slot) and, for each group that an adapter of the
     request targets, two factor buffers per block: the members' A side by side, a_cat (B, d_in, n*R), and
     their B as one block-diagonal matrix, b_blocks (B, n*R, sum d_out), whose rows j*R:(j+1)*R hold member
     j's B in member j's output columns and zeros elsewhere. The request's factors are copied into the
     diagonal blocks, padded with zeros to the rank bucket R (zero columns and rows add exact zeros); groups
     no adapter targets, and the base model (rank 0), have no buffers and no low-rank work.
  3. The step (RMSNorm, rotary, GQA attention over the static cache by scaled_dot_product_attention, SiLU MLP)
     is one function. Each group is one matmul over its concatenated weight plus, when adapted, its members'
     low-rank terms in two more matmuls: u = x @ a_cat, then y + u @ b_blocks, which is sum_j x @ a_j @ b_j placed in
     member j's columns, the math of logo.mixture.MixtureLinear. A graph of one row folds a_cat into its own
     copy of the adapted groups' weights (one matmul gives x @ W^T and u) and adds u @ b_blocks into y in place.
     Kernels per block of the 8B-shaped model on an H200 (cuBLAS splits the tall matmuls in two): base 16, the
     mixture 22 unfolded and 19 folded (BENCHMARKS.md). On a GPU each decoder block goes through
     torch.compile (one compile serves every block, their shapes being equal) and the whole step is captured
     once in a CUDA graph, then replayed per token. On the CPU the same step runs eagerly over the same
     buffers (that is how it is tested).
  4. The prompt is prefilled by the same blocks over the same buffers (block_prefill: the step's maths for T
     tokens, attention by scaled_dot_product_attention under a causal and padding mask), eagerly, writing its
     keys and values into the static cache's first slots. Against the model's own forward into a DynamicCache
     and a copy: 1.7-4.3x faster on the 2-core CPU, and on an H200 the embedded model's base request spends
     about 24 ms before its first decoded token instead of 33 (BENCHMARKS.md).

`fallback_reason(model, adapted)` says why a model cannot use this step (the engine then uses logo.decoding's
StaticSteps); `LlamaSteps` has the interface of logo.decoding's step kinds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .mixture import AdaptedModel, Factors, MixtureLinear
from .probe import position_ids

GROUPS = {"qkv": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "o": ("self_attn.o_proj",),
          "gate_up": ("mlp.gate_proj", "mlp.up_proj"), "down": ("mlp.down_proj",)}  # fmt: skip
MEMBER_GROUP = {member: group for group, members in GROUPS.items() for member in members}
LENGTH_BUCKET = 256  # cache lengths are rounded up to a multiple: one graph serves every request up to it
RANK_BUCKET = 64  # factor widths (k * r) are rounded up to a multiple: zero columns add exact zeros
MAX_GRAPHS = 6  # captured shapes kept per model (each holds its KV cache)
GRAPHS_ATTRIBUTE = "logo_step_graphs"  # where StepGraphs.of keeps them on the model
FOLD_ONE_ROW = True  # a one-row graph folds the members' A into its own copy of the adapted groups' weights
# (False: the per-row layout for one row too, what the fold was measured against)
PACK_CPU = True  # on the CPU the weights are reordered once for oneDNN's inner product (False: plain F.linear)


def _linear(model: nn.Module, name: str) -> nn.Linear:
    module = model.get_submodule(name)
    return module.base if isinstance(module, MixtureLinear) else module


def adapted_groups(names: Iterable[str]) -> tuple[str, ...]:
    """The groups (GROUPS' keys, in its order) with a member among these module names (model.layers.{i}.{member}).

    A group adapted in some blocks only gets buffers in every block; the others hold zeros (exact zeros).
    """
    groups = {MEMBER_GROUP.get(name.split(".", 3)[-1]) for name in names}
    return tuple(group for group in GROUPS if group in groups)


def fallback_reason(model: nn.Module, adapted: AdaptedModel) -> str | None:
    """Why this model cannot decode with the hand-written step (None: it can)."""
    config = model.config
    if getattr(config, "model_type", None) != "llama":
        return f"model_type {getattr(config, 'model_type', None)!r} is not 'llama'"
    if getattr(config, "hidden_act", "silu") != "silu" or getattr(config, "pretraining_tp", 1) != 1:
        return "the MLP is not a plain SiLU MLP"
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        return "linear layers with biases"
    rope = getattr(config, "rope_scaling", None) or getattr(config, "rope_parameters", None) or {}
    if isinstance(rope, dict) and rope.get("rope_type", rope.get("type")) == "dynamic":
        return "dynamic rotary scaling"
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "layers") or not hasattr(inner, "rotary_emb"):
        return "no model.model.layers / rotary_emb"
    members = {f"model.layers.{i}.{m}" for i in range(len(inner.layers)) for g in GROUPS.values() for m in g}
    others = sorted(set(adapted.layers) - members)
    if others:
        return f"adapted modules outside the decoder blocks' linear layers: {others[:3]}"
    for name in sorted(members):
        linear = _linear(model, name)
        if type(linear) is not nn.Linear or not linear.weight.is_floating_point():
            return f"{name} is a {type(linear).__name__}, not a floating-point nn.Linear (a quantized format?)"
        if linear.bias is not None:
            return f"{name} has a bias"
    return None


def _packable(weight: torch.Tensor) -> bool:
    """Whether oneDNN can reorder (and multiply by) a CPU weight of this dtype here."""
    if not (weight.device.type == "cpu" and torch.backends.mkldnn.is_available()):
        return False
    try:
        probe = torch.ones(2, 2, dtype=weight.dtype)
        _matmul(probe, _pack(probe))
    except RuntimeError:  # e.g. a dtype oneDNN has no inner product for on this CPU
        return False
    return True


def _pack(weight: torch.Tensor) -> torch.Tensor:
    """A (d_out, d_in) CPU weight reordered into oneDNN's blocked layout for one-row inputs (an opaque tensor)."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), 1)


def _matmul(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x @ W^T: oneDNN's inner product for a weight from _pack, else F.linear. x: (..., d_in) -> (..., d_out).

    Why packed on the CPU: at batch 1 a decode step is matrix-vector products, bound by reading the weights.
    MKL's plain fp32 product of a (d_out, d_in) weight read the embedded model's weights at 13-15 GB/s on the
    development machine, oneDNN's from its own layout at 26-28 GB/s (fp32 and bf16; `sum` reads at 35-37).
    The results equal F.linear's up to the order of the float additions.
    """
    if weight.is_mkldnn:
        return torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], "")
    return F.linear(x, weight)


class LlamaWeights:
    """Step 1: the decoder blocks' linear weights in owned buffers, q/k/v and gate/up concatenated (d_out, d_in).

    On the CPU (where oneDNN is available) each buffer is packed for oneDNN (_matmul), and so is the output
    layer's weight, once more (tied to the embedding in small models): 113 MB in float32 for the embedded model.
    """

    def __init__(self, model: nn.Module, pack: bool = True):
        self.model = model
        self.n_layers = len(model.model.layers)
        self.packed = pack and _packable(model.model.layers[0].self_attn.o_proj.weight)
        self.buffers: list[dict[str, torch.Tensor]] = []
        for i in range(self.n_layers):
            self.buffers.append({group: self._buffer(i, group) for group in GROUPS})
        self.lm_head = _pack(model.lm_head.weight.detach()) if self.packed else None
        self._merged: set[tuple[int, str]] = set()  # (block, group) buffers that hold merged weights

    def _buffer(self, block: int, group: str) -> torch.Tensor:
        parts = [_linear(self.model, f"model.layers.{block}.{m}").weight.detach() for m in GROUPS[group]]
        weight = torch.cat(parts, dim=0)  # (sum d_out, d_in)
        return _pack(weight) if self.packed else weight

    def refresh(self, adapted: AdaptedModel) -> None:
        """Copy in the groups whose weights are merged now (a fused request) or were merged at their last copy."""
        merged = {
            (i, group)
            for i in range(self.n_layers)
            for group, members in GROUPS.items()
            if any(getattr(adapted.layers.get(f"model.layers.{i}.{m}"), "merged", False) for m in members)
        }
        for i, group in merged | self._merged:
            if self.packed:  # repacked and replaced: every StepGraph reads the same dicts (nothing is captured)
                self.buffers[i][group] = self._buffer(i, group)
                continue
            parts = [_linear(self.model, f"model.layers.{i}.{m}").weight for m in GROUPS[group]]
            torch.cat(parts, dim=0, out=self.buffers[i][group])  # in place: captured graphs read these addresses
        self._merged = merged


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' LlamaRMSNorm, operation for operation (float32 statistics, weight applied in x's dtype)."""
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding as transformers applies it (rotate_half). x: (B, h, 1, hd); cos, sin: (B, 1, 1, hd)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _project(x: torch.Tensor, weight: torch.Tensor, lora: tuple | None) -> torch.Tensor:
    """x @ W^T for a group of concatenated layers, plus each member's x @ a_t @ b_t in its columns.
    x: (B, T, d_in), T = 1 in a step, the prompt's length in the prefill.

    The low-rank terms of all members are two matmuls: b_blocks is block-diagonal (step 2), so u @ b_blocks
    puts member j's u_j @ b_j in member j's columns and adds exact zeros elsewhere. With one row, a_cat is None:
    the members' A are the last n*R rows of `weight` (the graph's own copy, StepGraph._folded), so one matmul
    gives both x @ W^T and u.
    """
    y = _matmul(x, weight)  # (B, T, sum d_out), or (1, T, sum d_out + n*R) folded
    if lora is None:
        return y
    a_cat, b_blocks = lora  # (B, d_in, n*R) or None, (B, n*R, sum d_out)
    if a_cat is not None:
        return y + (x @ a_cat) @ b_blocks  # (B, T, sum d_out): torch.compile fuses the add into its consumer
    out = b_blocks.shape[-1]
    if x.shape[1] > 1:  # a prompt: each token's u is its last n*R columns
        return y[..., :out] + y[..., out:] @ b_blocks
    flat = y.view(1, -1)  # (1, sum d_out + n*R): x @ W^T, then u
    _add_low_rank_(flat[:, :out], flat[:, out:], b_blocks[0])
    return y[..., :out]


@torch.library.custom_op("logo::add_low_rank_", mutates_args=("y",))
def _add_low_rank_(y: torch.Tensor, u: torch.Tensor, b: torch.Tensor) -> None:
    """y += u @ b in place: one GEMM that accumulates into y (beta = 1). Against `y + u @ b`, whose add
    torch.compile fuses into the next kernel, the kernel count is the same and the one-row step of 8 blocks of
    the 8B-shaped model 22 us faster on an H200 (1.537 against 1.559 ms; base 1.422, unfolded 1.624)."""
    y.addmm_(u, b)


@_add_low_rank_.register_fake
def _(y: torch.Tensor, u: torch.Tensor, b: torch.Tensor) -> None:
    return None


def _attention_inputs(h, cos, sin, norms, weights, loras, shape):
    """A block's q, k and v of every token, rotated: (B, nh, T, hd), (B, n_kv, T, hd) twice. h: (B, T, d)."""
    n_heads, n_kv, head_dim, eps, q_size, kv_size, _ = shape
    rows, length = h.shape[:2]
    x = _rms_norm(h, norms[0], eps)
    q, k, v = _project(x, weights["qkv"], loras["qkv"]).split([q_size, kv_size, kv_size], dim=-1)
    q = _rotate(q.view(rows, length, n_heads, head_dim).transpose(1, 2), cos, sin)
    k = _rotate(k.view(rows, length, n_kv, head_dim).transpose(1, 2), cos, sin)
    return q, k, v.view(rows, length, n_kv, head_dim).transpose(1, 2)


def _after_attention(h, attn, norms, weights, loras, shape):
    """The rest of a block: the output projection of attn (B, T, q_size) and its residual, then the SiLU MLP."""
    *_, eps, _, _, inter = shape
    h = h + _project(attn, weights["o"], loras["o"])
    x = _rms_norm(h, norms[1], eps)
    gate, up = _project(x, weights["gate_up"], loras["gate_up"]).split([inter, inter], dim=-1)
    return h + _project(F.silu(gate) * up, weights["down"], loras["down"])


def block_step(h, cos, sin, valid, slot, k_cache, v_cache, norms, weights, loras, shape):
    """One decoder block for one new token per row. h: (B, 1, d); caches (B, n_kv, S, hd), written at `slot`."""
    n_heads, n_kv, head_dim, _, q_size, _, _ = shape
    rows = h.shape[0]
    q, k, v = _attention_inputs(h, cos, sin, norms, weights, loras, shape)  # (B, nh, 1, hd), (B, n_kv, 1, hd) x2
    k_cache.index_copy_(2, slot, k)
    v_cache.index_copy_(2, slot, v)
    # attention of one query per head over the cache, heads grouped by the key-value head they share (GQA)
    groups = q.reshape(rows, n_kv, n_heads // n_kv, head_dim)  # (B, n_kv, G, hd); head = kv * G + g
    scores = (groups @ k_cache.transpose(-1, -2)).float() * head_dim**-0.5  # (B, n_kv, G, S)
    scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
    attn = scores.softmax(dim=-1).to(v_cache.dtype) @ v_cache  # (B, n_kv, G, hd)
    attn = attn.reshape(rows, 1, q_size)  # heads in order, as transformers concatenates them
    return _after_attention(h, attn, norms, weights, loras, shape)


def block_prefill(h, cos, sin, allowed, k_cache, v_cache, norms, weights, loras, shape):
    """One decoder block over whole prompts (block_step's maths for T tokens). h: (B, T, d); cos, sin:
    (B, 1, T, hd); allowed (B, 1, T, T): query i may attend key j; caches (B, n_kv, S, hd), slots 0..T-1 written."""
    rows, length = h.shape[:2]
    q, k, v = _attention_inputs(h, cos, sin, norms, weights, loras, shape)  # (B, nh, T, hd), (B, n_kv, T, hd) x2
    k_cache[:, :, :length].copy_(k)
    v_cache[:, :, :length].copy_(v)
    # head h reads key-value head h // G, as block_step groups them
    attn = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, enable_gqa=True)  # (B, nh, T, hd)
    return _after_attention(h, attn.transpose(1, 2).reshape(rows, length, -1), norms, weights, loras, shape)


@dataclass(frozen=True)
class GraphKey:
    rows: int
    length: int  # cache slots (a multiple of LENGTH_BUCKET)
    rank: int  # factor width per module (a multiple of RANK_BUCKET; 0: the base model, no low-rank terms)
    groups: tuple[str, ...] = ()  # the groups with low-rank terms (adapted_groups; () with rank 0)


class StepGraph:
    """Step 2-3: the static buffers of one shape and, on a GPU, the step captured over them."""

    def __init__(self, model: nn.Module, weights: LlamaWeights, key: GraphKey, compiled_block):
        config = model.config
        first = model.model.layers[0]
        param = first.self_attn.o_proj.weight
        device, dtype = param.device, param.dtype
        self.model, self.weights, self.key = model, weights, key
        n_heads, n_kv = config.num_attention_heads, config.num_key_value_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
        self.shape = (
            n_heads, n_kv, head_dim, config.rms_norm_eps, n_heads * head_dim, n_kv * head_dim, config.intermediate_size
        )  # fmt: skip
        rows, length = key.rows, key.length
        cache_shape = (rows, n_kv, length, head_dim)
        self.k_cache = [torch.zeros(cache_shape, device=device, dtype=dtype) for _ in weights.buffers]
        self.v_cache = [torch.zeros(cache_shape, device=device, dtype=dtype) for _ in weights.buffers]
        self.valid = torch.zeros(rows, length, dtype=torch.bool, device=device)  # (B, S): slots a row may attend to
        self.step_ids = torch.zeros(rows, 1, dtype=torch.long, device=device)  # (B, 1)
        self.step_pos = torch.zeros(rows, 1, dtype=torch.long, device=device)  # (B, 1): rotary position per row
        self.slot = torch.zeros(1, dtype=torch.long, device=device)  # the cache slot of this step (all rows)
        # plain tensors (not Parameters) that share the norms' storage: torch.compile then sees equal inputs per block
        self.norms = [
            (b.input_layernorm.weight.detach(), b.post_attention_layernorm.weight.detach()) for b in model.model.layers
        ]
        # per block: group -> (a_cat (B, d_in, n*R) or None where folded, b_blocks (B, n*R, sum d_out)), None
        # where not adapted; the weights each block reads (the shared buffers, or this graph's folded copies)
        # (not on the CPU: a packed weight has no rows to write A into)
        self.folded = FOLD_ONE_ROW and key.rows == 1 and key.rank > 0 and not weights.packed
        self.loras: list[dict[str, tuple[torch.Tensor | None, torch.Tensor] | None]] = []
        self.block_weights: list[dict[str, torch.Tensor]] = (
            [dict(layer) for layer in weights.buffers] if self.folded else weights.buffers
        )
        self.factor_buffers: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # module -> its views into the above
        for i in range(weights.n_layers):
            self.loras.append(
                {group: self._lora_buffers(i, group) if group in key.groups else None for group in GROUPS}
            )
        self.block = compiled_block or block_step
        self.cuda = device.type == "cuda"
        self.graph: torch.cuda.CUDAGraph | None = None
        self.logits: torch.Tensor | None = None
        self.lock = threading.Lock()  # one request at a time owns these buffers

    def _lora_buffers(self, block: int, group: str) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Step 2: one group's a_cat (B, d_in, n*R) and block-diagonal b_blocks (B, n*R, sum d_out), zeros.

        Each member's views go into factor_buffers: a_cat's columns j*R:(j+1)*R and b_blocks' diagonal block
        (rows j*R:(j+1)*R, the member's output columns). Nothing writes the blocks off the diagonal.
        A graph of one row folds a_cat into its own copy of the group's weight instead (_folded); a_cat is None.
        """
        rows, rank = self.key.rows, self.key.rank
        weight = self.weights.buffers[block][group]  # (sum d_out, d_in): the factors take its dtype
        names = [f"model.layers.{block}.{member}" for member in GROUPS[group]]
        like = {"device": weight.device, "dtype": weight.dtype}
        if self.folded:
            a_cat = self._folded(block, group, rank * len(names))
        else:
            a_cat = torch.zeros(rows, weight.shape[1], rank * len(names), **like)
        b_blocks = torch.zeros(rows, rank * len(names), weight.shape[0], **like)
        column = 0
        for j, name in enumerate(names):
            inner = slice(j * rank, (j + 1) * rank)
            outer = slice(column, column + _linear(self.model, name).out_features)
            self.factor_buffers[name] = (a_cat[:, :, inner], b_blocks[:, inner, outer])  # (B, d_in, R), (B, R, d_m)
            column = outer.stop
        return (None if self.folded else a_cat), b_blocks

    def _folded(self, block: int, group: str, width: int) -> torch.Tensor:
        """This graph's copy of a group's weight with `width` zero rows below it, for the members' A: returns
        those rows as a_cat's view (1, d_in, width). Its own copy, because the shared buffers serve every graph
        (two can serve two requests at once) and hold merged weights during a fused request; a mixture request
        never runs while its weights are merged (AdaptedModel's lock), so the model's weights are the originals.
        Costs the adapted groups' weights once more (on the 8B-shaped benchmark, q/k/v and o with 1280 rows of A
        per block: 3.0 GB, about what a fused merge costs).
        """
        parts = [_linear(self.model, f"model.layers.{block}.{m}").weight for m in GROUPS[group]]
        rows = parts[0].new_zeros(width, parts[0].shape[1])
        folded = torch.cat([*parts, rows], dim=0)  # (sum d_out + width, d_in)
        self.block_weights[block][group] = folded
        return folded[-width:].T[None]  # (1, d_in, width)

    def load_factors(self, factors: Factors | None) -> None:
        """Copy a request's factors in: a_t (B or 1, d_in, R') into the first R' columns of its A view, b_t into
        the first R' rows of its diagonal block, zeros after (exact zeros)."""
        for name, (a_buf, b_buf) in self.factor_buffers.items():
            if factors is None or name not in factors:
                a_buf.zero_()
                b_buf.zero_()
                continue
            a_t, b_t = factors[name]
            width = a_t.shape[-1]
            a_buf[..., :width].copy_(a_t)
            a_buf[..., width:].zero_()
            b_buf[:, :width].copy_(b_t)
            b_buf[:, width:].zero_()

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        """The output layer over the last token's normed hidden state (B, d) -> (B, V); packed on the CPU."""
        head = self.weights.lm_head
        return self.model.lm_head(h) if head is None else _matmul(h, head)

    def forward_prompt(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Step 4: left-padded prompts (B, T) through the same blocks and buffers, eagerly; their keys and values
        fill the cache's first T slots, zeros after. Returns the last token's logits (B, V) and readies the step.
        """
        inner, length = self.model.model, input_ids.shape[1]
        valid = attention_mask.bool()  # (B, T)
        positions = position_ids(attention_mask)  # (B, T)
        h = inner.embed_tokens(input_ids)  # (B, T, d)
        cos, sin = inner.rotary_emb(h, positions)  # (B, T, hd) each
        causal = torch.ones(length, length, dtype=torch.bool, device=h.device).tril()
        # a real token sees the real tokens up to itself; a padding token only itself (never an empty softmax)
        allowed = (causal & valid[:, None, :]) | torch.eye(length, dtype=torch.bool, device=h.device)  # (B, T, T)
        for i in range(self.weights.n_layers):
            h = block_prefill(
                h, cos[:, None], sin[:, None], allowed[:, None], self.k_cache[i], self.v_cache[i],
                self.norms[i], self.block_weights[i], self.loras[i], self.shape,
            )  # fmt: skip
            self.k_cache[i][:, :, length:].zero_()
            self.v_cache[i][:, :, length:].zero_()
        logits = self._logits(inner.norm(h[:, -1]))  # (B, V)
        self.valid.zero_()
        self.valid[:, :length].copy_(valid)
        self.step_pos.copy_(positions[:, -1:] + 1)
        self.slot.fill_(length)
        return logits

    def forward_step(self) -> torch.Tensor:
        """The step over the static buffers: logits (B, V) of the tokens in step_ids; advances position and slot."""
        inner = self.model.model
        h = inner.embed_tokens(self.step_ids)  # (B, 1, d)
        cos, sin = inner.rotary_emb(h, self.step_pos)  # (B, 1, hd) each
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, 1, hd)
        self.valid.index_fill_(1, self.slot, True)
        valid, k_caches, v_caches = self.valid, self.k_cache, self.v_cache
        if not self.cuda:  # a captured step reads every slot (fixed shapes); the eager one the slots written so far
            live = int(self.slot) + 1
            valid = valid[:, :live]
            k_caches, v_caches = ([c[:, :, :live] for c in caches] for caches in (k_caches, v_caches))
        for i in range(self.weights.n_layers):
            h = self.block(
                h, cos, sin, valid, self.slot, k_caches[i], v_caches[i],
                self.norms[i], self.block_weights[i], self.loras[i], self.shape,
            )  # fmt: skip
        logits = self._logits(inner.norm(h[:, -1]))  # (B, V)
        self.step_pos.add_(1)
        self.slot.add_(1)
        return logits

    def capture(self) -> None:
        """Warm the step up on a side stream (compiles, autotunes) and capture it; the caches are reset after."""
        device = self.step_ids.device
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                self.slot.fill_(self.key.length - 1)
                self.forward_step()
            self.slot.fill_(self.key.length - 1)
            graph = torch.cuda.CUDAGraph()
            graph.capture_begin(capture_error_mode="thread_local")
            try:
                self.logits = self.forward_step()
                # the greedy choice feeds the next replay itself (LlamaSteps.step_greedy); a sampled or
                # host-fed step overwrites step_ids before its replay
                self.step_ids.copy_(self.logits.argmax(dim=-1, keepdim=True))
            finally:
                graph.capture_end()
        torch.cuda.current_stream(device).wait_stream(stream)
        self.graph = graph

    def step(self) -> torch.Tensor:
        if self.graph is None:
            return self.forward_step()
        self.graph.replay()
        return self.logits


class LlamaSteps:
    """Prefill and steps of one request over a StepGraph (the interface of logo.decoding's DynamicSteps)."""

    def __init__(self, model, graph: StepGraph, input_ids, attention_mask, factors: Factors | None):
        self.model, self.graph = model, graph
        self.input_ids, self.mask = input_ids, attention_mask
        self.cuda_graph = graph.graph is not None
        graph.load_factors(factors)

    def prefill(self) -> torch.Tensor:
        """Step 4: the prompt through the graph's own blocks (StepGraph.forward_prompt): logits (B, V)."""
        return self.graph.forward_prompt(self.input_ids, self.mask)

    def step(self, chosen: torch.Tensor) -> torch.Tensor:
        self.graph.step_ids.copy_(chosen[:, None])
        return self.graph.step()

    @property
    def chains_greedy(self) -> bool:
        """Whether step_greedy can run: the captured graph writes its own argmax into the next step's input."""
        return self.cuda_graph

    def feed(self, chosen: torch.Tensor) -> None:
        """The first step's input (B,), chosen from the prefill's logits."""
        self.graph.step_ids.copy_(chosen[:, None])

    def step_greedy(self) -> torch.Tensor:
        """One replay without the host: it reads the argmax the previous replay (or `feed`) left in step_ids and
        leaves its own there. Returns that buffer (B, 1), overwritten by the next replay."""
        self.graph.graph.replay()
        return self.graph.step_ids


class StepGraphs:
    """Per engine (per model): the weight buffers and the StepGraph of each shape, created on first use.

    `steps(...)` returns LlamaSteps over a free StepGraph of the request's shape, or None when that shape's
    graph is busy with another request (the caller then decodes on its own, as before).
    """

    def __init__(self, model: nn.Module, adapted: AdaptedModel):
        self.model, self.adapted = model, adapted
        self._weights: LlamaWeights | None = None
        self._graphs: dict[GraphKey, StepGraph] = {}
        self._lock = threading.Lock()
        self._compiled = None
        self.compile_error: str | None = None
        self.pack = PACK_CPU  # read when the weights are first copied (bench.engine_cpu's plain-weights row)

    @classmethod
    def of(cls, model: nn.Module) -> StepGraphs:
        """The model's StepGraphs, created and attached on first use (shared by every engine on the model)."""
        graphs = model.__dict__.get(GRAPHS_ATTRIBUTE)
        if graphs is None:
            graphs = model.__dict__.setdefault(GRAPHS_ATTRIBUTE, cls(model, AdaptedModel.of(model)))
        return graphs

    @property
    def reason(self) -> str | None:
        """Why the model cannot use the hand-written step (None: it can); adapted layers may be added later."""
        return fallback_reason(self.model, self.adapted)

    def _block(self, device: torch.device):
        """block_step through torch.compile on a GPU (once per engine); its error is kept and printed, never fatal."""
        if device.type != "cuda" or self.compile_error is not None:
            return None
        if self._compiled is None:
            try:
                self._compiled = torch.compile(block_step, fullgraph=True)  # shapes made dynamic on a recompile
            except Exception as error:  # a failing compile falls back to the eager block, with its reason
                self.compile_error = f"{type(error).__name__}: {error}"[:300]
                print(f"# logo: torch.compile of the decode block failed, eager block used: {self.compile_error}")
        return self._compiled

    def key(self, rows: int, length: int, factors: Factors | None) -> GraphKey:
        width = max((a.shape[-1] for a, _ in (factors or {}).values()), default=0)
        rank = -(-width // RANK_BUCKET) * RANK_BUCKET
        groups = adapted_groups(factors or {}) if rank else ()
        return GraphKey(rows, -(-length // LENGTH_BUCKET) * LENGTH_BUCKET, rank, groups)

    def acquire(self, rows: int, length: int, factors: Factors | None) -> StepGraph | None:
        """The StepGraph of this shape, locked for the caller (release with graph.lock.release()); None if busy."""
        key = self.key(rows, length, factors)
        with self._lock:
            if self._weights is None:
                self._weights = LlamaWeights(self.model, self.pack)
            graph = self._graphs.get(key)
            if graph is None:
                if len(self._graphs) >= MAX_GRAPHS:
                    idle = [k for k, g in self._graphs.items() if not g.lock.locked()]
                    if not idle:
                        return None
                    del self._graphs[idle[0]]
                device = self._weights.buffers[0]["o"].device
                graph = self._graphs[key] = StepGraph(self.model, self._weights, key, self._block(device))
            if not graph.lock.acquire(blocking=False):
                return None
            self._weights.refresh(self.adapted)  # under the model's lock of this request: merged or not, stable
        if graph.cuda and graph.graph is None:
            try:
                graph.capture()
            except Exception as error:  # e.g. a compiled kernel that cannot be captured: eager block, captured
                if graph.block is block_step:
                    graph.lock.release()
                    raise
                self.compile_error = f"{type(error).__name__}: {error}"[:300]
                print(f"# logo: the compiled decode block failed ({self.compile_error}); capturing the eager block")
                graph.block = block_step
                graph.capture()
        return graph

    @property
    def shapes(self) -> list[GraphKey]:
        return list(self._graphs)
