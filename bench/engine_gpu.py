"""GPU benchmark of the engine at 8B scale: a Llama-3.1-8B-shaped model with random bf16 weights and N random LoRAs.

    python -m bench.engine_gpu [--adapters 20 260] [--k 20] [--prompt-tokens 128] [--new-tokens 128] [--tiny]

Prints, per pool size: probe ms and ms per adapter, fused merge ms, end-to-end time per instance and decode
ms/token for base, mixture and fused, peak memory and the pool's memory. `--tiny` runs a 2-layer model on the
CPU (the CI smoke test). The official implementation's approach (PEFT, a Python loop over adapters) is not
in this script yet.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from app.base_model import BaseModel
from app.config import EngineConfig, GenerationConfig, RoutingConfig
from app.engine import LoGoEngine
from app.pool import AdapterPool
from app.probe import position_ids

LLAMA_8B = dict(
    hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0,
)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=512, max_position_embeddings=2048)


def word_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """Word i is token i: a prompt of n words is exactly n tokens (no chat template, no special tokens)."""
    vocab = {f"w{i}": i for i in range(vocab_size)}
    core = Tokenizer(WordLevel(vocab, unk_token="w0"))
    core.pre_tokenizer = WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="w0", eos_token="w1", unk_token="w0")
    tok.padding_side = "left"
    return tok


def random_model(shape: dict, device: str, dtype: torch.dtype) -> LlamaForCausalLM:
    config = LlamaConfig(**shape, tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, bos_token_id=1)
    torch.manual_seed(0)
    with torch.device(device):
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            model = LlamaForCausalLM(config).eval()
        finally:
            torch.set_default_dtype(previous)
    model.requires_grad_(False)
    return model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int) -> float:
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, nargs="+", default=[20, 260])
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="2-layer model on the CPU (smoke test)")
    args = parser.parse_args(argv)

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    shape = TINY if args.tiny else LLAMA_8B
    model = random_model(shape, device, dtype)
    tokenizer = word_tokenizer(shape["vocab_size"])
    base = BaseModel(model, tokenizer, name="llama-8b-shaped" if not args.tiny else "tiny", fingerprint="random")
    prompt = " ".join(f"w{2 + (i * 7919) % (shape['vocab_size'] - 2)}" for i in range(args.prompt_tokens))
    dev = torch.device(device)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"# {name}, torch {torch.__version__}, {dtype}; model {shape['num_hidden_layers']} layers x {shape['hidden_size']}")
    print(f"# prompt {args.prompt_tokens} tokens, {args.new_tokens} new tokens, k={args.k}, LoRA r={args.rank} on q,k,v,o")
    header = ("N", "pool GiB", "probe ms", "ms/adapter", "prefill ms", "merge ms", "base ms", "mixture ms", "fused ms",
              "base ms/tok", "mix ms/tok", "fused ms/tok", "peak GiB")
    print(" | ".join(header))
    engine = None
    for n in args.adapters:
        del engine
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        config = EngineConfig(base_model="random", adapters=(), device=device, chat_template=False, max_prompt_tokens=8192)
        pool = AdapterPool.random(model, n, rank=args.rank)
        engine = LoGoEngine(config, base=base, pool=pool)
        routing = RoutingConfig(k=min(args.k, n))
        ids, mask = engine._encode([prompt])

        @torch.inference_mode()
        def prefill():
            model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=True, logits_to_keep=1)

        probe_ms = timed(lambda: engine.raw_signals([prompt], routing.probe), dev, args.repeats)
        prefill_ms = timed(prefill, dev, args.repeats)
        results = {}
        for label, mode, mixture in (("base", "mixture", {}), ("mixture", "mixture", None), ("fused", "fused", None)):
            generation = GenerationConfig(max_new_tokens=args.new_tokens, mode=mode, ignore_eos=True)
            engine.generate(prompt, routing, generation, mixture=mixture)  # warm-up
            runs = [engine.generate(prompt, routing, generation, mixture=mixture) for _ in range(args.repeats)]
            results[label] = (
                statistics.median(r.timings.total_ms for r in runs),
                statistics.median(r.timings.decode_ms / max(r.n_tokens - 1, 1) for r in runs),
                statistics.median(r.timings.merge_ms for r in runs),
            )
        peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
        row = (
            n, f"{pool.nbytes() / 2**30:.2f}", f"{probe_ms:.1f}", f"{max(probe_ms - prefill_ms, 0) / n:.4f}",
            f"{prefill_ms:.1f}", f"{results['fused'][2]:.1f}",
            *(f"{results[v][0]:.0f}" for v in ("base", "mixture", "fused")),
            *(f"{results[v][1]:.2f}" for v in ("base", "mixture", "fused")),
            f"{peak:.1f}",
        )
        print(" | ".join(str(c) for c in row), flush=True)
        base_total, base_tok = results["base"][0], results["base"][1]
        print(f"#   N={n}: end-to-end mixture {results['mixture'][0] / base_total:.2f}x / fused {results['fused'][0] / base_total:.2f}x base "
              f"(target <= 1.15); decode mixture {results['mixture'][1] / base_tok:.2f}x (<= 1.25), fused {results['fused'][1] / base_tok:.2f}x (<= 1.03)",
              flush=True)


if __name__ == "__main__":
    main()
