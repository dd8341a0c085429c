"""Evaluates the shipped LoRA-Gen generator on the zoo (CPU-sized): scores with CIs, prompt tokens, latency, payback.

    python -m analysis.loragen_eval [--unseen-limit 10] [--seen-limit 4] [--out assets/results/loragen]

Conditions (issue 12's rows); the input is the task's bare test input unless said otherwise:
  base_desc0    row 1: base model, the task description as its system prompt
  base_desc5    row 1: the same with 5 train demos in the system prompt
  base_bare     row 2: base model, the chat template's own system prompt
  logo          row 3: LoGo per instance over the 27 zoo adapters (the engine's default routing)
  oracle        row 4 (seen): the task's own zoo adapter, on the zoo prompt it was trained on (instruction + input)
  oracle_bare   row 4 (seen): the same adapter on the bare input
  gen_desc0     row 5: the adapter generated from the description, merged (mixture {adapter: 1.0})
  gen_desc5     row 5: the adapter generated from description + the same 5 demos
  ctl_mismatch / ctl_random / ctl_empty (unseen): adapters generated from another held-out task's description,
                a string of random words, an empty description
Rows 6 (multi-task LoRA) and 7 (training-free LoRA-Gen) are not run here.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from analysis.loragen_latency import chat_prompt, latency_comparison, prompt_tokens
from analysis.loragen_stats import per_task_markdown, score_table, summary_markdown
from logo.config import EngineConfig, GenerationConfig
from logo.engine import LoGoEngine
from logo.loragen import LoraGenerator
from logo.loragen.prompts import system_prompt
from logo.prompts import left_pad
from zoo.data import ADAPTERS_DIR, ASSETS_DIR, TASKS_DIR, Task, load_tasks
from zoo.loragen_data import demos_from, task_description
from zoo.metrics import score

log = logging.getLogger(__name__)
GENERATOR_DIR = ASSETS_DIR / "loragen"
RESULTS_DIR = ASSETS_DIR / "results" / "loragen"
N_DEMOS = 5
BATCH = 16
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
    "ctl_mismatch": "control: another task's description",
    "ctl_random": "control: random words",
    "ctl_empty": "control: empty description",
}


def answer_in_context(generator: LoraGenerator, inputs: list[str], system: str, max_new_tokens: int) -> list[str]:
    """Greedy answers of the base edge model with `system` as the system prompt (the engine has no system turn)."""
    tok, model = generator.edge.tokenizer, generator.edge.model
    texts = []
    for start in range(0, len(inputs), BATCH):
        rows = [tok(chat_prompt(tok, x, system), add_special_tokens=False)["input_ids"] for x in inputs[start:][:BATCH]]
        ids, mask = left_pad(rows, tok.pad_token_id)
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

    def __init__(self, generator: LoraGenerator, zoo: LoGoEngine, workdir: Path):
        self.generator, self.zoo, self.workdir = generator, zoo, workdir
        self.instances: list[dict] = []
        self.tokens: list[dict] = []
        self.gates: list[dict] = []
        self.costs: list[dict] = []

    def add(self, part: dict) -> None:
        """Take in one task's results (as run_task returns them, or read back from its file)."""
        self.instances += part["instances"]
        self.tokens += part["tokens"]
        self.gates.append(part["gates"])
        self.costs.append(part["cost"])

    def run_task(self, task: Task, setting: str, limit: int, controls: dict[str, str] | None) -> dict:
        """One task's instances (every condition), prompt tokens, gates and generation cost."""
        test = task.examples("test", limit)
        inputs = [r["input"] for r in test]
        demos = demos_from(task.examples("train"), N_DEMOS, random.Random(f"{task.name}-demos"))
        description = task_description(task)
        generation = GenerationConfig(max_new_tokens=task.max_new_tokens)
        answers = {
            "base_desc0": answer_in_context(self.generator, inputs, system_prompt(description), task.max_new_tokens),
            "base_desc5": answer_in_context(
                self.generator, inputs, system_prompt(description, demos), task.max_new_tokens
            ),
        }
        zoo_rows = [(inp, {}, "base_bare") for inp in inputs] + [(inp, None, "logo") for inp in inputs]
        if setting == "seen":
            zoo_rows += [(task.prompt(inp), {task.name: 1.0}, "oracle") for inp in inputs]
            zoo_rows += [(inp, {task.name: 1.0}, "oracle_bare") for inp in inputs]
        answers.update(self._zoo_answers(zoo_rows, generation))
        started = time.perf_counter()
        loras = {
            "gen_desc0": self.generator.generate(description),
            "gen_desc5": self.generator.generate(description, demos),
        }
        for name, text in (controls or {}).items():
            loras[name] = self.generator.generate(text, allow_empty=True)
        cost = {"task": task.name, "adapters": len(loras), "s": time.perf_counter() - started}
        answers.update(self._generated_answers(task, inputs, loras, generation))
        instances, tokens = [], []
        for condition, texts in answers.items():
            for row, text in zip(test, texts, strict=True):
                record = {"setting": setting, "condition": condition, "task": task.name, "metric": task.metric}
                record.update(input=row["input"], prediction=text, target=row["target"])
                instances.append({**record, "score": score(task.metric, text, row["target"])})
        tok = self.generator.edge.tokenizer
        for condition, system in (
            ("base_desc0", description),
            ("base_desc5", system_prompt(description, demos)),
            ("bare", None),
        ):
            count = sum(prompt_tokens(tok, x, system) for x in inputs) / len(inputs)
            tokens.append({"setting": setting, "task": task.name, "prompt": condition, "tokens": count})
        gates = {"task": task.name, **{k: [list(r) for r in v.gates] for k, v in loras.items()}}
        scores = pd.DataFrame(instances).groupby("condition")["score"]
        log.info("%s %s: %s", setting, task.name, scores.mean().round(1).to_dict())
        return {"instances": instances, "tokens": tokens, "gates": gates, "cost": cost}

    def _zoo_answers(self, rows: list[tuple], generation: GenerationConfig) -> dict[str, list[str]]:
        """Rows (prompt, mixture or None to route, condition) through the zoo engine: routed rows, then fixed."""
        out: dict[str, list[str]] = {}
        routed = [r for r in rows if r[1] is None]
        fixed = [r for r in rows if r[1] is not None]
        if routed:
            for (_, _, cond), g in zip(
                routed, self.zoo.generate_batch([r[0] for r in routed], None, generation, batch_size=BATCH), strict=True
            ):
                out.setdefault(cond, []).append(g.text)
        if fixed:
            results = self.zoo.generate_batch(
                [r[0] for r in fixed], None, generation, mixtures=[r[1] for r in fixed], batch_size=BATCH
            )
            for (_, _, cond), g in zip(fixed, results, strict=True):
                out.setdefault(cond, []).append(g.text)
        return out

    def _generated_answers(self, task: Task, inputs, loras, generation) -> dict[str, list[str]]:
        """Each generated adapter saved as a PEFT directory and loaded by the engine; one batch for all of them."""
        dirs = [str(lora.save(self.workdir / task.name / name)) for name, lora in loras.items()]
        engine = LoGoEngine(EngineConfig(adapters=tuple(dirs), device="cpu", dtype="float32"), base=self.generator.edge)
        prompts = [x for _ in loras for x in inputs]
        mixtures = [{name: 1.0} for name in loras for _ in inputs]
        texts = [g.text for g in engine.generate_batch(prompts, None, generation, mixtures=mixtures, batch_size=BATCH)]
        return {name: texts[i * len(inputs) : (i + 1) * len(inputs)] for i, name in enumerate(loras)}


def controls_for(task: Task, unseen: list[Task]) -> dict[str, str]:
    other = unseen[(unseen.index(task) + 1) % len(unseen)]
    rng = random.Random(f"{task.name}-random")
    return {
        "ctl_mismatch": task_description(other),
        "ctl_random": " ".join(rng.sample(RANDOM_WORDS, 8)),
        "ctl_empty": "",
    }


def write(out: Path, evaluation: Evaluation, latency: dict, limits: dict) -> str:
    """CSV and markdown under `out`; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    instances = pd.DataFrame(evaluation.instances)
    instances.to_json(out / "instances.jsonl", orient="records", lines=True, force_ascii=False)
    table = score_table(instances[["setting", "condition", "task", "score"]])
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
    meta = {"limits": limits, "compression": ratio, "latency": latency, "generation_cost": evaluation.costs}
    (out / "summary.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "gates.json").write_text(json.dumps(evaluation.gates) + "\n")
    lat = latency
    md = [
        "# LoRA-Gen on the zoo (CPU)",
        "",
        f"Test inputs per task: {limits['unseen']} on the 8 unseen (held-out) tasks, {limits['seen']} on the 27 "
        f"seen (pool) tasks; greedy decoding; bootstrap 95% CIs ({1000} resamples, seed 0). "
        f"Tasks finished: {limits['tasks_done']} of {limits['tasks_planned']}. "
        "`python -m analysis.loragen_eval` writes this file (it resumes; `--score-only` tables what is done).",
        "",
        summary_markdown(table, LABELS),
        "### prompt tokens through the chat template (mean per input)",
        "",
        "| setting | description | description + 5 demos | bare (row 5) | ratio 0 demos | ratio 5 demos |",
        "|---|---|---|---|---|---|",
        *[
            f"| {s} | {r['base_desc0']:.1f} | {r['base_desc5']:.1f} | {r['bare']:.1f} | {r['desc0']:.2f}x | "
            f"{r['desc5']:.2f}x |"
            for s, r in ratio.items()
        ],
        "",
        f"### latency, one request on the CPU ({lat['new_tokens']} new tokens, median of {lat['repeats']})",
        "",
        "| | prompt tokens | time to first token (ms) | end to end (ms) |",
        "|---|---|---|---|",
        f"| 5-demo system prompt in context | {lat['in_context']['prompt_tokens']} | "
        f"{lat['in_context']['ttft_ms']:.1f} | {lat['in_context']['e2e_ms']:.1f} |",
        f"| generated adapter merged | {lat['merged']['prompt_tokens']} | {lat['merged']['ttft_ms']:.1f} | "
        f"{lat['merged']['e2e_ms']:.1f} |",
        "",
        f"Speed-up {lat['speedup_e2e']:.2f}x end to end, {lat['speedup_ttft']:.2f}x to the first token. One-off cost: "
        f"generating the adapter {lat['generate_ms']:.0f} ms + merging it {lat['merge_ms']:.0f} ms; paid back after "
        f"{lat['payback_requests']:.0f} requests.",
        "",
        "### unseen tasks, per task",
        "",
        per_task_markdown(table, "unseen", [c for c in LABELS if c in set(table[table.setting == "unseen"].condition)]),
        "",
        "### seen tasks, per task",
        "",
        per_task_markdown(table, "seen", [c for c in LABELS if c in set(table[table.setting == "seen"].condition)]),
        "",
    ]
    text = "\n".join(md)
    (out / "results.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", type=Path, default=GENERATOR_DIR)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--unseen-limit", type=int, default=10, help="test inputs per unseen task (10)")
    parser.add_argument("--seen-limit", type=int, default=4, help="test inputs per seen task (4)")
    parser.add_argument("--tasks", nargs="+", help="only these tasks (a quick look)")
    parser.add_argument("--score-only", action="store_true", help="tables from the tasks finished so far; run none")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: a shared machine is faster)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    unseen = load_tasks(TASKS_DIR, held_out=True)
    seen = load_tasks(TASKS_DIR, held_out=False)
    plan = [(t, "unseen", args.unseen_limit) for t in unseen] + [(t, "seen", args.seen_limit) for t in seen]
    plan = [(t, s, n) for t, s, n in plan if not args.tasks or t.name in args.tasks]
    runs = args.out / "runs"  # one file per finished task (and the latency): an interrupted run resumes
    runs.mkdir(parents=True, exist_ok=True)
    latency_file = runs / "latency.json"
    done = {(t.name, s): runs / f"{s}-{t.name}-{n}.json" for t, s, n in plan}
    if not args.score_only:
        generator = LoraGenerator.load(args.generator, device="cpu")
        if not latency_file.is_file():  # first, on the bare model: no engine has wrapped its layers yet
            latency_file.write_text(json.dumps(measure_latency(generator, unseen[0]), indent=2) + "\n")
        zoo = LoGoEngine(
            EngineConfig(adapters=(str(ADAPTERS_DIR),), device="cpu", dtype="float32"), base=generator.edge
        )
        with tempfile.TemporaryDirectory() as workdir:
            evaluation = Evaluation(generator, zoo, Path(workdir))
            for task, setting, limit in plan:
                if not done[task.name, setting].is_file():
                    controls = controls_for(task, unseen) if setting == "unseen" else None
                    part = evaluation.run_task(task, setting, limit, controls)
                    done[task.name, setting].write_text(json.dumps(part, ensure_ascii=False) + "\n")
    tables = Evaluation(None, None, runs)
    for path in done.values():
        if path.is_file():
            tables.add(json.loads(path.read_text()))
    limits = {
        "unseen": args.unseen_limit,
        "seen": args.seen_limit,
        "demos": N_DEMOS,
        "tasks_done": sum(p.is_file() for p in done.values()),
        "tasks_planned": len(done),
    }
    print(write(args.out, tables, json.loads(latency_file.read_text()), limits))


def measure_latency(generator: LoraGenerator, task: Task) -> dict:
    """Latency of one of the task's inputs with its 5-demo system prompt in context vs the adapter merged."""
    demos = demos_from(task.examples("train"), N_DEMOS, random.Random(f"{task.name}-demos"))
    lora = generator.generate(task_description(task), demos)
    system = system_prompt(task_description(task), demos)
    text = task.examples("test", 1)[0]["input"]
    latency = latency_comparison(generator.edge.model, generator.edge.tokenizer, text, system, lora)
    return {**latency, "task": task.name}


if __name__ == "__main__":
    main()
