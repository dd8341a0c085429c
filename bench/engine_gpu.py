"""Workload A: the engine against the official approach on a Llama-3.1-8B-shaped model with N random LoRAs.

    python -m bench.engine_gpu [--adapters 20 260 1000] [--prompt-tokens 128 512] [--new-tokens 128]
        [--peers hf hf-compile official] [--repeats 5] [--append-to BENCHMARKS.md] [--tiny]

Variants, greedy, exactly --new-tokens tokens, batch 1, interleaved round by round (bench/timing.py):
  hf generate        transformers' generate with its dynamic cache, on a bare copy of the model
  hf static+compile  generate with a static cache and forward under torch.compile (its documented fast path),
                     on another bare copy; if it fails here its error is printed and the row left out
  official           bench/reference.py: PeftMixedModel with all N adapters, Python probe loop, set_adapter,
                     on a third copy (the copies have identical weights: one seed)
  base / mixture / fused, eager and graph
                     our engine: no adapter, the stacked mixture, the fused merge; "graph" replays each decode
                     step from a CUDA graph over a static KV cache
Each decode figure is printed against the floor measured in the same run (bench/floor.py: the weights' bytes,
+ k adapters' factors for mixture and official, over the GPU's copy bandwidth). Then CUDA kernels per decode
step, batched throughput (instances/s) against the official per-instance loop, and the issue's targets, every
ratio a ratio of medians of this run. `--tiny` runs a 2-layer model on the CPU (the smoke test).
"""

from __future__ import annotations

import argparse

import torch

from bench.floor import Floor, bandwidth_gbs, mixture_bytes, weight_bytes
from bench.models import LLAMA_8B, TINY, random_model, random_prompt, word_tokenizer
from bench.peers import NO_SERVERS, first_call_error, hf_token_times, kernels_line, static_compiled
from bench.reference import OfficialReference
from bench.timing import Report, Results, add_harness_arguments, interleaved, per_token_ms
from logo.base_model import BaseModel
from logo.config import EngineConfig, GenerationConfig, ProbeConfig, RoutingConfig
from logo.engine import LoGoEngine
from logo.pool import AdapterPool

__all__ = ["PROBE", "TINY", "main", "random_model", "random_prompt", "word_tokenizer"]

# the probe both implementations are compared with: the official one (residual stream, last block, raw norm)
PROBE = ProbeConfig(probe_input="residual", block=-1)
MARKS = (1, 32, 128, 256)  # new tokens at which the time since the request's start is reported
PEERS = ("hf", "hf-compile", "official")
ENGINE_VARIANTS = (("base", "mixture", True), ("mixture", "mixture", False), ("fused", "fused", False))
ENGINE_LABELS = tuple(f"{v} {m}" for m in ("eager", "graph") for v in ("base", "mixture", "fused"))
ORDER = ("hf generate", "hf static+compile", "official", *ENGINE_LABELS)


def figures(token_times_ms, probe_ms: float = 0.0, merge_ms: float = 0.0, resident: int = 0) -> dict[str, float]:
    """One request's figures from its token times (ms since its start) and phases; extra_gib: peak over resident."""
    times = list(token_times_ms)
    out = {"probe_ms": probe_ms, "merge_ms": merge_ms, "first_ms": times[0], "decode_ms": per_token_ms(times)}
    out.update({f"t{n}": times[n - 1] for n in MARKS if n <= len(times)})
    if torch.cuda.is_available():
        out["extra_gib"] = (torch.cuda.max_memory_allocated() - resident) / 2**30
    return out


def resident_bytes() -> int:
    if not torch.cuda.is_available():
        return 0
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def encoded(tokenizer, prompt: str, device) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tokenizer([prompt], return_tensors="pt", split_special_tokens=True).to(device)
    return batch["input_ids"], batch["attention_mask"]


def run_hf(model, tokenizer, prompt: str, new_tokens: int) -> dict[str, float]:
    ids, mask = encoded(tokenizer, prompt, model.device)
    resident = resident_bytes()
    return figures(hf_token_times(model, ids, mask, new_tokens), resident=resident)


def run_engine(engine, routing, prompt: str, new_tokens: int, mode: str, graph: bool, base: bool) -> dict[str, float]:
    generation = GenerationConfig(max_new_tokens=new_tokens, mode=mode, ignore_eos=True, cuda_graph=graph)
    resident = resident_bytes()
    result = engine.generate(prompt, routing, generation, mixture={} if base else None)
    return figures(result.token_times_ms, result.timings.probe_ms, result.timings.merge_ms, resident)


def run_reference(reference: OfficialReference, tokenizer, prompt: str, new_tokens: int, k: int) -> dict[str, float]:
    ids, mask = encoded(tokenizer, prompt, reference.model.device)
    resident = resident_bytes()
    result = reference.generate(ids, mask, k, "norm", new_tokens, ignore_eos=True)
    return figures(result.token_times_ms, result.probe_ms, resident=resident)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, nargs="+", default=[20, 260, 1000])
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--prompt-tokens", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=PEERS, help="peers run beside the engine")
    parser.add_argument("--reference-max", type=int, default=260, help="largest N the official approach runs at")
    parser.add_argument(
        "--all-prompts-at", type=int, nargs="*", default=[260], help="N at which every prompt length runs"
    )
    parser.add_argument("--throughput-at", type=int, nargs="*", default=[260], help="N of the batched throughput")
    parser.add_argument("--batch", type=int, default=32, help="batch size of the throughput comparison")
    parser.add_argument("--official-instances", type=int, default=1, help="instances per official throughput round")
    parser.add_argument("--tiny", action="store_true", help="2-layer model on the CPU (smoke test)")
    add_harness_arguments(parser)
    args = parser.parse_args(argv)

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    shape = TINY if args.tiny else LLAMA_8B
    title = "Workload A: 8B-shaped model, engine vs official"
    report = Report(title, "bench.engine_gpu", args.repeats, args.warmup, args.budget_minutes)
    report.line(NO_SERVERS)
    bandwidth = bandwidth_gbs(device)
    model = random_model(shape, device, dtype)
    peers = {"hf": random_model(shape, device, dtype) if "hf" in args.peers else None}
    if "hf-compile" in args.peers:
        peers["hf-compile"] = static_compiled(random_model(shape, device, dtype))
    if "official" in args.peers:
        peers["official"] = random_model(shape, device, dtype)
    tokenizer = word_tokenizer(shape["vocab_size"])
    prompts = {p: random_prompt(p, shape["vocab_size"], seed=0) for p in args.prompt_tokens}
    report.line(
        f"# model {shape['num_hidden_layers']} layers x {shape['hidden_size']}, {dtype}, random weights; LoRA "
        f"r={args.rank} on q,k,v,o; k={args.k}; {args.new_tokens} new tokens; greedy, batch 1 unless stated"
    )
    report.line(f"# memory bandwidth (device copy, read + write): {bandwidth:.0f} GB/s")

    config = EngineConfig(
        base_model="random",
        adapters=(),
        device=device,
        chat_template=False,
        max_prompt_tokens=8192,
        max_new_tokens_cap=max(args.new_tokens, 1024),
    )
    base = BaseModel(model, tokenizer, name="random", fingerprint="random")
    summary: dict = {}
    for n in args.adapters:
        k = min(args.k, n)
        routing = RoutingConfig.preset("paper", k=k, probe=PROBE)  # as the official approach
        if device == "cuda":
            torch.cuda.empty_cache()
        pool = AdapterPool.random(model, n, rank=args.rank)
        engine = LoGoEngine(config, base=base, pool=pool)
        report.line(f"\n# N={n}: pool {pool.nbytes() / 2**30:.2f} GiB")
        reference = None
        if peers.get("official") is not None and n <= args.reference_max:
            reference = OfficialReference(peers["official"], pool)  # shares the pool's tensors
        base_floor = Floor(bandwidth, weight_bytes(model))
        mixture_floor = Floor(bandwidth, base_floor.bytes_per_token + mixture_bytes(pool, k))
        lengths = args.prompt_tokens if n in args.all_prompts_at else args.prompt_tokens[:1]
        for p in lengths:
            variants = request_variants(engine, routing, reference, peers, tokenizer, prompts[p], k, args, report)
            results, _ = interleaved(variants, args.repeats, args.warmup, report)
            summary[(n, p)] = results
            summary[(n, "floor")] = base_floor
            print_table(report, f"N={n}, prompt {p} tokens", results, base_floor, mixture_floor)
        if device == "cuda":
            kernels(report, engine, routing, prompts[args.prompt_tokens[0]])
        if n in args.throughput_at:
            summary["throughput"] = throughput(report, engine, routing, reference, tokenizer, shape, k, args)
        if reference is not None:
            reference.model.unload()  # PEFT's layers out of the official copy again
        del engine, pool, reference
    targets(report, summary, args)
    if args.append_to:
        report.append_to(args.append_to, argv)


def request_variants(engine, routing, reference, peers, tokenizer, prompt: str, k: int, args, report) -> dict:
    """The batch-1 variants of one prompt, each a closure returning its figures; a failing peer is left out."""
    new = args.new_tokens
    variants = {}
    if peers.get("hf") is not None:
        variants["hf generate"] = lambda: run_hf(peers["hf"], tokenizer, prompt, new)
    if peers.get("hf-compile") is not None:
        error = first_call_error(lambda: run_hf(peers["hf-compile"], tokenizer, prompt, new))
        if error:
            report.line(f"# hf static+compile failed, left out: {error}")
            peers["hf-compile"] = None
        else:
            variants["hf static+compile"] = lambda: run_hf(peers["hf-compile"], tokenizer, prompt, new)
    if reference is not None:
        variants["official"] = lambda: run_reference(reference, tokenizer, prompt, new, k)
    for graph in (False, True):
        for label, mode, is_base in ENGINE_VARIANTS:
            variants[f"{label} {'graph' if graph else 'eager'}"] = lambda mode=mode, graph=graph, is_base=is_base: (
                run_engine(engine, routing, prompt, new, mode, graph, is_base)
            )
    return variants


def print_table(report: Report, title: str, results: Results, base_floor: Floor, mixture_floor: Floor) -> None:
    """One row per variant: medians, decode [min-max] against its floor, ratios of medians to base and hf."""
    report.line(f"\n## {title}")
    header = ["variant", "probe ms", "merge ms", "t(1) ms", "decode ms/tok [min-max]", "x floor"]
    header += [f"t({n}) ms" for n in MARKS[1:]] + ["t(last) / base", "decode / base", "decode / hf", "extra GiB"]
    last = f"t{max(n for n in MARKS if f't{n}' in results['base eager'])}"
    hf = results.get("hf generate")
    rows = []
    for label in (v for v in ORDER if v in results):
        r = results[label]
        own = results["base graph" if label.endswith("graph") else "base eager"]
        floor = mixture_floor if label.startswith(("mixture", "official")) else base_floor
        decode = r["decode_ms"].median
        row = [label, f"{r['probe_ms'].median:.1f}", f"{r['merge_ms'].median:.1f}", f"{r['first_ms'].median:.1f}"]
        row += [r["decode_ms"].cell(), f"{floor.times(decode):.2f}x"]
        row += [f"{r[f't{n}'].median:.0f}" if f"t{n}" in r else "-" for n in MARKS[1:]]
        row += [f"{r[last].median / own[last].median:.2f}x", f"{decode / own['decode_ms'].median:.2f}x"]
        row += [f"{decode / hf['decode_ms'].median:.2f}x" if hf else "-"]
        row += [f"{r['extra_gib'].median:.2f}" if "extra_gib" in r else "-"]
        rows.append(row)
    report.table(header, rows)
    report.line(f"# floor: base {base_floor.describe()}; with k adapters {mixture_floor.describe()}")


def kernels(report: Report, engine: LoGoEngine, routing: RoutingConfig, prompt: str) -> None:
    mixture = engine.route([prompt], routing)[0].mixture
    for label, mix in (("base", None), ("mixture", mixture)):
        report.line(kernels_line(engine, prompt, label, mix))


def throughput(report, engine, routing, reference, tokenizer, shape, k, args) -> dict[str, float]:
    """Instances/s of our batched evaluation (each row its own mixture) and of the official per-instance loop."""
    new = min(128, args.new_tokens)
    prompts = [random_prompt(args.prompt_tokens[0], shape["vocab_size"], seed=s) for s in range(args.batch)]
    variants = {}
    for graph in (False, True):
        generation = GenerationConfig(max_new_tokens=new, ignore_eos=True, cuda_graph=graph)
        variants[f"ours, batch {args.batch}, {'graph' if graph else 'eager'}"] = lambda generation=generation: (
            engine.generate_batch(prompts, routing, generation, batch_size=args.batch) and None
        )
    if reference is not None:
        batches = [encoded(tokenizer, q, reference.model.device) for q in prompts[: args.official_instances]]
        variants["official, per instance"] = lambda: reference.generate_many(batches, k, "norm", new) and None
    results, _ = interleaved(variants, args.repeats, args.warmup, report)
    sizes = {label: args.official_instances if label.startswith("official") else args.batch for label in results}
    rates = {label: sizes[label] / r["wall_ms"].median * 1000 for label, r in results.items()}
    report.line(f"\n## Throughput, prompt {args.prompt_tokens[0]} tokens, {new} new tokens")
    report.table(
        ["variant", "instances/s", "ms per round [min-max]"],
        [[label, f"{rates[label]:.2f}", results[label]["wall_ms"].cell(0)] for label in results],
    )
    return rates


def verdict(name: str, value: float, target: float, unit: str = "x") -> str:
    return f"#   {name}: {value:.4g}{unit} (target <= {target}{unit}) {'met' if value <= target else 'MISSED'}"


def targets(report: Report, summary: dict, args) -> None:
    """The issue's targets, from the medians of this run."""
    report.line("\n## Targets")
    main_n = 260 if (260, args.prompt_tokens[0]) in summary else args.adapters[-1]
    results = summary[(main_n, args.prompt_tokens[0])]
    last = f"t{max(n for n in MARKS if f't{n}' in results['base eager'])}"
    median = {label: {f: s.median for f, s in r.items()} for label, r in results.items()}
    for label in ("mixture eager", "fused eager", "mixture graph", "fused graph"):
        base_label = "base " + label.split()[1]
        report.line(
            verdict(
                f"end-to-end {label} / {base_label}, N={main_n}", median[label][last] / median[base_label][last], 1.10
            )
        )
    floor = summary[(main_n, "floor")]
    report.line(verdict("decode base graph / memory floor", floor.times(median["base graph"]["decode_ms"]), 1.5))
    for label, target in (("fused graph", 1.03), ("mixture graph", 1.25)):
        base_label = "base " + label.split()[1]
        ratio = median[label]["decode_ms"] / median[base_label]["decode_ms"]
        report.line(verdict(f"decode {label} / {base_label}", ratio, target))
    rates = summary.get("throughput", {})
    official = rates.get("official, per instance")
    if official:
        ratio = max(v for label, v in rates.items() if label.startswith("ours")) / official
        report.line(
            f"#   batched throughput / official per-instance loop: {ratio:.1f}x (target >= 10x) "
            f"{'met' if ratio >= 10 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
