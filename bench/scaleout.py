"""Data-parallel evaluation: one `analysis.evaluate` job on one process, then on several, timed.

    python -m bench.scaleout [--processes 2] [--launcher accelerate|torchrun] [--threads-per-process T]
                             [--work DIR] -- EVALUATE_ARGS

Each run writes into its own empty directory under --work, so neither resumes the other. The single run is
`python -m analysis.evaluate EVALUATE_ARGS`; the sharded run starts the same module under the launcher, one
process per GPU. Without CUDA the launcher is torchrun and the processes talk over gloo: a smoke test of the
sharding, not a speed measurement. Prints both wall times, the speed-up against the 1.8x target, and whether
the sharded run wrote the same cells with the same answers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from zoo.data import REPO_ROOT

TARGET = 1.8


@dataclass(frozen=True)
class Run:
    runs: Path  # the --runs directory the job wrote
    seconds: float
    log: str  # stderr: the evaluator logs there


def launcher_command(launcher: str, processes: int, threads: int | None, port: int) -> list[str]:
    """The command that starts `processes` copies of the next `-m module` (one GPU each where CUDA exists)."""
    if launcher == "torchrun":
        run = [sys.executable, "-m", "torch.distributed.run"]
        return [*run, "--nproc_per_node", str(processes), "--master_port", str(port)]
    # accelerate exports --num_cpu_threads_per_process (default 1) as OMP_NUM_THREADS in every process
    threads_flag = ["--num_cpu_threads_per_process", str(threads)] if threads else []
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(port),
        *threads_flag,
    ]


def evaluate(
    prefix: list[str], args: list[str], work: Path, name: str, env: dict[str, str], timeout: float | None = None
) -> Run:
    """Run `prefix -m analysis.evaluate args` into work/name (per-instance files) and work/name_summary, timed."""
    runs = work / name
    if runs.exists():
        raise SystemExit(f"error: {runs} exists; pass an empty --work directory so that no run resumes another")
    outputs = ["--runs", str(runs), "--out", str(work / f"{name}_summary")]
    started = time.perf_counter()
    done = subprocess.run(
        [*prefix, "-m", "analysis.evaluate", *args, *outputs],
        check=False,
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"error: the {name} run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return Run(runs, seconds, done.stderr)


def answers(runs: Path) -> dict[str, list[tuple]]:
    """cell file -> per instance (output, selected adapters, score)."""
    cells = {}
    for path in sorted((runs / "instances").glob("*/*/*.jsonl")):
        records = map(json.loads, path.read_text().splitlines())
        cells[str(path.relative_to(runs))] = [(r["output"], r["selected"], r["score"]) for r in records]
    return cells


def compare(single: Run, sharded: Run, processes: int) -> list[str]:
    """The report's lines: times, speed-up against the target, agreement of the two runs."""
    one, many = answers(single.runs), answers(sharded.runs)
    speedup = single.seconds / sharded.seconds
    verdict = "met" if speedup >= TARGET else "MISSED"
    instances = sum(len(rows) for rows in one.values())
    shared = one.keys() & many.keys()
    differing = sum(a != b for cell in shared for a, b in zip(one[cell], many[cell], strict=True))
    return [
        f"one process | {single.seconds:.1f} s | {len(one)} cells",
        f"{processes} processes | {sharded.seconds:.1f} s | {len(many)} cells",
        f"#   speed-up {speedup:.2f}x (target >= {TARGET}x: {verdict})",
        (
            f"#   same cells written: {'yes' if one.keys() == many.keys() else 'NO'}; "
            f"instances whose answer, selection or score differ: {differing} of {instances}"
        ),
    ]


def measure(
    job: list[str],
    work: Path,
    processes: int,
    launcher: str = "torchrun",
    threads: int | None = None,
    port: int = 29531,
    timeout: float | None = None,
) -> tuple[Run, Run]:
    """Run the evaluation `job` on one process, then sharded over `processes`, each into its own folder of `work`."""
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    sharded_env = {**env, "OMP_NUM_THREADS": str(threads)} if threads else env
    single = evaluate([sys.executable], job, work, "single", env, timeout)
    launch = launcher_command(launcher, processes, threads, port)
    sharded = evaluate(launch, job, work, "sharded", sharded_env, timeout)
    return single, sharded


def main(argv=None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], usage="%(prog)s [options] -- EVALUATE_ARGS")
    parser.add_argument("--processes", type=int, default=max(2, torch.cuda.device_count()))
    # accelerate's --multi_gpu starts torchrun; without GPUs, accelerate starts unconnected processes, so there
    # torchrun is the launcher (PartialState then shards over CPU processes talking over gloo)
    parser.add_argument(
        "--launcher",
        choices=("accelerate", "torchrun"),
        default="accelerate" if torch.cuda.is_available() else "torchrun",
    )
    parser.add_argument("--threads-per-process", type=int, help="CPU threads per sharded process (OMP_NUM_THREADS)")
    parser.add_argument("--work", type=Path, help="an empty directory for both runs (default: a new temporary one)")
    parser.add_argument("--port", type=int, default=29531, help="the launcher's rendezvous port")
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args, job = parser.parse_args(argv[:split]), argv[split + 1 :]
    if not job:
        parser.error("give the evaluation after --, e.g. -- --methods lorahub --setting held_out --limit 50")
    if any(flag in job for flag in ("--runs", "--out")):
        parser.error("--runs and --out are set per run by this benchmark; leave them out of EVALUATE_ARGS")
    if args.processes < 2:
        parser.error(f"--processes must be at least 2, got {args.processes}")
    if args.launcher == "accelerate" and not torch.cuda.is_available():
        parser.error("--launcher accelerate needs CUDA GPUs here; on a CPU use --launcher torchrun")
    if torch.cuda.is_available() and args.processes > torch.cuda.device_count():
        parser.error(f"--processes {args.processes} but only {torch.cuda.device_count()} GPUs: one process per GPU")

    work = args.work or Path(tempfile.mkdtemp(prefix="logo-scaleout-"))
    gpus = [torch.cuda.get_device_name(i) for i in range(args.processes)] if torch.cuda.is_available() else []
    device = ", ".join(gpus) or "CPU"
    print(f"# {device}; {args.launcher}, {args.processes} processes; work in {work}")
    print(f"# python -m analysis.evaluate {' '.join(job)}", flush=True)
    single, sharded = measure(job, work, args.processes, args.launcher, args.threads_per_process, args.port)
    lines = ["run | wall time | cells", *compare(single, sharded, args.processes)]
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
