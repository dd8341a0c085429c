"""Evaluates the shipped LoRA-Gen generator on the zoo: scores with CIs, prompt tokens, latency, payback.

    python -m analysis.loragen_eval [--unseen-limit 10] [--seen-limit 4] [--out assets/results/loragen]   # CPU
    python -m analysis.loragen_eval --device cuda --unseen-limit 100 --seen-limit 40 --budget-minutes 6 \
        --resume-from assets/results/loragen --out $OUT/assets/results/loragen                         # one GPU
    python -m analysis.loragen_eval --split dev --conditions gen_desc0 gen_desc5 ...   # tuning, never on test

Every answer is greedy and in float32 on either device (the same numbers as the CPU, up to kernel order).

Conditions (issue 12's rows); the input is the task's bare test input unless said otherwise:
  base_desc0    row 1: base model, the task description as its system prompt
  base_desc5    row 1: the same with 5 train demos in the system prompt
  base_bare     row 2: base model, the chat template's own system prompt
  logo          row 3: LoGo per instance over the 27 zoo adapters (the engine's default routing)
  oracle        row 4 (seen): the task's own zoo adapter, on the zoo prompt it was trained on (instruction + input)
  oracle_bare   row 4 (seen): the same adapter on the bare input
  gen_desc0     row 5: the adapter generated from the description, merged (mixture {adapter: 1.0})
  gen_desc5     row 5: the adapter generated from description + the same 5 demos
  multi_desc0   row 6: one multi-task LoRA of all pool tasks (zoo.loragen_multitask) merged, description in context
  multi_desc5   row 6: the same with the 5 demos in context
  logo_demos    row 7: training-free LoRA-Gen: LoGo's recommended routing of each of the 5 demo inputs, the
                weights averaged into one mixture (one adapter, as engine.export_mixture would write it), bare input
  ctl_mismatch / ctl_random / ctl_empty (unseen): adapters generated from another held-out task's description,
                a string of random words, an empty description
Generated and multi-task adapters are merged into the edge weights (W += B A, undone exactly after), as LoRA-Gen
deploys them; the zoo's rows run through the engine.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import random
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from analysis.loragen_latency import chat_prompt, latency_comparison, merged, merged_factors, prompt_tokens
from analysis.loragen_stats import per_task_markdown, score_table, summary_markdown
from bench.timing import cpu_model
from logo.config import EngineConfig, GenerationConfig
from logo.engine import LoGoEngine
from logo.loragen import LoraGenerator
from logo.loragen.prompts import system_prompt
from logo.pool import load_adapter
from logo.prompts import left_pad
from zoo.data import ADAPTERS_DIR, ASSETS_DIR, TASKS_DIR, Task, load_tasks
from zoo.loragen_data import demos_from, load_generator, task_description
from zoo.loragen_multitask import DEFAULT_OUT as MULTITASK_DIR
from zoo.metrics import score

log = logging.getLogger(__name__)
GENERATOR_DIR = ASSETS_DIR / "loragen"
RESULTS_DIR = ASSETS_DIR / "results" / "loragen"
N_DEMOS = 5
RANDOM_WORDS = ("lantern", "quietly", "orbit", "marble", "seven", "harbour", "violet", "ledger", "cactus", "drum")
LABELS = {
    "base_desc0": "1 base, description in context",
    "base_desc5": "1 base, description + 5 demos in context",
    "base_bare": "2 base, bare input",
    "logo": "3 LoGo per instance, bare input",
    "oracle": "4 own zoo adapter, zoo prompt (oracle)",
    "oracle_bare": "4 own zoo adapter, bare input",
    "gen_desc0": "5 LoRA-Gen (description), bare input",
    "gen_desc5": "5 LoRA-Gen (description + 5 demos), bare input",
    "multi_desc0": "6 multi-task LoRA, description in context",
    "multi_desc5": "6 multi-task LoRA, description + 5 demos in context",
    "logo_demos": "7 training-free LoRA-Gen (LoGo over the 5 demos, frozen), bare input",
    "ctl_mismatch": "control: another task's description",
    "ctl_random": "control: random words",
    "ctl_empty": "control: empty description",
}
SEEN_ONLY = ("oracle", "oracle_bare")
UNSEEN_ONLY = ("ctl_mismatch", "ctl_random", "ctl_empty")
MULTITASK = ("multi_desc0", "multi_desc5")


def conditions_of(setting: str, wanted: tuple[str, ...]) -> list[str]:
    """The wanted conditions that apply to a setting (oracles on seen tasks, controls on unseen ones)."""
    skip = UNSEEN_ONLY if setting == "seen" else SEEN_ONLY
    return [c for c in wanted if c not in skip]


def answer_in_context(
    generator: LoraGenerator, inputs: list[str], system: str | None, max_new_tokens: int, batch: int
) -> list[str]:
    """Greedy answers of the edge model as its weights are now, `system` as the system prompt (None: the
    template's own, i.e. the bare input); the engine has no system turn."""
    tok, model = generator.edge.tokenizer, generator.edge.model
    texts = []
    for start in range(0, len(inputs), batch):
        rows = [tok(chat_prompt(tok, x, system), add_special_tokens=False)["input_ids"] for x in inputs[start:][:batch]]
        ids, mask = left_pad(rows, tok.pad_token_id)
        ids, mask = ids.to(generator.device), mask.to(generator.device)
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
        texts += tok.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
    return texts


class Evaluation:
    """One pass over the tasks: every condition's answers as instance rows, plus prompt tokens and gates."""

    def __init__(
        self,
        generator: LoraGenerator | None,
        zoo: LoGoEngine | None,
        multitask: dict | None = None,
        batch: int = 16,
    ):
        """`multitask`: module -> (A, B * scaling) of the row-6 adapter (multitask_factors), None to skip row 6."""
        self.generator, self.zoo, self.multitask, self.batch = generator, zoo, multitask, batch
        self.instances: list[dict] = []
        self.tokens: list[dict] = []
        self.gates: list[dict] = []
        self.mixtures: list[dict] = []
        self.costs: list[dict] = []

    def add(self, part: dict) -> None:
        """Take in one task's results (as run_task returns them, or read back from its file)."""
        self.instances += part["instances"]
        self.tokens += part["tokens"]
        self.gates.append(part["gates"])
        self.mixtures.append(part.get("mixtures", {"task": part["gates"]["task"]}))
        self.costs.append(part["cost"])

    def run_task(
        self,
        task: Task,
        setting: str,
        limit: int,
        controls: dict[str, str] | None,
        *,
        split: str = "test",
        wanted: tuple[str, ...] = tuple(LABELS),
        previous: dict | None = None,
    ) -> dict:
        """One task's instances (the wanted conditions that `previous` lacks), prompt tokens, gates, mixtures
        and generation cost; `previous` (this task's earlier part) is kept and extended."""
        rows = task.examples(split, limit)
        inputs = [r["input"] for r in rows]
        demos = demos_from(task.examples("train"), N_DEMOS, random.Random(f"{task.name}-demos"))
        description = task_description(task)
        systems = {"desc0": system_prompt(description), "desc5": system_prompt(description, demos)}
        done = {r["condition"] for r in previous["instances"]} if previous else set()
        todo = [c for c in conditions_of(setting, wanted) if c not in done]
        if self.multitask is None:
            todo = [c for c in todo if c not in MULTITASK]
        n_new = task.max_new_tokens
        answers = {c: self._answer(inputs, systems[c[-5:]], n_new) for c in ("base_desc0", "base_desc5") if c in todo}
        # the zoo engine's rows: (prompt, mixture or None to route, condition)
        zoo_rows = [(x, {}, "base_bare") for x in inputs if "base_bare" in todo]
        zoo_rows += [(x, None, "logo") for x in inputs if "logo" in todo]
        zoo_rows += [(task.prompt(x), {task.name: 1.0}, "oracle") for x in inputs if "oracle" in todo]
        zoo_rows += [(x, {task.name: 1.0}, "oracle_bare") for x in inputs if "oracle_bare" in todo]
        mixtures = dict(previous.get("mixtures", {})) if previous else {}
        mixtures["task"] = task.name
        if "logo_demos" in todo:
            mixtures["logo_demos"] = demo_mixture(self.zoo, [i for i, _ in demos])
            zoo_rows += [(x, mixtures["logo_demos"], "logo_demos") for x in inputs]
        answers.update(self._zoo_answers(zoo_rows, GenerationConfig(max_new_tokens=n_new)))
        sources = {"gen_desc0": (description, ()), "gen_desc5": (description, demos)}
        sources.update({name: (text, ()) for name, text in (controls or {}).items()})
        started = time.perf_counter()
        loras = {c: self.generator.generate(*sources[c], allow_empty=c in UNSEEN_ONLY) for c in todo if c in sources}
        cost = {"task": task.name, "adapters": len(loras), "s": time.perf_counter() - started}
        for name, lora in loras.items():  # merged into the edge weights: the bare input, no system prompt
            with merged(self.generator.edge.model, lora):
                answers[name] = self._answer(inputs, None, n_new)
        for name in [c for c in MULTITASK if c in todo]:
            with merged_factors(self.generator.edge.model, self.multitask):
                answers[name] = self._answer(inputs, systems[name[-5:]], n_new)
        instances = list(previous["instances"]) if previous else []
        for condition, texts in answers.items():
            for row, text in zip(rows, texts, strict=True):
                record = {"setting": setting, "condition": condition, "task": task.name, "metric": task.metric}
                record.update(input=row["input"], prediction=text, target=row["target"])
                instances.append({**record, "score": score(task.metric, text, row["target"])})
        tokens = self._tokens(setting, task.name, inputs, description, systems["desc5"])
        gates = dict(previous["gates"]) if previous else {"task": task.name}
        gates.update({k: [list(r) for r in v.gates] for k, v in loras.items()})
        if previous:
            cost = {**cost, "adapters": cost["adapters"] + previous["cost"]["adapters"]}
            cost["s"] += previous["cost"]["s"]
        scores = pd.DataFrame(instances).groupby("condition")["score"]
        log.info("%s %s: %s", setting, task.name, scores.mean().round(1).to_dict())
        return {"instances": instances, "tokens": tokens, "gates": gates, "mixtures": mixtures, "cost": cost}

    def _answer(self, inputs: list[str], system: str | None, max_new_tokens: int) -> list[str]:
        return answer_in_context(self.generator, inputs, system, max_new_tokens, self.batch)

    def _tokens(self, setting: str, task: str, inputs: list[str], description: str, desc5: str) -> list[dict]:
        """Mean prompt tokens through the edge chat template: the description (0 / 5 demos) as the system turn,
        the bare input (the template's default system prompt: what rows 2-5 and 7 send), and an empty system
        turn (the shortest prompt the template allows, for the README's accounting only)."""
        tok = self.generator.edge.tokenizer
        prompts = (("base_desc0", description), ("base_desc5", desc5), ("bare", None), ("empty_system", ""))
        return [
            {
                "setting": setting,
                "task": task,
                "prompt": name,
                "tokens": np.mean([prompt_tokens(tok, x, s) for x in inputs]),
            }
            for name, s in prompts
        ]

    def _zoo_answers(self, rows: list[tuple], generation: GenerationConfig) -> dict[str, list[str]]:
        """Rows (prompt, mixture or None to route, condition) through the zoo engine: routed rows, then fixed."""
        out: dict[str, list[str]] = {}
        routed = [r for r in rows if r[1] is None]
        fixed = [r for r in rows if r[1] is not None]
        if routed:
            results = self.zoo.generate_batch([r[0] for r in routed], None, generation, batch_size=self.batch)
            for (_, _, cond), g in zip(routed, results, strict=True):
                out.setdefault(cond, []).append(g.text)
        if fixed:
            results = self.zoo.generate_batch(
                [r[0] for r in fixed], None, generation, mixtures=[r[1] for r in fixed], batch_size=self.batch
            )
            for (_, _, cond), g in zip(fixed, results, strict=True):
                out.setdefault(cond, []).append(g.text)
        return out


def demo_mixture(engine: LoGoEngine, demo_inputs: list[str]) -> dict[str, float]:
    """Row 7: LoGo's recommended routing (the engine's default preset) of each demo input, the weights averaged
    over the demos: one mixture for the whole task, i.e. one adapter (engine.export_mixture writes it)."""
    routings = engine.route(demo_inputs)
    total: dict[str, float] = {}
    for routing in routings:
        for name, weight in zip(routing.selected, routing.weights, strict=True):
            total[name] = total.get(name, 0.0) + weight / len(routings)
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))


def multitask_factors(directory: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The row-6 adapter's module -> (A, B * scaling), for merged_factors."""
    adapter = load_adapter(directory)
    return {m: (a.float(), b.float() * adapter.scalings[m]) for m, (a, b) in adapter.factors.items()}


def controls_for(task: Task, unseen: list[Task]) -> dict[str, str]:
    other = unseen[(unseen.index(task) + 1) % len(unseen)]
    rng = random.Random(f"{task.name}-random")
    return {
        "ctl_mismatch": task_description(other),
        "ctl_random": " ".join(rng.sample(RANDOM_WORDS, 8)),
        "ctl_empty": "",
    }


def latency_markdown(device: str, lat: dict) -> list[str]:
    """The latency card of one device: each system prompt in context vs its generated adapter merged."""
    if "in_context" in lat:  # the first CPU file measured the 5-demo prompt only
        lat = {"desc5": lat, "task": lat["task"]}
    first = next(v for k, v in lat.items() if k.startswith("desc"))
    threads = f", {lat['threads']} torch threads" if "threads" in lat else ""
    md = [
        f"### latency, one request on {lat.get('device_name', device)}{threads} ({first['new_tokens']} new tokens, "
        f"batch 1, median of {first['repeats']}; task {lat['task']})",
        "",
        "| system prompt | prompt tokens in context / merged | time to first token (ms) in context / merged | "
        "end to end (ms) in context / merged | speed-up end to end | one-off: generate + merge (ms) | "
        "break-even requests |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in (("desc0", "description"), ("desc5", "description + 5 demos")):
        if key in lat:
            r = lat[key]
            payback = "never" if not np.isfinite(r["payback_requests"]) else f"{r['payback_requests']:.0f}"
            md.append(
                f"| {label} | {r['in_context']['prompt_tokens']} / {r['merged']['prompt_tokens']} | "
                f"{r['in_context']['ttft_ms']:.1f} / {r['merged']['ttft_ms']:.1f} | "
                f"{r['in_context']['e2e_ms']:.1f} / {r['merged']['e2e_ms']:.1f} | {r['speedup_e2e']:.2f}x | "
                f"{r['generate_ms']:.0f} + {r['merge_ms']:.0f} | {payback} |"
            )
    return [*md, ""]


def write(out: Path, evaluation: Evaluation, latencies: dict[str, dict], limits: dict) -> str:
    """CSV and markdown under `out`; returns the markdown. `latencies`: device -> measure_latency's dict."""
    out.mkdir(parents=True, exist_ok=True)
    instances = pd.DataFrame(evaluation.instances)
    (out / "instances.jsonl").unlink(missing_ok=True)  # every answer is in runs/ already: no second copy
    table = score_table(instances[["setting", "condition", "task", "score"]])
    order = {**{c: i for i, c in enumerate(LABELS)}, "unseen": 0, "seen": 1}  # unseen first, rows in issue order
    table = table.sort_values(["setting", "condition"], key=lambda col: col.map(order), kind="stable")
    table.to_csv(out / "scores.csv", index=False, float_format="%.3f")
    tokens = pd.DataFrame(evaluation.tokens)
    tokens.to_csv(out / "prompt_tokens.csv", index=False, float_format="%.2f")
    by_prompt = tokens.groupby(["setting", "prompt"])["tokens"].mean().unstack()
    ratio = {
        s: {
            "desc0": float(r["base_desc0"] / r["bare"]),
            "desc5": float(r["base_desc5"] / r["bare"]),
            **{k: float(v) for k, v in r.items()},
        }
        for s, r in by_prompt.iterrows()
    }
    meta = {
        "limits": limits,
        "compression": ratio,
        "latency": latencies,
        "generation_cost": evaluation.costs,
        "row7_mixtures": evaluation.mixtures,
    }
    (out / "summary.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "gates.json").write_text(json.dumps(evaluation.gates) + "\n")
    split = limits.get("split", "test")
    md = [
        f"# LoRA-Gen on the zoo ({split} split)",
        "",
        f"Inputs per task: {limits['unseen']} on the 8 unseen (held-out) tasks, {limits['seen']} on the 27 "
        f"seen (pool) tasks; greedy decoding, float32 on {limits.get('device', 'cpu')}; bootstrap 95% CIs "
        f"({1000} resamples, seed 0). Tasks finished: {limits['tasks_done']} of {limits['tasks_planned']}. "
        "`python -m analysis.loragen_eval` writes this file (it resumes; `--score-only` tables what is done).",
        "",
        summary_markdown(table, LABELS),
        "### prompt tokens through the chat template (mean per input)",
        "",
        "Row 5's prompt is the bare input in the template, whose default system prompt stays in; 'empty system' "
        "is the same input with an empty system turn (for comparison; no row uses it).",
        "",
        "| setting | description (row 1) | description + 5 demos | bare (rows 2-5) | empty system | "
        "ratio 0 demos | ratio 5 demos |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {s} | {r['base_desc0']:.1f} | {r['base_desc5']:.1f} | {r['bare']:.1f} | "
            f"{r.get('empty_system', float('nan')):.1f} | {r['desc0']:.2f}x | {r['desc5']:.2f}x |"
            for s, r in ratio.items()
        ],
        "",
    ]
    for device, lat in sorted(latencies.items()):
        md += latency_markdown(device, lat)
    for setting in ("unseen", "seen"):
        present = set(table[table.setting == setting].condition)
        md += [
            f"### {setting} tasks, per task",
            "",
            per_task_markdown(table, setting, [c for c in LABELS if c in present]),
            "",
        ]
    text = "\n".join(md)
    (out / "results.md").write_text(text)
    return text


def run_name(split: str, setting: str, task: str, limit: int) -> str:
    """A finished task's file under runs/ (gzipped JSON: every answer of every condition, most of them repeating
    their input and target, so gzip keeps the committed runs small); test runs keep the first CPU run's names."""
    return f"{'' if split == 'test' else split + '-'}{setting}-{task}-{limit}.json.gz"


def read_run(path: Path) -> dict:
    return json.loads(gzip.decompress(path.read_bytes()))


def write_run(path: Path, part: dict) -> None:
    text = json.dumps(part, ensure_ascii=False) + "\n"
    path.write_bytes(gzip.compress(text.encode(), mtime=0))  # mtime 0: the same run gives the same bytes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", type=Path, default=GENERATOR_DIR)
    parser.add_argument("--multitask", type=Path, default=MULTITASK_DIR, help="row 6's adapter (zoo.loragen_multitask)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--resume-from", type=Path, help="results folder whose runs/ count as done (copied to --out)")
    parser.add_argument("--unseen-limit", type=int, default=10, help="inputs per unseen task (10)")
    parser.add_argument("--seen-limit", type=int, default=4, help="inputs per seen task (4)")
    parser.add_argument("--split", choices=("test", "dev"), default="test", help="dev to compare generators")
    parser.add_argument("--conditions", nargs="+", choices=tuple(LABELS), default=tuple(LABELS))
    parser.add_argument("--tasks", nargs="+", help="only these tasks (a quick look)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (answers in float32 on either)")
    parser.add_argument("--batch", type=int, help="rows per generation batch (16 on the CPU, 64 on a GPU)")
    parser.add_argument("--budget-minutes", type=float, help="start no task after this long (rerun resumes)")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency card of this device")
    parser.add_argument("--score-only", action="store_true", help="tables from the tasks finished so far; run none")
    parser.add_argument("--latency-only", action="store_true", help="(re)measure this device's latency card; run none")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: a shared machine is faster)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device).type
    batch = args.batch or (64 if device == "cuda" else 16)
    unseen = load_tasks(TASKS_DIR, held_out=True)
    seen = load_tasks(TASKS_DIR, held_out=False)
    plan = [(t, "unseen", args.unseen_limit) for t in unseen] + [(t, "seen", args.seen_limit) for t in seen]
    plan = [(t, s, n) for t, s, n in plan if not args.tasks or t.name in args.tasks]
    runs = args.out / "runs"  # one file per finished task (and per device's latency): an interrupted run resumes
    runs.mkdir(parents=True, exist_ok=True)
    if args.resume_from is not None and (args.resume_from / "runs").resolve() != runs.resolve():
        for path in sorted((args.resume_from / "runs").glob("*.json*")):
            if not (runs / path.name).is_file():
                shutil.copy(path, runs / path.name)
    files = {(t.name, s): runs / run_name(args.split, s, t.name, n) for t, s, n in plan}
    wanted = tuple(args.conditions)
    if not args.score_only:
        generator = load_generator(args.generator, device=args.device)
        latency_file = runs / f"latency-{device}.json"
        if args.latency_only or (not args.no_latency and args.split == "test" and not latency_file.is_file()):
            # first, on the bare model: no engine has wrapped its layers yet
            latency_file.write_text(json.dumps(measure_latency(generator, unseen[0]), indent=2) + "\n")
    if not args.score_only and not args.latency_only:
        zoo = LoGoEngine(
            EngineConfig(adapters=(str(ADAPTERS_DIR),), device=args.device, dtype="float32"), base=generator.edge
        )
        multitask = None
        if any(c in MULTITASK for c in wanted):
            if (args.multitask / "adapter_config.json").is_file():
                multitask = multitask_factors(args.multitask)
            else:
                hint = "train it: python -m zoo.loragen_multitask"
                log.warning("no multi-task adapter at %s: row 6 is skipped (%s)", args.multitask, hint)
        evaluation = Evaluation(generator, zoo, multitask, batch)
        for task, setting, limit in plan:
            path = files[task.name, setting]
            previous = read_run(path) if path.is_file() else None
            have = {r["condition"] for r in previous["instances"]} if previous else set()
            missing = [c for c in conditions_of(setting, wanted) if c not in have and (multitask or c not in MULTITASK)]
            if not missing:
                continue
            if args.budget_minutes is not None and time.perf_counter() - started > 60 * args.budget_minutes:
                stop = "budget of %.1f minutes spent: stopping before %s %s; rerun to resume"
                log.info(stop, args.budget_minutes, setting, task.name)
                break
            controls = controls_for(task, unseen) if setting == "unseen" else None
            part = evaluation.run_task(
                task, setting, limit, controls, split=args.split, wanted=wanted, previous=previous
            )
            write_run(path, {**part, "device": device})
    tables = Evaluation(None, None)
    answered_on = set()  # the devices the answers came from (not this invocation's, when it only tables)
    for path in files.values():
        if path.is_file():
            part = read_run(path)
            answered_on.add(part.get("device", device))
            tables.add(part)
    if not tables.instances:
        raise SystemExit(f"no finished task under {runs}: run without --score-only first")
    latencies = {}
    for path in sorted(runs.glob("latency*.json")):
        latencies[path.stem.partition("-")[2] or "cpu"] = json.loads(path.read_text())
    limits = {
        "unseen": args.unseen_limit,
        "seen": args.seen_limit,
        "demos": N_DEMOS,
        "split": args.split,
        "device": " and ".join(sorted(answered_on)),
        "tasks_done": sum(p.is_file() for p in files.values()),
        "tasks_planned": len(files),
    }
    print(write(args.out, tables, latencies, limits))


def measure_latency(generator: LoraGenerator, task: Task, repeats: int | None = None) -> dict:
    """Latency of one of the task's inputs with its system prompt (description, and with 5 demos) in context vs
    the adapter generated from it merged; the one-off cost is timed warm (after one throwaway generation)."""
    repeats = repeats or (20 if generator.device.type == "cuda" else 5)
    demos = demos_from(task.examples("train"), N_DEMOS, random.Random(f"{task.name}-demos"))
    description = task_description(task)
    generator.generate(f"{description} (warm-up)")  # the first reader pass pays for kernels, allocator, caches
    text = task.examples("test", 1)[0]["input"]
    device = generator.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    out = {"task": task.name, "device": device.type, "device_name": name, "threads": torch.get_num_threads()}
    for key, shots in (("desc0", ()), ("desc5", demos)):
        lora = generator.generate(description, shots)
        system = system_prompt(description, shots)
        out[key] = latency_comparison(
            generator.edge.model, generator.edge.tokenizer, text, system, lora, repeats=repeats
        )
    return out


if __name__ == "__main__":
    main()
