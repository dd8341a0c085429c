"""CPU benchmark of the engine on the embedded model: probe vs prefill, decode ms/token of fused/mixture vs base.

python -m bench.engine_cpu [--adapters 20] [--new-tokens 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.pools import write_random_pool
from logo.base_model import load_base_model
from logo.config import EngineConfig, GenerationConfig, RoutingConfig
from logo.engine import LoGoEngine
from logo.probe import position_ids

PROMPT = (
    "Read the following review and say whether it is positive or negative. "
    "The film starts slowly, but the acting is superb and the final act is moving and beautifully shot."
)


def interleaved_median_ms(fns: dict, repeats: int) -> dict[str, float]:
    """Median wall time of each function, run in turns so that all of them see the same machine load."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            if round_:  # round 0 is the warm-up
                times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=20)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    base = load_base_model("embedded", device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        write_random_pool(base.model, Path(tmp), args.adapters, rank=args.rank)
        engine = LoGoEngine(EngineConfig(adapters=(tmp,), device="cpu"), base=base)
    routing = RoutingConfig(k=args.k)
    ids, mask = engine.encode([PROMPT])

    @torch.inference_mode()
    def prefill():
        engine.model(
            input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=True, logits_to_keep=1
        )

    timed = interleaved_median_ms(
        {"probe": lambda: engine.raw_signals([PROMPT], routing.probe), "prefill": prefill}, args.repeats
    )
    probe, prefill_ms = timed["probe"], timed["prefill"]
    print(f"# CPU, {torch.get_num_threads()} threads, torch {torch.__version__}; embedded SmolLM2-135M, fp32")
    print(
        f"# pool: {args.adapters} random adapters, r={args.rank} on q,k,v,o; k={args.k}; prompt {ids.shape[1]} tokens"
    )
    print(f"probe (all {args.adapters} adapters scored)   {probe:8.2f} ms")
    print(f"base prefill of the same prompt       {prefill_ms:8.2f} ms")
    print(f"probe / prefill                       {probe / prefill_ms:8.2f} x   (target <= 1.20)")

    def decode_ms_per_token(mode: str, mixture=None) -> float:
        config = GenerationConfig(max_new_tokens=args.new_tokens, mode=mode, ignore_eos=True)
        result = engine.generate(PROMPT, routing, config, mixture=mixture)
        return result.timings.decode_ms / (result.n_tokens - 1)

    per_token = {"base": [], "fused": [], "mixture": []}
    for round_ in range(args.repeats + 1):
        for mode, run in (
            ("base", lambda: decode_ms_per_token("mixture", {})),
            ("fused", lambda: decode_ms_per_token("fused")),
            ("mixture", lambda: decode_ms_per_token("mixture")),
        ):
            value = run()
            if round_:
                per_token[mode].append(value)
    base_tok, fused_tok, mixture_tok = (statistics.median(per_token[m]) for m in ("base", "fused", "mixture"))
    print(f"decode, base                          {base_tok:8.2f} ms/token")
    fused_ratio, mixture_ratio = fused_tok / base_tok, mixture_tok / base_tok
    print(
        f"decode, fused                         {fused_tok:8.2f} ms/token   {fused_ratio:5.2f} x base (target <= 1.05)"
    )
    print(f"decode, mixture                       {mixture_tok:8.2f} ms/token   {mixture_ratio:5.2f} x base (reported)")
    merge = engine.generate(PROMPT, routing, GenerationConfig(max_new_tokens=1, mode="fused")).timings.merge_ms
    print(f"fused merge + restore                 {merge:8.2f} ms per request")
    print(f"pool memory                           {engine.pool.nbytes() / 2**20:8.1f} MiB")


if __name__ == "__main__":
    main()
