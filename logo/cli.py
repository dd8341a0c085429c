"""The `logo` command (also `python -m logo`): route or answer prompts over LoRA adapters, one or a batch at a time.

Every option that sets a configuration field is built from that field (its type, help text and default), so the
defaults live only in logo/config.py. Each subcommand is one entry of COMMANDS: a function that adds its
arguments and a function that runs it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .config import (
    AGGREGATES,
    CALIBRATIONS,
    DTYPES,
    MODES,
    PRESETS,
    PROBE_INPUTS,
    SIGNALS,
    WEIGHTINGS,
    EngineConfig,
    GenerationConfig,
    ProbeConfig,
    RoutingConfig,
    check_text,
    field_default,
    field_help,
)
from .loragen.cli import add_gen_arguments, run_gen
from .prompt_files import FORMATS, Prompt, read_prompts
from .results import Generation, Routing

BATCH_SIZE = 16  # prompts per engine call in a batch run: one step of the progress bar (generate_batch's default)


# ---------------------------------------------------------------- options built from the config fields


@dataclass(frozen=True)
class Option:
    """A command-line option that sets one field of a config dataclass; type, help and default come from the field."""

    config: type
    name: str
    flag: str = ""  # default: --field-name
    choices: tuple[str, ...] | None = None
    metavar: str = ""  # default: the field name in capitals
    negate: str = ""  # for a bool field that defaults to True: this help text, and the flag sets it to False

    @property
    def dest(self) -> str:
        return f"{self.config.__name__}.{self.name}"

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        default = field_default(self.config, self.name)
        flag = self.flag or "--" + self.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": self.dest, "default": argparse.SUPPRESS}  # unset options keep the default
        hint = typing.get_type_hints(self.config)[self.name]
        if self.negate:
            kwargs.update(action="store_false", help=self.negate)
        elif hint is bool:
            kwargs.update(action="store_true", help=field_help(self.config, self.name))
        elif _without_none(hint) is bool:
            kwargs.update(action=argparse.BooleanOptionalAction, help=_help(self.config, self.name, "unset"))
        else:
            value_type = _without_none(hint)
            if typing.get_origin(value_type) is tuple:
                kwargs["nargs"] = "+"
                value_type = typing.get_args(value_type)[0]
            shown = "unset" if default is None else default
            if value_type is not hint and value_type in (int, float) and default is not None:
                value_type = _or_none(value_type)  # a field that is on by default: 'none' turns it off
            kwargs.update(type=value_type, choices=self.choices, help=_help(self.config, self.name, shown or "none"))
            if self.choices is None:
                kwargs["metavar"] = self.metavar or self.name.upper()
        parser.add_argument(flag, **kwargs)


def _without_none(hint: Any) -> Any:
    """`int` for `int | None`; the hint itself otherwise."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else hint
    return hint


def _or_none(value_type: type) -> Callable[[str], Any]:
    """argparse type: the number, or None for 'none' / 'off'."""

    def parse(text: str) -> Any:
        return None if text.strip().lower() in ("none", "off") else value_type(text)

    parse.__name__ = f"{value_type.__name__} or 'none'"  # argparse names the type in its error message
    return parse


def _help(config: type, name: str, default: Any) -> str:
    return f"{field_help(config, name)} (default: {default})".replace("%", "%%")  # argparse formats help with %


ENGINE_OPTIONS = (
    Option(EngineConfig, "adapters", metavar="DIR"),
    Option(EngineConfig, "base_model"),
    Option(EngineConfig, "device"),
    Option(EngineConfig, "dtype", choices=DTYPES),
    Option(EngineConfig, "chat_template", flag="--raw", negate="send the prompt as is, without the chat template"),
    Option(EngineConfig, "reference_prompts", metavar="FILE"),
    Option(EngineConfig, "cache_dir", metavar="DIR"),
    Option(EngineConfig, "max_prompt_tokens"),
    Option(EngineConfig, "max_new_tokens_cap"),
)
ROUTING_OPTIONS = (
    Option(RoutingConfig, "signal", choices=SIGNALS),
    Option(RoutingConfig, "k"),
    Option(RoutingConfig, "calibration", choices=CALIBRATIONS),
    Option(ProbeConfig, "block", flag="--probe-block"),
    Option(ProbeConfig, "module", flag="--probe-module"),
    Option(ProbeConfig, "probe_input", choices=PROBE_INPUTS),
    Option(ProbeConfig, "aggregate", choices=AGGREGATES),
    Option(RoutingConfig, "weighting", choices=WEIGHTINGS),
    Option(RoutingConfig, "temperature", flag="--softmax-temperature"),  # --temperature is the sampling one
    Option(RoutingConfig, "score_margin"),
    Option(RoutingConfig, "min_score_ratio"),
    Option(RoutingConfig, "loudness_limit"),
)
GENERATION_OPTIONS = (
    Option(GenerationConfig, "mode", choices=MODES),
    Option(GenerationConfig, "max_new_tokens"),
    Option(GenerationConfig, "temperature"),
    Option(GenerationConfig, "top_p"),
    Option(GenerationConfig, "top_k"),
    Option(GenerationConfig, "seed"),
    Option(GenerationConfig, "ignore_eos"),
    Option(GenerationConfig, "cuda_graph"),
)


def given(args: argparse.Namespace, config: type) -> dict[str, Any]:
    """The fields of `config` set on the command line (the others keep the dataclass defaults)."""
    prefix = config.__name__ + "."
    values = {dest.removeprefix(prefix): value for dest, value in vars(args).items() if dest.startswith(prefix)}
    return {name: tuple(value) if isinstance(value, list) else value for name, value in values.items()}


def engine_config(args: argparse.Namespace) -> EngineConfig:
    return EngineConfig(**given(args, EngineConfig))


def routing_config(args: argparse.Namespace) -> RoutingConfig:
    """The --preset's config (recommended unless given) with every routing option given on the command line."""
    preset = getattr(args, "preset", "recommended")
    return RoutingConfig.preset(preset, **given(args, RoutingConfig), **given(args, ProbeConfig))


def generation_config(args: argparse.Namespace) -> GenerationConfig:
    return GenerationConfig(**given(args, GenerationConfig))


# ---------------------------------------------------------------- the parser


def add_prompt_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "prompt",
        nargs="?",
        help="the prompt (wrapped in the chat template unless --raw); '-' reads a batch from standard input",
    )
    parser.add_argument(
        "--input",
        metavar="FILE",
        type=Path,
        help='a batch of prompts: one per line, or JSONL (one object per line with a "prompt" key)',
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="auto",
        help="how a batch is written; auto: JSONL when its first non-blank line starts with '{' (default: auto)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=BATCH_SIZE, metavar="N", help=f"prompts per engine call ({BATCH_SIZE})"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on standard error")
    parser.add_argument("--json", action="store_true", help="one prompt: print JSON instead of a table")


def add_route_arguments(parser: argparse.ArgumentParser) -> None:
    add_prompt_arguments(parser)
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default="recommended",
        help="routing settings: 'paper' is the LoGo paper exactly (raw norm, last block), 'recommended' the best on "
        "the zoo's dev splits; options given explicitly override the preset (default: recommended)",
    )
    for option in (*ROUTING_OPTIONS, *ENGINE_OPTIONS):
        option.add_to(parser)


def add_route_command_arguments(parser: argparse.ArgumentParser) -> None:
    add_route_arguments(parser)
    parser.add_argument(
        "--export-mixture",
        metavar="DIR",
        type=Path,
        help="write the routed mixture as one PEFT LoRA adapter into DIR (a batch: DIR/line-N per prompt), for any "
        "LoRA server; DIR must be new or empty",
    )


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    add_route_arguments(parser)
    for option in GENERATION_OPTIONS:
        option.add_to(parser)
    parser.add_argument(
        "--adapter",
        metavar="DIR",
        type=Path,
        help="answer with this one adapter merged, without routing (e.g. one written by logo gen); "
        "instead of --adapters; --mode defaults to fused",
    )


@dataclass(frozen=True)
class Command:
    """One subcommand: its one-line help, what adds its arguments, and what runs it (returns the exit code)."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logo",
        description="LoGo: route prompts over LoRA adapters and answer with the weighted mixture.",
        epilog="A batch (PROMPT '-' or --input FILE) is written as JSONL, one object per prompt, with its line number.",
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = subcommands.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run, parser=sub)
    return parser


# ---------------------------------------------------------------- running


class BatchError(ValueError):
    """A batch stopped at a prompt the engine refused."""


def batch_of(args: argparse.Namespace) -> list[Prompt] | None:
    """The prompts of a batch run (PROMPT '-' or --input FILE), or None for a single prompt argument."""
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be a positive integer, got {args.batch_size}")
    if args.input is not None:
        if args.prompt is not None:
            raise ValueError(f"give either a prompt or --input {args.input}, not both")
        with open(args.input, "rb") as stream:
            return read_prompts(stream, str(args.input), args.format)
    if args.prompt == "-":
        return read_prompts(sys.stdin.buffer, "standard input", args.format)
    if args.prompt is None:
        raise ValueError("no prompt given: pass a prompt, '-' to read prompts from standard input, or --input FILE")
    check_text(args.prompt, "the prompt argument")
    if not args.prompt.strip():
        raise ValueError("the prompt is empty: type a question or an instruction")
    return None


def check_device(device: str | None) -> None:
    """Refuse a device this machine does not have before loading anything onto it."""
    if device in (None, "cpu"):
        return
    import torch

    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps: this machine has no MPS (Apple GPU) backend: use --device cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available here: use --device cpu or leave --device out")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s): "
                f"choose cuda:0 to cuda:{torch.cuda.device_count() - 1}"
            )


def load_engine(config: EngineConfig):
    check_device(config.device)
    from .engine import LoGoEngine  # heavy import after the arguments are known to be valid

    return LoGoEngine(config)


def with_pool_default_k(args: argparse.Namespace, routing: RoutingConfig, engine) -> RoutingConfig:
    """An unset --k means the engine's default (k = 3, or the whole pool when it is smaller)."""
    return routing if "k" in given(args, RoutingConfig) else routing.with_(k=engine.default_routing.k)


def run_batch(
    args: argparse.Namespace,
    prompts: list[Prompt],
    answer: Callable[[list[str]], Sequence[Routing | Generation]],
    check_one: Callable[[str], object],
    out: TextIO,
) -> None:
    """Answer the prompts `args.batch_size` at a time, writing one JSON line per prompt as each call ends.

    When a call fails, `check_one` runs its prompts one by one to name the line that caused it.
    """
    from tqdm import tqdm

    with tqdm(total=len(prompts), unit="prompt", file=sys.stderr, disable=args.no_progress) as bar:
        for start in range(0, len(prompts), args.batch_size):
            chunk = prompts[start : start + args.batch_size]
            try:
                results = answer([p.text for p in chunk])
            except (ValueError, KeyError) as err:
                raise _located(err, chunk, check_one) from err
            for prompt, result in zip(chunk, results, strict=True):
                out.write(json.dumps({"line": prompt.line, **result.to_dict()}) + "\n")
            out.flush()
            bar.update(len(chunk))


def _located(err: Exception, chunk: list[Prompt], check_one: Callable[[str], object]) -> BatchError:
    """The error of the first prompt of `chunk` that fails alone, with its line; else `err` for the lines."""
    for prompt in chunk:
        try:
            check_one(prompt.text)
        except (ValueError, KeyError) as alone:
            return BatchError(f"line {prompt.line}: {alone}")
    return BatchError(f"lines {chunk[0].line}-{chunk[-1].line}: {err}")


def run_route(args: argparse.Namespace) -> int:
    config, routing, prompts = engine_config(args), routing_config(args), batch_of(args)
    engine = load_engine(config)
    routing = with_pool_default_k(args, routing, engine)
    if prompts is None:
        result = engine.route(args.prompt, routing)[0]
        if args.export_mixture:
            engine.export_mixture(result, args.export_mixture)
        print(json.dumps(result.to_dict(), indent=2) if args.json else format_routing(result))
    else:
        lines = iter([p.line for p in prompts])

        def route(texts: list[str]) -> list[Routing]:
            return engine.route(texts, routing)

        def route_and_export(texts: list[str]) -> list[Routing]:
            results = route(texts)
            for result in results:
                engine.export_mixture(result, args.export_mixture / f"line-{next(lines)}")
            return results

        run_batch(args, prompts, route_and_export if args.export_mixture else route, route, sys.stdout)
    return 0


def run_generate(args: argparse.Namespace) -> int:
    config, routing, generation = engine_config(args), routing_config(args), generation_config(args)
    if args.adapter is not None:  # one adapter, merged: no routing
        if "adapters" in given(args, EngineConfig):
            raise ValueError(f"give either --adapter {args.adapter} or --adapters, not both")
        config = EngineConfig(**{**given(args, EngineConfig), "adapters": (str(args.adapter),)})
        if "mode" not in given(args, GenerationConfig):
            generation = GenerationConfig(**{**given(args, GenerationConfig), "mode": "fused"})
    prompts = batch_of(args)
    engine = load_engine(config)
    routing = with_pool_default_k(args, routing, engine)
    mixture = {engine.adapter_names[0]: 1.0} if args.adapter is not None else None
    if prompts is None:
        result = engine.generate(args.prompt, routing, generation, mixture=mixture)
        print(json.dumps(result.to_dict(), indent=2) if args.json else format_generation(result))
    else:

        def generate(texts: list[str]) -> list[Generation]:
            mixtures = None if mixture is None else [mixture] * len(texts)
            return engine.generate_batch(texts, routing, generation, mixtures=mixtures, batch_size=args.batch_size)

        run_batch(args, prompts, generate, lambda text: engine.route([text], routing), sys.stdout)
    return 0


COMMANDS: dict[str, Command] = {
    "route": Command("score every adapter and show the weighted top-k", add_route_command_arguments, run_route),
    "generate": Command("route, then answer with the merged adapters", add_generate_arguments, run_generate),
    "gen": Command("LoRA-Gen: generate a LoRA adapter from a task description", add_gen_arguments, run_gen),
}


# ---------------------------------------------------------------- output


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


# ---------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parsed arguments; bad arguments exit with status 2 and `logo ...: error: ...` on standard error."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    for position, arg in enumerate(argv, start=1):
        try:
            check_text(arg)
        except ValueError:
            parser.error(
                f"argument {position} ({arg!a}) is not valid UTF-8: pass arguments in UTF-8, "
                f"or put the prompts in a file and pass --input FILE"
            )
    args = parser.parse_args(argv)
    if "EngineConfig.adapters" not in vars(args) and args.command != "gen" and not getattr(args, "adapter", None):
        args.parser.error(
            "no adapters given: pass --adapters DIR ... (adapter directories, a pool directory such as "
            "assets/adapters in a LoGo Studio checkout, or hub ids)"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `logo ... | head`: the reader left; stop quietly, as Unix tools do
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout again at exit
        return 141
