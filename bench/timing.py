"""The benchmarks' shared harness: interleaved repeats, median [min-max], the machine, and the BENCHMARKS.md section.

Every benchmark in bench/ measures the same way:
  1. the variants run round-robin (each round starts one variant later), so all of them see the same machine;
  2. round 0 is a warm-up and is dropped; at least 5 measured rounds follow (fewer is marked as a smoke run);
  3. every figure is the median of its rounds, printed with its min and max; a ratio is a ratio of medians
     from this same run;
  4. the output is collected by a Report, which can append it to BENCHMARKS.md as a dated section that
     names the command line.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import peft
import torch
import transformers
from tqdm.auto import tqdm

MIN_REPEATS = 5


@dataclass
class Samples:
    """The measured rounds of one figure."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def cell(self, digits: int = 2) -> str:
        """'median [min-max]'."""
        if not self.values:
            return "-"
        return f"{self.median:.{digits}f} [{min(self.values):.{digits}f}-{max(self.values):.{digits}f}]"


Measurement = dict[str, float]  # what one run of a variant returns: figure name -> value
Results = dict[str, dict[str, Samples]]  # variant -> figure -> rounds


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def interleaved(
    variants: Mapping[str, Callable[[], Measurement | None]],
    repeats: int,
    warmup: int = 1,
    report: Report | None = None,
) -> tuple[Results, dict[str, list[Measurement]]]:
    """Run every variant `warmup + repeats` times, round-robin with a rotating start; drop the warm-up rounds.

    A variant returns its own figures (e.g. decode ms/token) or None; its wall time is always recorded as
    'wall_ms'. Returns the samples per variant and figure, and every measured run's figures in order. Each
    measured run is printed to stderr as it ends, so a run killed from outside still leaves its numbers; with
    a `report` that has a time budget, no round after the first measured one starts once it is spent, and the
    report says how many rounds were measured.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    names = list(variants)
    results: Results = {name: {} for name in names}
    runs: dict[str, list[Measurement]] = {name: [] for name in names}
    bar = tqdm(total=(warmup + repeats) * len(names), desc="benchmark runs", leave=False, file=sys.stderr)
    for round_ in range(warmup + repeats):
        if report is not None and report.out_of_time() and round_ > warmup:
            measured = round_ - warmup
            report.line(f"# time budget spent: {measured} of {repeats} measured rounds of {', '.join(names)}")
            break
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            bar.update()
            sync()
            started = time.perf_counter()
            figures = variants[name]() or {}
            sync()
            figures = {"wall_ms": (time.perf_counter() - started) * 1000, **figures}
            if round_ >= warmup:
                runs[name].append(figures)
                for figure, value in figures.items():
                    results[name].setdefault(figure, Samples()).values.append(value)
                shown = ", ".join(f"{figure}={value:.4g}" for figure, value in figures.items())
                print(f"# measured round {round_ - warmup + 1} of {name}: {shown}", file=sys.stderr, flush=True)
    bar.close()
    return results, runs


def per_token_ms(token_times_ms: Sequence[float]) -> float:
    """Decode ms/token from the times each token was ready: the first token is the prefill's."""
    return (token_times_ms[-1] - token_times_ms[0]) / max(len(token_times_ms) - 1, 1)


def amortisation_rows(variant: str, token_times: Sequence[Sequence[float]]) -> list[dict]:
    """Average ms per token after n tokens (request start included) for n = 1..shortest run, over the rounds."""
    shortest = min(len(times) for times in token_times)
    rows = []
    for n in range(1, shortest + 1):
        averages = Samples([times[n - 1] / n for times in token_times])
        rows.append(
            {
                "variant": variant,
                "tokens": n,
                "ms_per_token_median": round(averages.median, 4),
                "ms_per_token_min": round(min(averages.values), 4),
                "ms_per_token_max": round(max(averages.values), 4),
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_description() -> str:
    if not torch.cuda.is_available():
        return "no GPU"
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    try:
        driver = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split("\n")[0]
    except (OSError, subprocess.SubprocessError) as error:
        driver = f"unknown ({error})"
    return f"{names}, driver {driver or 'unknown'}, CUDA {torch.version.cuda}"


def machine_lines() -> list[str]:
    return [
        f"# machine: {cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; "
        f"{gpu_description()}",
        f"# python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"peft {peft.__version__}",
    ]


def add_harness_arguments(parser: argparse.ArgumentParser, repeats: int = MIN_REPEATS) -> None:
    parser.add_argument("--repeats", type=int, default=repeats, help=f"measured rounds (at least {MIN_REPEATS})")
    parser.add_argument("--warmup", type=int, default=1, help="rounds run first and dropped")
    parser.add_argument(
        "--append-to", type=Path, default=None, help="append this run's output to this file (BENCHMARKS.md)"
    )
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        help="start no measured round after this long (a machine with a time limit keeps what was measured)",
    )


class Report:
    """Prints the benchmark's lines as they come and keeps them, to append to BENCHMARKS.md from this very output."""

    def __init__(self, title: str, module: str, repeats: int, warmup: int, budget_minutes: float | None = None) -> None:
        self.title, self.module = title, module
        self.lines: list[str] = []
        self.deadline = None if budget_minutes is None else time.monotonic() + 60 * budget_minutes
        for line in machine_lines():
            self.line(line)
        self.line(f"# {repeats} measured rounds after {warmup} warm-up, variants interleaved; median [min-max]")
        if repeats < MIN_REPEATS:
            self.line(f"# SMOKE RUN: fewer than {MIN_REPEATS} rounds, these figures are not a measurement")

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def line(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.line(" | ".join(header))
        for row in rows:
            if len(row) != len(header):
                raise ValueError(f"table row {row} has {len(row)} cells, the header {len(header)}")
            self.line(" | ".join(row))

    def append_to(self, path: Path, argv: Sequence[str] | None = None) -> None:
        """Append a dated section with the command line and the output, as printed."""
        argv = sys.argv[1:] if argv is None else argv
        command = "python -m " + " ".join(shlex.quote(a) for a in [self.module, *argv])
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        body = "\n".join(self.lines)
        with Path(path).open("a") as f:
            f.write(f"\n## {self.title} ({stamp})\n\n`{command}`\n\n```\n{body}\n```\n")
