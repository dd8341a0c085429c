"""The `logo gen` subcommand: a task description (+ demos) -> a generated PEFT LoRA directory for the edge model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

GENERATOR_ENV = "LOGO_GENERATOR"  # a default for --generator, so scripts need not repeat it


def add_gen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("description", help="the task description: what goes in, what comes out")
    parser.add_argument(
        "--demos", metavar="FILE", type=Path, help="demonstrations: a JSON list or JSONL of {input, output} objects"
    )
    parser.add_argument("--out", metavar="DIR", type=Path, required=True, help="where the PEFT adapter is written")
    parser.add_argument(
        "--generator",
        metavar="DIR",
        type=Path,
        help=f"a trained generator (generator.safetensors + generator_config.json); default: ${GENERATOR_ENV}",
    )
    parser.add_argument(
        "--experts",
        metavar="DIR",
        type=Path,
        help="the task adapters a zoo-experts generator routes over: a pool directory holding one adapter folder "
        "per expert it names (assets/adapters in a LoGo Studio checkout)",
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best there is)")
    parser.add_argument("--json", action="store_true", help="print the adapter's card as JSON instead of a summary")


def generator_dir(args: argparse.Namespace, environ: dict) -> Path:
    """--generator, else $LOGO_GENERATOR; neither is an error that says where a generator lives."""
    if args.generator is not None:
        return args.generator
    if environ.get(GENERATOR_ENV):
        return Path(environ[GENERATOR_ENV])
    raise ValueError(
        f"no generator given: pass --generator DIR (a trained LoRA-Gen generator, e.g. assets/loragen in a "
        f"LoGo Studio checkout) or set {GENERATOR_ENV}"
    )


def run_gen(args: argparse.Namespace) -> int:
    import os

    from .generator import LoraGenerator, experts_named_by
    from .prompts import check_description, load_demos

    check_description(args.description)  # before loading anything
    demos = load_demos(args.demos) if args.demos is not None else ()
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file: give a directory for the adapter")
    directory = generator_dir(args, dict(os.environ))
    from ..cli import check_device

    check_device(args.device)
    experts = experts_named_by(directory, args.experts) if args.experts is not None else ()
    generator = LoraGenerator.load(directory, expert_adapters=experts, device=args.device)
    lora = generator.generate(args.description, demos)
    lora.save(args.out)
    card = {"out": str(args.out), **lora.card()}
    print(json.dumps(card, indent=2) if args.json else format_lora(card))
    return 0


def format_lora(card: dict) -> str:
    """A short summary: where it went, the prompt's size and the two strongest experts of each layer."""
    names = card["expert_names"]
    lines = [
        f"adapter written to {card['out']} (rank {card['rank']}, hash {card['description_hash']})",
        f"system prompt: {card['context_tokens']} edge tokens out of the context, {card['n_demos']} demos; "
        f"generated in {card['timings']['total_ms']:.0f} ms",
        "layer  experts (gate)",
    ]
    for layer, row in enumerate(card["gates"]):
        kept = sorted((g, names[j]) for j, g in enumerate(row) if g > 0)[::-1]
        lines.append(f"{layer:>5}  " + ", ".join(f"{name} ({g:.2f})" for g, name in kept))
    lines.append(f'answer with it: logo generate --adapter {card["out"]} "<input>"')
    return "\n".join(lines)
