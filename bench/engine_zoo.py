"""Workload B: the embedded SmolLM2-135M-Instruct with the zoo's adapters; tokens/s of the engine vs plain generate.

    python -m bench.engine_zoo [--new-tokens 128] [--prompts 8] [--batch 32] [--device cuda]

One prompt per zoo task (its first test input, in the chat template). Batch 1: transformers' generate on the
bare model, then the engine (base, mixture, fused) with eager decoding and with each step replayed from a
CUDA graph over a static KV cache. Batch --batch: generate on a left-padded batch vs the engine's batched
mixture (each row its own routing). Every run produces exactly --new-tokens tokens per row. A 135M model
at batch 1 is launch-bound when eager (hundreds of small kernels per token); the graph rows show how much
of that goes away.
"""

from __future__ import annotations

import argparse
import time

import torch
import transformers

from bench.reference import hf_generate
from logo.config import EngineConfig, GenerationConfig, RoutingConfig
from logo.engine import LoGoEngine
from zoo.data import load_tasks


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed_s(fn) -> float:
    sync()
    started = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - started


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompts", type=int, default=8, help="prompts timed one at a time")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args(argv)

    engine = LoGoEngine(EngineConfig(device=args.device, dtype=args.dtype))
    tasks = load_tasks(held_out=False)
    texts = [t.prompt(t.examples("test", limit=1)[0]["input"]) for t in tasks]
    texts = (texts * (1 + args.batch // len(texts)))[: max(args.batch, args.prompts)]
    model, tokenizer = engine.model, engine.tokenizer
    routing = RoutingConfig(k=args.k, calibration="zscore")
    new = args.new_tokens
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(
        f"# {gpu}, torch {torch.__version__}, transformers {transformers.__version__}, {args.dtype}; "
        f"{len(engine.pool)} zoo adapters, k={args.k}, {new} new tokens per row, greedy"
    )

    def hf_rows(prompts: list[str], streamer: bool = True) -> None:
        batch = tokenizer(
            [engine.format_prompt(p) for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(model.device)
        with torch.inference_mode():
            if len(prompts) == 1 and streamer:  # the timestamping streamer workload A uses
                hf_generate(model, batch["input_ids"], batch["attention_mask"], new, ignore_eos=True)
            else:
                model.generate(**batch, max_new_tokens=new, min_new_tokens=new, do_sample=False)

    def ours(prompts: list[str], mode: str, graph: bool, base: bool) -> None:
        generation = GenerationConfig(max_new_tokens=new, mode=mode, ignore_eos=True, cuda_graph=graph)
        mixtures = [{} for _ in prompts] if base else None
        engine.generate_batch(prompts, routing, generation, mixtures=mixtures, batch_size=len(prompts))

    variants = {
        "hf generate": lambda ps: hf_rows(ps),
        "hf generate, no streamer": lambda ps: hf_rows(ps, streamer=False),
    }
    for graph in (False, True):
        for label, mode, base in (("base", "mixture", True), ("mixture", "mixture", False), ("fused", "fused", False)):
            variants[f"{label} {'graph' if graph else 'eager'}"] = lambda ps, mode=mode, graph=graph, base=base: ours(
                ps, mode, graph, base
            )
    engine.route(texts[:2], routing)  # calibration statistics: computed once, outside the timings
    print("\n## Batch 1")
    print("variant | ms per instance | tokens/s | vs hf generate")
    single = {}
    for label, fn in variants.items():
        fn(texts[:1])  # warm-up
        seconds = sum(timed_s(lambda p=p, fn=fn: fn([p])) for p in texts[: args.prompts])
        single[label] = args.prompts * new / seconds
        print(
            f"{label} | {seconds / args.prompts * 1000:.1f} | {single[label]:.0f} | "
            f"{single[label] / single['hf generate']:.2f}x",
            flush=True,
        )

    print(f"\n## Batch {args.batch}")
    print("variant | s per batch | tokens/s | vs hf generate")
    batched = {}
    for label in ("hf generate", "base eager", "mixture eager", "base graph", "mixture graph"):
        fn = variants[label]
        fn(texts[:2])  # warm-up
        seconds = timed_s(lambda fn=fn: fn(texts[: args.batch]))
        batched[label] = args.batch * new / seconds
        print(
            f"{label} | {seconds:.2f} | {batched[label]:.0f} | {batched[label] / batched['hf generate']:.2f}x",
            flush=True,
        )

    same = 0
    for p in texts[: args.prompts]:
        eager, graphed = (
            engine.generate(p, routing, GenerationConfig(max_new_tokens=new, cuda_graph=g)).token_ids
            for g in (False, True)
        )
        same += eager == graphed
    print(
        f"#   greedy answers identical with and without the CUDA graph: {same} of {args.prompts} "
        "(mixture, eos honoured)"
    )
    graph_gain = single["base graph"] / single["base eager"]
    print(
        f"\n#   batch 1: graphs give {graph_gain:.1f}x the eager engine's tokens/s, "
        f"mixture graph {single['mixture graph'] / single['hf generate']:.2f}x plain generate"
    )


if __name__ == "__main__":
    main()
