"""CPU benchmark of the engine on the embedded model, per weight format: decode against the memory floor, agreement.

    python -m bench.engine_cpu [--formats float32 bfloat16 int8 int8-dynamic] [--new-tokens 64] [--repeats 5]
        [--agreement 50] [--curve-csv FILE] [--append-to BENCHMARKS.md] [--tiny]

The embedded SmolLM2-135M-Instruct with the zoo's adapters (k=3), one engine per weight format
(bench/formats.py), all in one process. In one interleaved run (bench/timing.py):
  1. the probe (every adapter scored) against a plain prefill of the same prompt, per format;
  2. decode ms/token of base (no adapter), mixture and fused, per format, each against the memory floor of
     that format (bench/floor.py: bytes of its weights, + the k selected adapters' factors for mixture,
     over the CPU's read bandwidth measured at the start and the end of the run, the better one kept);
  3. greedy answers of every format against float32 on --agreement zoo test inputs (routed mixture);
  4. the amortisation curve (average ms per token after n tokens, request start included) as CSV.
`--tiny` runs a 2-layer random model (the smoke test; its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import torch

from bench.floor import Floor, cpu_bandwidth_gbs, mixture_bytes, weight_bytes
from bench.formats import ENGINE_DTYPE, FORMATS, FUSED_FORMATS, quantize
from bench.models import TINY, random_model, random_prompt, word_tokenizer
from bench.pools import write_random_pool
from bench.timing import Report, add_harness_arguments, amortisation_rows, interleaved, per_token_ms, write_csv
from logo.base_model import BaseModel, load_base_model
from logo.config import EngineConfig, GenerationConfig, RoutingConfig
from logo.engine import LoGoEngine
from logo.pool import AdapterPool
from logo.probe import position_ids
from zoo.data import ADAPTERS_DIR, load_tasks

DYNAMIC = "float32 base, transformers dynamic cache"  # the decode step the engine's own one replaces
PLAIN = "float32 base, weights not packed for oneDNN"  # the engine's step with F.linear (logo.llama_step.PACK_CPU)
PROMPT = (
    "Read the following review and say whether it is positive or negative. "
    "The film starts slowly, but the acting is superb and the final act is moving and beautifully shot."
)


def build_engine(fmt: str, tiny: bool, adapters: Path = ADAPTERS_DIR) -> LoGoEngine:
    """An engine on its own copy of the base model, in weight format `fmt`, over the pool directory `adapters`."""
    dtype = ENGINE_DTYPE[fmt]
    if tiny:
        model = random_model(TINY, "cpu", getattr(torch, dtype))
        base = BaseModel(model, word_tokenizer(TINY["vocab_size"]), name="random", fingerprint=f"random:{fmt}")
        config = EngineConfig(base_model="random", adapters=(), device="cpu", dtype=dtype, chat_template=False)
        engine = LoGoEngine(config, base=base, pool=AdapterPool.random(model, 6, rank=4, b_std=0.3))
    else:
        base = load_base_model("embedded", device="cpu", dtype=dtype)
        # calibration statistics are cached per fingerprint: an int8 probe must not reuse float32's
        base = dataclasses.replace(base, fingerprint=f"{base.fingerprint}:{fmt}")
        engine = LoGoEngine(EngineConfig(adapters=(str(adapters),), device="cpu", dtype=dtype), base=base)
    quantize(engine.model, fmt)
    return engine


def zoo_inputs(n: int) -> list[str]:
    """n zoo test inputs, taken round-robin over the pool's tasks (each in its task's prompt)."""
    tasks = load_tasks(held_out=False)
    per_task = [t.examples("test", limit=-(-n // len(tasks))) for t in tasks]
    texts = [
        task.prompt(examples[i]["input"])
        for i in range(max(map(len, per_task)))
        for task, examples in zip(tasks, per_task, strict=True)
        if i < len(examples)
    ]
    return texts[:n]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", "--dtypes", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--agreement", type=int, default=50, help="zoo test inputs compared with float32 (0: none)")
    parser.add_argument("--agreement-tokens", type=int, default=24, help="greedy tokens per agreement input")
    parser.add_argument("--curve-csv", type=Path, default=None, help="write the amortisation curve here")
    parser.add_argument(
        "--random-adapters", type=int, default=0, help="a pool of N random adapters instead of the zoo's (0: the zoo)"
    )
    parser.add_argument("--tiny", action="store_true", help="2-layer random model (smoke test)")
    add_harness_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    formats = ["float32", *[f for f in args.formats if f != "float32"]]  # float32 is every ratio's reference

    report = Report(
        "Engine on the CPU, per weight format", "bench.engine_cpu", args.repeats, args.warmup, args.budget_minutes
    )
    with tempfile.TemporaryDirectory() as tmp:
        adapters = ADAPTERS_DIR
        if args.random_adapters and not args.tiny:  # the issue-2 workload: N random PEFT adapters, r=8 on q,k,v,o
            base = load_base_model("embedded", device="cpu", dtype="float32").model
            adapters = write_random_pool(base, Path(tmp), args.random_adapters, rank=8)
            del base
        engines = {fmt: build_engine(fmt, args.tiny, adapters) for fmt in formats}
        plain = build_engine("float32", args.tiny, adapters)
        plain.step_graphs.pack = False
    prompt = random_prompt(40, TINY["vocab_size"], 0) if args.tiny else PROMPT
    routing = RoutingConfig.preset("paper", k=args.k)  # raw signals: the latency of the paper's method
    bandwidth = [cpu_bandwidth_gbs()]
    pool = engines["float32"].pool
    report.line(
        f"# embedded SmolLM2-135M-Instruct{' (tiny random stand-in)' if args.tiny else ''}; pool of {len(pool)} "
        f"adapters, k={args.k}; {args.new_tokens} new tokens, greedy, batch 1; prompt "
        f"{engines['float32'].encode([prompt])[0].shape[1]} tokens"
    )

    variants, traces = {}, {}
    for fmt, engine in engines.items():
        variants[f"{fmt} probe"] = lambda engine=engine: probe(engine, prompt, routing)
        variants[f"{fmt} prefill"] = lambda engine=engine: prefill(engine, prompt)
        modes = ["base", "mixture"] + (["fused"] if fmt in FUSED_FORMATS else [])
        for mode in modes:
            name = f"{fmt} {mode}"
            traces[name] = []
            variants[name] = lambda engine=engine, mode=mode, name=name: decode(
                engine, prompt, routing, mode, args.new_tokens, traces[name]
            )
    traces[DYNAMIC] = []  # the peer in the same run: the same request through transformers' dynamic cache
    variants[DYNAMIC] = lambda: decode(
        engines["float32"], prompt, routing, "base", args.new_tokens, traces[DYNAMIC], step=False
    )
    traces[PLAIN] = []
    variants[PLAIN] = lambda: decode(plain, prompt, routing, "base", args.new_tokens, traces[PLAIN])
    results, _ = interleaved(variants, args.repeats, args.warmup, report)
    bandwidth.append(cpu_bandwidth_gbs())
    best = max(bandwidth)
    report.line(f"# CPU read bandwidth: {bandwidth[0]:.1f} GB/s at the start, {bandwidth[1]:.1f} at the end")

    report.line("\n## Probe against a prefill of the same prompt (ms)")
    report.table(
        ["format", "probe ms", "prefill ms", "probe / prefill"],
        [
            [
                fmt,
                results[f"{fmt} probe"]["wall_ms"].cell(1),
                results[f"{fmt} prefill"]["wall_ms"].cell(1),
                f"{results[f'{fmt} probe']['wall_ms'].median / results[f'{fmt} prefill']['wall_ms'].median:.2f}x",
            ]
            for fmt in formats
        ],
    )

    report.line("\n## Decode (ms/token) against the memory floor of each format")
    rows = []
    reference = results["float32 base"]["decode_ms"].median
    for fmt, engine in engines.items():
        base_bytes = weight_bytes(engine.model)
        own_base = results[f"{fmt} base"]["decode_ms"].median
        for mode in ("base", "mixture", "fused"):
            if f"{fmt} {mode}" not in results:
                continue
            floor = Floor(best, base_bytes + (mixture_bytes(engine.pool, args.k) if mode == "mixture" else 0))
            decode_ms = results[f"{fmt} {mode}"]["decode_ms"]
            rows.append(
                [
                    f"{fmt} {mode}",
                    decode_ms.cell(),
                    f"{floor.ms_per_token:.2f}",
                    f"{floor.times(decode_ms.median):.2f}x",
                    f"{decode_ms.median / own_base:.2f}x",
                    f"{decode_ms.median / reference:.2f}x",
                    results[f"{fmt} {mode}"]["total_ms"].cell(0),
                ]
            )
    floor = Floor(best, weight_bytes(engines["float32"].model))
    for peer in (PLAIN, DYNAMIC):
        decode_ms = results[peer]["decode_ms"]
        ratio = f"{decode_ms.median / reference:.2f}x"
        cells = [decode_ms.cell(), f"{floor.ms_per_token:.2f}", f"{floor.times(decode_ms.median):.2f}x", ratio, ratio]
        rows.append([peer, *cells, results[peer]["total_ms"].cell(0)])
    report.table(
        ["variant", "decode ms/token", "floor ms", "x floor", "/ own base", "/ float32 base", "request ms"], rows
    )
    report.line("# floor = bytes of the format's weights (+ the k adapters' factors for mixture) / read bandwidth")

    if args.agreement:
        texts = (
            [random_prompt(12, TINY["vocab_size"], s) for s in range(args.agreement)]
            if args.tiny
            else zoo_inputs(args.agreement)
        )
        agreement(report, engines, texts, routing, args.agreement_tokens)
    if args.curve_csv:
        curve = [row for name, times in traces.items() for row in amortisation_rows(name, times[args.warmup :])]
        write_csv(args.curve_csv, curve)
        report.line(f"# amortisation curve ({len(curve)} rows) written to {args.curve_csv}")
    if args.append_to:
        report.append_to(args.append_to, argv)


def probe(engine: LoGoEngine, prompt: str, routing: RoutingConfig) -> None:
    engine.raw_signals([prompt], routing.probe)


@torch.inference_mode()
def prefill(engine: LoGoEngine, prompt: str) -> None:
    ids, mask = engine.encode([prompt])
    engine.model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=True, logits_to_keep=1)


def decode(
    engine, prompt, routing, mode: str, new_tokens: int, trace: list, step: bool | None = None
) -> dict[str, float]:
    """One request of exactly new_tokens tokens; base = no adapter (the mixture path with an empty mixture);
    `step` is GenerationConfig.cuda_graph (None: the engine's default decode step, False: transformers')."""
    generation = GenerationConfig(
        max_new_tokens=new_tokens, mode="mixture" if mode == "base" else mode, ignore_eos=True, cuda_graph=step
    )
    result = engine.generate(prompt, routing, generation, mixture={} if mode == "base" else None)
    trace.append(result.token_times_ms)
    return {"decode_ms": per_token_ms(result.token_times_ms), "total_ms": result.timings.total_ms}


def agreement(report: Report, engines: dict, texts: list[str], routing: RoutingConfig, new_tokens: int) -> None:
    """Greedy routed answers of every format against float32's, token for token."""
    generation = GenerationConfig(max_new_tokens=new_tokens)
    answers = {fmt: engine.generate_batch(texts, routing, generation, batch_size=8) for fmt, engine in engines.items()}
    report.line(f"\n## Greedy answers against float32 ({len(texts)} zoo test inputs, {new_tokens} tokens, mixture)")
    rows = []
    for fmt, results in answers.items():
        same = sum(a.token_ids == b.token_ids for a, b in zip(results, answers["float32"], strict=True))
        selected = sum(
            a.routing.selected == b.routing.selected for a, b in zip(results, answers["float32"], strict=True)
        )
        rows.append([fmt, f"{same}/{len(texts)} ({same / len(texts):.1%})", f"{selected}/{len(texts)}"])
    report.table(["format", "identical answers", "same selection"], rows)


if __name__ == "__main__":
    main()
