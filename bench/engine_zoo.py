"""Workload B: the embedded SmolLM2-135M-Instruct with the zoo's adapters; tokens/s of the engine vs plain generate.

    python -m bench.engine_zoo [--new-tokens 128] [--prompts 4] [--batch 32] [--device cuda] [--repeats 5]
        [--peers hf hf-compile] [--curve-csv FILE] [--append-to BENCHMARKS.md] [--tiny]

One prompt per zoo task (its first test input, in the chat template). Batch 1, every variant interleaved
round by round (bench/timing.py), a round being the same --prompts prompts one at a time: transformers'
generate on a bare copy of the model (dynamic cache; static cache + torch.compile on another copy), then the
engine (base, mixture, fused), eager and with each step replayed from a CUDA graph over a static KV cache;
each decode figure against the memory floor measured in this run (bench/floor.py); on a GPU also the base
graph with the host feeding each greedy token (logo.decoding.CHAIN_GREEDY off), against the default that
chains the replays. Batch --batch:
generate on a left-padded batch vs the engine's batched mixture (each row its own routing). Every run
produces exactly --new-tokens tokens per row. On a GPU: CUDA kernels per decode step. `--tiny` runs a
2-layer random model on the CPU with a random pool (the smoke test; its numbers mean nothing).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench.floor import Floor, bandwidth_gbs, mixture_bytes, weight_bytes
from bench.models import TINY, random_model, random_prompt, word_tokenizer
from bench.peers import NO_SERVERS, first_call_error, hf_token_times, kernels_line, static_compiled
from bench.timing import Report, Samples, add_harness_arguments, amortisation_rows, interleaved, per_token_ms, write_csv
from logo import decoding
from logo.base_model import BaseModel, load_base_model
from logo.config import EngineConfig, GenerationConfig, RoutingConfig
from logo.engine import LoGoEngine
from logo.pool import AdapterPool
from zoo.data import ADAPTERS_DIR, load_tasks

PEERS = ("hf", "hf-compile")
ENGINE_VARIANTS = (("base", "mixture", True), ("mixture", "mixture", False), ("fused", "fused", False))


def load(args, dtype: str) -> tuple[LoGoEngine, dict]:
    """The engine, and a bare copy of its base model per peer (hf generate must not run through our layers)."""
    torch_dtype = getattr(torch, dtype)
    if args.tiny:

        def bare() -> BaseModel:
            tokenizer = word_tokenizer(TINY["vocab_size"])
            return BaseModel(random_model(TINY, "cpu", torch_dtype), tokenizer, name="random", fingerprint="random")

        base = bare()
        config = EngineConfig(base_model="random", adapters=(), device="cpu", dtype=dtype, chat_template=False)
        engine = LoGoEngine(config, base=base, pool=AdapterPool.random(base.model, 6, rank=4, b_std=0.3))
    else:

        def bare() -> BaseModel:
            return load_base_model("embedded", device=args.device, dtype=dtype)

        engine = LoGoEngine(EngineConfig(adapters=(str(ADAPTERS_DIR),), device=args.device, dtype=dtype), base=bare())
    peers = {name: bare().model for name in args.peers}
    if "hf-compile" in peers:
        static_compiled(peers["hf-compile"])
    return engine, peers


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompts", type=int, default=4, help="prompts timed one at a time, per round")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=PEERS)
    parser.add_argument("--curve-csv", type=Path, default=None, help="write the batch-1 amortisation curve here")
    parser.add_argument("--tiny", action="store_true", help="2-layer random model on the CPU (smoke test)")
    add_harness_arguments(parser)
    args = parser.parse_args(argv)
    if args.tiny:
        args.device, args.dtype = "cpu", "float32"

    title = "Workload B: the embedded model with the zoo"
    report = Report(title, "bench.engine_zoo", args.repeats, args.warmup, args.budget_minutes)
    report.line(NO_SERVERS)
    bandwidth = bandwidth_gbs(args.device)
    engine, peers = load(args, args.dtype)
    if args.tiny:
        texts = [random_prompt(12, TINY["vocab_size"], s) for s in range(max(args.batch, args.prompts))]
    else:
        tasks = load_tasks(held_out=False)
        texts = [t.prompt(t.examples("test", limit=1)[0]["input"]) for t in tasks]
        texts = (texts * (1 + args.batch // len(texts)))[: max(args.batch, args.prompts)]
    routing = RoutingConfig(k=args.k, calibration="zscore")
    new = args.new_tokens
    base_floor = Floor(bandwidth, weight_bytes(engine.model))
    mixture_floor = Floor(bandwidth, base_floor.bytes_per_token + mixture_bytes(engine.pool, args.k))
    report.line(
        f"# {args.device}, {args.dtype}; {len(engine.pool)} adapters, k={args.k}, {new} new tokens per row, greedy"
    )
    report.line(f"# floor: base {base_floor.describe()}; with k adapters {mixture_floor.describe()}")
    engine.route(texts[:2], routing)  # calibration statistics: computed once, outside the timings

    def hf_rows(model, prompts: list[str]) -> list[float]:
        batch = engine.tokenizer(
            [engine.format_prompt(p) for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(model.device)
        with torch.inference_mode():
            return hf_token_times(model, batch["input_ids"], batch["attention_mask"], new)

    def ours(prompts: list[str], mode: str, graph: bool, base: bool) -> list[float]:
        generation = GenerationConfig(max_new_tokens=new, mode=mode, ignore_eos=True, cuda_graph=graph)
        mixtures = [{} for _ in prompts] if base else None
        results = engine.generate_batch(prompts, routing, generation, mixtures=mixtures, batch_size=len(prompts))
        return list(results[0].token_times_ms)

    def host_fed(run):
        """The graph's greedy replays fed by the host one token at a time (logo.decoding.CHAIN_GREEDY off)."""
        decoding.CHAIN_GREEDY = False
        try:
            return run()
        finally:
            decoding.CHAIN_GREEDY = True

    kinds = {}
    for name, model in peers.items():
        kinds["hf generate" if name == "hf" else "hf static+compile"] = lambda ps, model=model: hf_rows(model, ps)
    for graph in (False, True):
        for label, mode, base in ENGINE_VARIANTS:
            kinds[f"{label} {'graph' if graph else 'eager'}"] = lambda ps, mode=mode, graph=graph, base=base: ours(
                ps, mode, graph, base
            )
    if torch.cuda.is_available():
        kinds["base graph, host-fed"] = lambda ps: host_fed(lambda: ours(ps, "mixture", True, True))
    if "hf static+compile" in kinds:
        error = first_call_error(lambda: kinds["hf static+compile"](texts[:1]))
        if error:
            report.line(f"# hf static+compile failed, left out: {error}")
            del kinds["hf static+compile"]

    traces: dict[str, list[list[float]]] = {label: [] for label in kinds}

    def traced(label: str) -> dict[str, float]:
        times = [kinds[label]([p]) for p in texts[: args.prompts]]
        traces[label].append(times[0])
        return {"decode_ms": Samples([per_token_ms(t) for t in times]).median}

    variants = {label: lambda label=label: traced(label) for label in kinds}
    results, _ = interleaved(variants, args.repeats, args.warmup, report)
    report.line("\n## Batch 1")
    reference = results.get("hf generate", results["base eager"])
    rows = []
    for label, r in results.items():
        floor = mixture_floor if label.startswith("mixture") else base_floor
        rate = args.prompts * new / r["wall_ms"].median * 1000
        rows.append(
            [
                label,
                f"{r['wall_ms'].median / args.prompts:.1f}",
                f"{rate:.0f}",
                r["decode_ms"].cell(),
                f"{floor.times(r['decode_ms'].median):.1f}x",
                f"{reference['wall_ms'].median / r['wall_ms'].median:.2f}x",
            ]
        )
    report.table(["variant", "ms per instance", "tokens/s", "decode ms/tok [min-max]", "x floor", "vs hf"], rows)

    batch_kinds = {label: kinds[label] for label in kinds if label in ("hf generate", "base eager", "mixture eager")}
    batch_kinds.update({label: kinds[label] for label in ("base graph", "mixture graph")})
    batched, _ = interleaved(
        {label: lambda fn=fn: fn(texts[: args.batch]) and None for label, fn in batch_kinds.items()},
        args.repeats,
        args.warmup,
        report,
    )
    report.line(f"\n## Batch {args.batch}")
    first = next(iter(batched.values()))
    report.table(
        ["variant", "s per batch [min-max]", "tokens/s", "vs first row"],
        [
            [
                label,
                Samples([v / 1000 for v in r["wall_ms"].values]).cell(),
                f"{args.batch * new / r['wall_ms'].median * 1000:.0f}",
                f"{first['wall_ms'].median / r['wall_ms'].median:.2f}x",
            ]
            for label, r in batched.items()
        ],
    )

    same = 0
    for p in texts[: args.prompts]:
        eager, graphed = (
            engine.generate(p, routing, GenerationConfig(max_new_tokens=new, cuda_graph=g)).token_ids
            for g in (False, True)
        )
        same += eager == graphed
    report.line(
        f"#   greedy answers identical with and without the static cache / CUDA graph: {same} of {args.prompts}"
    )
    if args.device.startswith("cuda"):
        mixture = engine.route([texts[0]], routing)[0].mixture
        for label, mix in (("base", None), ("mixture", mixture)):
            report.line(kernels_line(engine, texts[0], label, mix))
    if args.curve_csv:
        curve = [row for label, times in traces.items() for row in amortisation_rows(label, times[args.warmup :])]
        write_csv(args.curve_csv, curve)
        report.line(f"# amortisation curve ({len(curve)} rows, first prompt of each round) written to {args.curve_csv}")
    if args.append_to:
        report.append_to(args.append_to, argv)


if __name__ == "__main__":
    main()
