"""The methods of the results table: each turns one task's test prompts into answers with the engine's merge code."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from logo.config import GenerationConfig, ProbeConfig, RoutingConfig
from logo.engine import LoGoEngine
from logo.results import Generation
from zoo.data import TASKS_DIR, Task

CALIBRATED = "zscore"  # the calibration of the *_cal methods; chosen from the routing sweep (see README)
# Their reference prompts: the adapters' own sample inputs (4 dev prompts per pool task), the sweep's best;
# the *_cal_generic methods calibrate on the 60 generic prompts instead, for comparison.
LORAHUB_EXAMPLES = 5  # labelled dev examples per task, as LoraHub


@dataclass
class MethodOutput:
    """Answers for one (method, task) cell, one entry per test prompt."""

    texts: list[str]
    selected: list[list[str]]
    weights: list[list[float]]
    signals: list[dict[str, float]] | None = None
    timings: list[dict[str, float]] | None = None
    info: dict = field(default_factory=dict)  # per-cell facts, e.g. LoraHub's search time


@dataclass
class EvalContext:
    """What the methods share: the engine, the k, and lazily built baseline helpers."""

    engine: LoGoEngine
    k: int = 3
    batch_size: int = 64
    tasks_dir: object = TASKS_DIR
    embeddings: object = None  # a CachedEmbedder file, where MiniLM cannot run

    @cached_property
    def embedder(self):
        from analysis.similarity import CachedEmbedder, TaskEmbedder

        return CachedEmbedder(self.embeddings) if self.embeddings else TaskEmbedder()

    @cached_property
    def centroids(self):
        from analysis.baselines import adapter_centroids

        return adapter_centroids(self.embedder, self.tasks_dir, list(self.engine.adapter_names))

    @cached_property
    def own_reference(self) -> list[str]:
        """The adapters' own sample inputs: 4 dev prompts of each pool task (an alternative calibration set)."""
        from zoo.data import load_task

        prompts = []
        for name in self.engine.adapter_names:
            task = load_task(name, self.tasks_dir)
            prompts += [task.prompt(r["input"]) for r in task.examples("dev", 4)]
        return prompts

    @cached_property
    def arrow(self):
        from analysis.baselines import ArrowBaseline

        return ArrowBaseline(self.engine, k=self.k)

    def reference_prompts(self, reference: str) -> list[str] | None:
        """Calibration prompts: None means the engine's generic set; "own" the adapters' sample inputs."""
        return None if reference == "generic" else self.own_reference

    def pool_reference(self, exclude: list[str]) -> list[str] | None:
        """The presets' calibration prompts: None (the engine's own choice, as the CLI makes it: the pool
        directory's reference_prompts.txt) unless adapters are left out; then that file without the left-out
        adapters' sample inputs, as a pool without them would ship it (held-out must not see its task)."""
        if not exclude:
            return None
        from logo.calibration import read_reference_prompts
        from zoo.data import load_task

        dropped = set()
        for name in exclude:
            task = load_task(name, self.tasks_dir)
            dropped |= {" ".join(task.prompt(r["input"]).split("\n")) for r in task.examples("dev", 4)}
        prompts = read_reference_prompts(self.engine.reference_file[0])
        return [p for p in prompts if p not in dropped]


def _from_generations(results: list[Generation], info: dict | None = None) -> MethodOutput:
    return MethodOutput(
        texts=[g.text for g in results],
        selected=[list(g.mixture) for g in results],
        weights=[list(g.mixture.values()) for g in results],
        signals=[g.routing.signal_by_adapter if g.routing else None for g in results],
        timings=[{"total_ms": g.timings.total_ms, "probe_ms": g.timings.probe_ms} for g in results],
        info=info or {},
    )


def _generate(ctx: EvalContext, task: Task, prompts: list[str], **kwargs) -> list[Generation]:
    generation = GenerationConfig(max_new_tokens=task.max_new_tokens)
    return ctx.engine.generate_batch(prompts, generation=generation, batch_size=ctx.batch_size, **kwargs)


def _with_mixtures(ctx, task, prompts, mixtures, info=None) -> MethodOutput:
    return _from_generations(_generate(ctx, task, prompts, mixtures=mixtures), info)


def logo(signal: str, calibration: str, reference: str = "own", block: int = -1) -> Callable:
    """LoGo with the given signal, calibration and probe block: route every prompt, generate with its weighted top-k."""

    def run(ctx: EvalContext, task: Task, prompts: list[str], exclude: list[str]) -> MethodOutput:
        # linear weights, as these methods had when the committed --limit 50 tables were made (the default is now
        # the recommended softmax): the logo_* rows stay reproducible
        probe = ProbeConfig(block=block)
        config = RoutingConfig(k=ctx.k, signal=signal, calibration=calibration, probe=probe, weighting="linear")
        routings = ctx.engine.route(prompts, config, reference=ctx.reference_prompts(reference), exclude=exclude)
        out = _with_mixtures(ctx, task, prompts, [r.mixture for r in routings])
        out.signals = [r.signal_by_adapter for r in routings]
        return out

    return run


def preset(name: str) -> Callable:
    """LoGo exactly as the engine and the CLI run a named preset (RoutingConfig.preset), with the context's k."""

    def run(ctx: EvalContext, task: Task, prompts: list[str], exclude: list[str]) -> MethodOutput:
        config = RoutingConfig.preset(name, k=ctx.k)
        routings = ctx.engine.route(prompts, config, reference=ctx.pool_reference(exclude), exclude=exclude)
        out = _with_mixtures(ctx, task, prompts, [r.mixture for r in routings])
        out.signals = [r.signal_by_adapter for r in routings]
        out.info = {"routing": routings[0].config} if routings else {}  # the preset and its calibration reference
        return out

    return run


def base(ctx, task, prompts, exclude) -> MethodOutput:
    return _with_mixtures(ctx, task, prompts, [{}] * len(prompts))


def oracle(ctx, task, prompts, exclude) -> MethodOutput:
    if task.name not in ctx.engine.adapter_names or task.name in exclude:
        raise ValueError(f"oracle needs the task's own adapter {task.name!r} in the pool (in-pool setting only)")
    return _with_mixtures(ctx, task, prompts, [{task.name: 1.0}] * len(prompts))


def uniform(ctx, task, prompts, exclude) -> MethodOutput:
    from analysis.baselines import uniform_mixture

    return _with_mixtures(ctx, task, prompts, [uniform_mixture(ctx.engine.adapter_names, exclude)] * len(prompts))


def retriever(ctx, task, prompts, exclude) -> MethodOutput:
    from analysis.baselines import retriever_mixtures

    mixtures = retriever_mixtures(ctx.embedder, ctx.centroids, prompts, ctx.k, exclude=exclude)
    return _with_mixtures(ctx, task, prompts, mixtures)


def adaptersoup(ctx, task, prompts, exclude) -> MethodOutput:
    from analysis.baselines import adaptersoup_weights

    dev_inputs = [task.prompt(r["input"]) for r in task.examples("dev", 200)]
    weights = adaptersoup_weights(ctx.embedder, ctx.centroids, dev_inputs, ctx.k, exclude=exclude)
    results = _generate(ctx, task, prompts, parameter_average=weights)
    out = _from_generations(results, {"weights": weights})
    out.selected, out.weights = [list(weights)] * len(prompts), [list(weights.values())] * len(prompts)
    return out


def lorahub(ctx, task, prompts, exclude) -> MethodOutput:
    from analysis.baselines import lorahub_search
    from zoo.data import canonical_target

    examples = [
        (task.prompt(r["input"]), canonical_target(r["target"])) for r in task.examples("dev", LORAHUB_EXAMPLES)
    ]
    names = [n for n in ctx.engine.adapter_names if n not in exclude]
    result = lorahub_search(ctx.engine, examples, names)
    results = _generate(ctx, task, prompts, parameter_average=result.weights)
    out = _from_generations(results, {"search_seconds": result.seconds, "weights": result.weights})
    out.selected, out.weights = [list(result.weights)] * len(prompts), [list(result.weights.values())] * len(prompts)
    return out


def arrow(ctx, task, prompts, exclude) -> MethodOutput:
    ctx.arrow.prepare(exclude)  # (re)building the Arrow model for a leave-one-out pool is not generation time
    started = time.perf_counter()
    texts = ctx.arrow.generate(prompts, task.max_new_tokens, exclude=exclude)
    elapsed = (time.perf_counter() - started) * 1000 / len(prompts)
    return MethodOutput(
        texts=texts,
        selected=[[] for _ in prompts],
        weights=[[] for _ in prompts],
        timings=[{"total_ms": elapsed}] * len(prompts),
    )


METHODS: dict[str, Callable] = {
    "paper": preset("paper"),
    "recommended": preset("recommended"),
    "base": base,
    "oracle": oracle,
    "uniform": uniform,
    "logo_norm": logo("norm", "none"),
    "logo_entropy": logo("entropy", "none"),
    "logo_norm_cal": logo("norm", CALIBRATED),
    "logo_entropy_cal": logo("entropy", CALIBRATED),
    # block 28 of the embedded model's 30 (the second to last): the best block of the probe sweep
    "logo_entropy_cal_b28": logo("entropy", CALIBRATED, "own", block=-2),
    "logo_norm_cal_generic": logo("norm", CALIBRATED, "generic"),
    "logo_entropy_cal_generic": logo("entropy", CALIBRATED, "generic"),
    "retriever": retriever,
    "adaptersoup": adaptersoup,
    "lorahub": lorahub,
    "arrow": arrow,
}
IN_POOL_ONLY = {"oracle"}
ROUTED = ("paper", "recommended")  # LoGo methods named by their preset (the logo_* ones by signal)
# what the issue-13 evaluation runs; lorahub needs nevergrad (the eval extra)
PRESET_EVALUATION = ("paper", "recommended", "oracle", "base", "uniform", "retriever", "adaptersoup", "lorahub")
