"""Command line: `python -m app route|generate "<prompt>"` prints the routing (and answer) as a table or JSON."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from .config import (
    AGGREGATES,
    CALIBRATIONS,
    MODES,
    PROBE_INPUTS,
    SIGNALS,
    EngineConfig,
    GenerationConfig,
    ProbeConfig,
    RoutingConfig,
)
from .results import Generation, Routing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="LoGo: route a prompt over LoRA adapters.")
    commands = parser.add_subparsers(dest="command", required=True)
    for command, help_text in (
        ("route", "score every adapter and show the weighted top-k"),
        ("generate", "route, then answer with the merged adapters"),
    ):
        sub = commands.add_parser(command, help=help_text)
        sub.add_argument("prompt", help="the prompt (wrapped in the chat template unless --raw)")
        sub.add_argument("--signal", choices=SIGNALS, default="norm", help="norm (default) or entropy")
        sub.add_argument("--k", type=int, default=3, help="adapters to keep (default 3)")
        sub.add_argument("--calibration", choices=CALIBRATIONS, default="none", help="none is the paper's raw signal")
        sub.add_argument("--probe-block", type=int, default=-1, help="block index, negative from the end (default -1)")
        sub.add_argument("--probe-module", default="self_attn.q_proj", help="module inside the block")
        sub.add_argument("--probe-input", choices=PROBE_INPUTS, default="module", help="module input or residual")
        sub.add_argument("--aggregate", choices=AGGREGATES, default="last", help="last token or mean over tokens")
        sub.add_argument(
            "--reference-prompts",
            metavar="FILE",
            help="calibration prompts, one per line (default: the generic set in assets/reference_prompts.txt; "
            "the adapters' own sample inputs calibrate better)",
        )
        sub.add_argument(
            "--adapters", nargs="+", help="adapter or pool directories / hub ids (default assets/adapters)"
        )
        sub.add_argument("--base-model", default="embedded", help="'embedded', a model directory or a hub id")
        sub.add_argument("--device", help="cuda or cpu (default: cuda when available)")
        sub.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
        sub.add_argument("--raw", action="store_true", help="send the prompt as is, without the chat template")
        sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
        if command == "generate":
            sub.add_argument("--mode", choices=MODES, default="mixture", help="mixture (default) or fused")
            sub.add_argument("--max-new-tokens", type=int, default=64, help="tokens to generate at most (default 64)")
            sub.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default)")
            sub.add_argument("--seed", type=int, help="sampling seed")
    return parser


def _configs(args) -> tuple[EngineConfig, RoutingConfig]:
    engine_kwargs = dict(base_model=args.base_model, device=args.device, dtype=args.dtype, chat_template=not args.raw)
    if args.adapters:
        engine_kwargs["adapters"] = tuple(args.adapters)
    if args.reference_prompts:
        engine_kwargs["reference_prompts"] = args.reference_prompts
    probe = ProbeConfig(
        block=args.probe_block, module=args.probe_module, probe_input=args.probe_input, aggregate=args.aggregate
    )
    routing = RoutingConfig(signal=args.signal, k=args.k, calibration=args.calibration, probe=probe)
    return EngineConfig(**engine_kwargs), routing


def format_routing(routing: Routing) -> str:
    weights = routing.mixture
    width = max(len(n) for n in routing.adapters)
    lines = [f"{'adapter':<{width}}  {'signal':>10}  {'score':>10}  {'weight':>7}"]
    order = sorted(range(len(routing.adapters)), key=lambda i: -routing.scores[i])
    for i in order:
        name = routing.adapters[i]
        weight = f"{weights[name]:.3f}" if name in weights else ""
        mark = " *" if name in weights else ""
        lines.append(f"{name:<{width}}  {routing.signals[i]:>10.4g}  {routing.scores[i]:>10.4g}  {weight:>7}{mark}")
    lines.append(f"probe: {routing.probe_ms:.1f} ms   config: {json.dumps(routing.config)}")
    return "\n".join(lines)


def format_generation(generation: Generation) -> str:
    t = generation.timings
    parts = [generation.text, ""]
    if generation.routing:
        parts.append(format_routing(generation.routing))
    parts.append(
        f"{generation.n_tokens} tokens, {generation.mode}: probe {t.probe_ms:.1f} ms, merge {t.merge_ms:.1f} ms, "
        f"prefill {t.prefill_ms:.1f} ms, decode {t.decode_ms:.1f} ms, total {t.total_ms:.1f} ms"
    )
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        engine_config, routing = _configs(args)
        generation = None
        if args.command == "generate":
            generation = GenerationConfig(
                mode=args.mode, max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed
            )
        if not args.prompt.strip():
            raise ValueError("the prompt is empty: type a question or an instruction")
        from .engine import LoGoEngine  # heavy import after the arguments are known to be valid

        engine = LoGoEngine(engine_config)
        if args.command == "route":
            result = engine.route(args.prompt, routing)[0]
            print(json.dumps(result.to_dict(), indent=2) if args.json else format_routing(result))
        else:
            result = engine.generate(args.prompt, routing, generation)
            print(json.dumps(result.to_dict(), indent=2) if args.json else format_generation(result))
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
