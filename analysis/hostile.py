"""Hostile and loud adapters, and how often each routing config selects them.

    python -m analysis.hostile build    # writes assets/adapters_hostile/{loud_scaled,loud_constructed}
    python -m analysis.hostile report   # selection rates on in-pool test inputs (needs analysis.pool_scaling probe)
    python -m analysis.hostile dev      # why calibration leaves them selected, and candidate fixes, on dev inputs
    python -m analysis.hostile loudness # the engine's loudness limit: each adapter's loudness, and the presets'
                                        # selection of the hostile adapters on test inputs, routed by the engine

loud_scaled: a zoo adapter (SOURCE) with B x 10, so its LoRA output is 10x louder on every input.
loud_constructed: in every adapted module, s B A = c e_0 v^T, where v is the top right singular vector of the
module's inputs over the generic prompts (signed so that most inputs project positively) and c is the zoo's
median ||s B A||_F at that module. Among all deltas of that Frobenius norm this maximises the summed squared
output over those inputs (||M H||_F <= ||M||_F sigma_max(H)), and putting it on one output coordinate makes
softmax(o) peaked, so it is loud for the entropy signal too: loud on every input, at a typical size.
"""

from __future__ import annotations

import argparse
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from analysis.adapter_files import AdapterFactors, read_adapter, write_adapter
from logo.calibration import read_reference_prompts
from logo.config import GENERIC_REFERENCE_PROMPTS
from logo.engine import LoGoEngine
from zoo.data import ADAPTERS_DIR, ASSETS_DIR

log = logging.getLogger(__name__)
HOSTILE_DIR = ASSETS_DIR / "adapters_hostile"
SOURCE = "news_topic"  # a zoo adapter of ordinary loudness (neither en_fr nor object_counting, the loud ones)
LOUD_FACTOR = 10.0


def scaled(adapter: AdapterFactors, factor: float) -> AdapterFactors:
    """The same adapter with every B multiplied by `factor` (its output scales by `factor` on every input)."""
    return AdapterFactors({m: (a, b * factor) for m, (a, b) in adapter.factors.items()}, dict(adapter.config))


def zoo_median_norms(directories: Sequence[Path]) -> dict[str, float]:
    """module -> median over the adapters of ||s B A||_F there."""
    norms = [read_adapter(d).delta_norms() for d in directories]
    return {m: statistics.median(n[m] for n in norms if m in n) for m in norms[0]}


def module_inputs(engine: LoGoEngine, prompts: Sequence[str], modules: Sequence[str]) -> dict[str, torch.Tensor]:
    """module -> (T_total, d_in) inputs of that module over every token of every prompt (base model only)."""
    seen: dict[str, list[torch.Tensor]] = {m: [] for m in modules}
    hooks = [
        engine.model.get_submodule(m).register_forward_pre_hook(lambda _, args, m=m: seen[m].append(args[0][0]))
        for m in modules
    ]
    try:
        with torch.no_grad():
            for prompt in prompts:  # one at a time: no padding rows among the inputs
                ids = engine.tokenizer(engine.format_prompt(prompt), return_tensors="pt", add_special_tokens=False)
                engine.model(input_ids=ids["input_ids"].to(engine.device))
    finally:
        for hook in hooks:
            hook.remove()
    return {m: torch.cat(parts).float().cpu() for m, parts in seen.items()}


def loudest_delta(inputs: torch.Tensor, d_out: int, size: float) -> torch.Tensor:
    """(d_out, d_in) delta of Frobenius norm `size` maximising ||delta h||^2 summed over the rows h of `inputs`."""
    _, _, vh = torch.linalg.svd(inputs, full_matrices=False)
    v = vh[0]
    if (inputs @ v).mean() < 0:
        v = -v  # most inputs project positively: o = c (v.h) e_0 is then a positive spike
    e = torch.zeros(d_out)
    e[0] = 1.0
    return size * torch.outer(e, v)


def constructed(template: AdapterFactors, inputs: dict[str, torch.Tensor], sizes: dict[str, float]) -> AdapterFactors:
    """An adapter shaped like `template` whose delta at each module is loudest_delta (rank 1 of its rank r)."""
    factors = {}
    for module, (a, b) in template.factors.items():
        delta = loudest_delta(inputs[module], b.shape[0], sizes[module])  # (d_out, d_in) = s * B A
        root = (delta.norm() / template.scaling) ** 0.5
        new_a, new_b = torch.zeros_like(a), torch.zeros_like(b)
        new_a[0] = root * delta[0] / delta[0].norm()  # delta = size * e_0 v^T: row 0 carries v
        new_b[0, 0] = root
        factors[module] = (new_a, new_b)
    return AdapterFactors(factors, dict(template.config))


def build(engine: LoGoEngine, out: Path = HOSTILE_DIR) -> dict[str, Path]:
    zoo = sorted(p.parent for p in ADAPTERS_DIR.glob("*/adapter_config.json"))
    source = read_adapter(ADAPTERS_DIR / SOURCE)
    loud = scaled(source, LOUD_FACTOR)
    card = {"name": "loud_scaled", "hostile": True, "how": f"{SOURCE} with lora_B x {LOUD_FACTOR:g}"}
    paths = {"loud_scaled": write_adapter(out / "loud_scaled", loud, card)}
    sizes = zoo_median_norms(zoo)
    inputs = module_inputs(engine, read_reference_prompts(GENERIC_REFERENCE_PROMPTS), list(source.factors))
    loudest = constructed(source, inputs, sizes)
    card = {
        "name": "loud_constructed",
        "hostile": True,
        "how": "s B A = c e_0 v^T per module: v the top singular direction of the module's inputs on the generic "
        "prompts, c the zoo's median ||s B A||_F there (analysis/hostile.py)",
    }
    paths["loud_constructed"] = write_adapter(out / "loud_constructed", loudest, card)
    return paths


def selection_rates(
    chosen: torch.Tensor, adapters: tuple[str, ...], labels: list[str], hostile: Sequence[str]
) -> dict[str, float]:
    """Share of prompts whose top-k (chosen: (P, k)) holds each hostile adapter, and holds it at rank 1."""
    rates = {}
    for name in hostile:
        i = adapters.index(name)
        rates[f"{name}_topk"] = (chosen == i).any(dim=1).float().mean().item()
        rates[f"{name}_top1"] = (chosen[:, 0] == i).float().mean().item()
        if name == "loud_scaled":  # a copy of SOURCE: on SOURCE's own inputs it is as right as SOURCE
            other = torch.tensor([t != SOURCE for t in labels])
            rates[f"{name}_topk_not_source_inputs"] = (chosen[other] == i).any(dim=1).float().mean().item()
    return rates


DEV_LIMIT = 20  # dev inputs per pool task (rows 4-23: the zoo's reference set holds rows 0-3)
STD_FLOORS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)  # candidate floors of std as a fraction of the mean (0: plain z-score)


def floored_zscore(raw: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, floor: float) -> torch.Tensor:
    """(P, N) z-scores whose std is at least `floor` x the adapter's mean signal (a coefficient-of-variation floor).

    A constant scale leaves the z-score unchanged either way; the floor stops an adapter whose signal barely varies
    over the reference prompts (a tiny std) from turning small deviations into large scores.
    """
    return (raw - mean) / torch.maximum(std, floor * mean.abs()).clamp_min(1e-12)


def dev_check(k: int = 3, temperature: float = 0.3) -> pd.DataFrame:
    """On dev inputs, the recommended preset's signal (norm, block -2, z-scored on the zoo's samples) in the zoo +
    hostile pool: each adapter's coefficient of variation on the reference set, and for every std floor the own-
    adapter top-1 and how often (and with what softmax weight) the hostile adapters enter the top-k. loud_scaled's
    rate is set beside its source's in the zoo-only pool: with identical z-scores, it can only follow its source."""
    from analysis.routing_study import REFERENCE_FILES, SignalBank, labelled_prompts, study_engine
    from zoo.data import load_tasks

    engine = study_engine([HOSTILE_DIR])
    tasks = [t for t in load_tasks() if not t.held_out]
    prompts, labels = labelled_prompts(tasks, "dev", DEV_LIMIT)
    bank = SignalBank.cached(engine, f"dev{DEV_LIMIT}_hostile", prompts, [-2])
    reference = SignalBank.cached(engine, "reference_own_hostile", read_reference_prompts(REFERENCE_FILES["own"]), [-2])
    raw, ref = bank.at(-2, "norm"), reference.at(-2, "norm")  # (P, N), (R, N)
    mean, std = ref.mean(0), ref.std(0)
    names = list(bank.adapters)
    cv = (std / mean).tolist()
    log.info(
        "coefficient of variation on the reference set: zoo median %.3f (min %.3f), loud_scaled %.3f, "
        "loud_constructed %.3f",
        statistics.median(c for n, c in zip(names, cv, strict=True) if n not in HOSTILE),
        min(c for n, c in zip(names, cv, strict=True) if n not in HOSTILE),
        cv[names.index("loud_scaled")],
        cv[names.index("loud_constructed")],
    )
    own = torch.tensor([names.index(t) for t in labels])
    zoo = torch.tensor([i for i, n in enumerate(names) if n not in HOSTILE])
    rows = []
    for floor in STD_FLOORS:
        scores = floored_zscore(raw, mean, std, floor)
        chosen = torch.topk(scores, k, dim=1)
        weights = torch.softmax(chosen.values / temperature, dim=1)  # the recommended weighting
        row = {"std_floor": floor, "own_top1": _per_task(chosen.indices[:, 0] == own, labels)}
        row["own_topk"] = _per_task((chosen.indices == own[:, None]).any(1), labels)
        for name in HOSTILE:
            hit = chosen.indices == names.index(name)
            row[f"{name}_topk"] = hit.any(1).float().mean().item()
            row[f"{name}_mean_weight"] = (weights * hit).sum(1).mean().item()
        source_alone = torch.topk(scores[:, zoo], k, dim=1).indices == names.index(SOURCE)  # zoo-only pool
        other = torch.tensor([t != SOURCE for t in labels])
        row["source_topk_zoo_pool_not_source_inputs"] = source_alone[other].any(1).float().mean().item()
        row["loud_scaled_topk_not_source_inputs"] = (
            (chosen.indices[other] == names.index("loud_scaled")).any(1).float().mean().item()
        )
        rows.append(row)
    table = pd.DataFrame(rows).assign(n_dev=len(labels))
    log.info("%s", table.to_string(index=False))
    return table


HOSTILE = ("loud_scaled", "loud_constructed")
LOUDNESS_BLOCKS = (-1, -2)  # the paper's probe block and the recommended one


def loudness(engine: LoGoEngine) -> pd.DataFrame:
    """Each adapter's mean output norm on the engine's reference prompts over the pool's upper quartile (and its
    median), per probe block, and whether the default loudness limit leaves it out (CalibrationStats.too_loud, as
    routing applies it)."""
    from logo.calibration import LOUDNESS_QUANTILE
    from logo.config import LOUDNESS_LIMIT, ProbeConfig

    reference, _ = engine.reference_set()
    rows = []
    for block in LOUDNESS_BLOCKS:
        stats = engine.calibration_stats(ProbeConfig(block=block), reference)
        norms = pd.Series(stats.mean["norm"], index=stats.adapters)
        upper, median = norms.quantile(LOUDNESS_QUANTILE), norms.median()
        loud = set(stats.too_loud(LOUDNESS_LIMIT))
        rows += [
            {
                "block": block,
                "adapter": name,
                "mean_norm": mean,
                "x_upper_quartile": mean / upper,
                "x_median": mean / median,
                "too_loud": name in loud,
            }
            for name, mean in norms.items()
        ]
    return pd.DataFrame(rows)


def engine_selection(engine: LoGoEngine, limit: int, k: int = 3) -> pd.DataFrame:
    """The presets as the engine routes them (loudness limit included) on `limit` test inputs of every pool task:
    how often each hostile adapter is selected (anywhere, first), what it is left out as, and own-adapter top-1."""
    from analysis.routing_study import labelled_prompts
    from logo.config import PRESETS, RoutingConfig
    from zoo.data import load_tasks

    prompts, labels = labelled_prompts([t for t in load_tasks() if not t.held_out], "test", limit)
    other = [label != SOURCE for label in labels]  # loud_scaled copies SOURCE: right on SOURCE's own inputs
    rows = []
    for preset in PRESETS:
        routings = engine.route(prompts, RoutingConfig.preset(preset, k=k))
        row = {"preset": preset, "too_loud": " ".join(routings[0].config["too_loud"])}
        for name in HOSTILE:
            hits = [name in r.selected for r in routings]
            row[f"{name}_selected"] = sum(hits) / len(hits)
            row[f"{name}_top1"] = sum(r.selected[0] == name for r in routings) / len(routings)
            if name == "loud_scaled":
                row[f"{name}_selected_not_source_inputs"] = sum(h for h, o in zip(hits, other, strict=True) if o) / sum(
                    other
                )
        own = pd.Series([r.selected[0] == label for r, label in zip(routings, labels, strict=True)])
        row["own_top1"] = float(own.groupby(labels).mean().mean())
        rows.append(row)
    return pd.DataFrame(rows).assign(n_test=len(prompts))


def _per_task(hits: torch.Tensor, labels: list[str]) -> float:
    return float(pd.Series(hits.float().numpy()).groupby(labels).mean().mean())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("build", "report", "dev", "loudness"))
    parser.add_argument("--limit", type=int, default=30, help="loudness: test inputs per pool task")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.step == "loudness":
        from analysis.routing_study import RESULTS_DIR, study_engine

        engine = study_engine([HOSTILE_DIR])
        table = loudness(engine)
        table.to_csv(RESULTS_DIR / "hostile_loudness.csv", index=False, float_format="%.4f")
        log.info("%s", table.sort_values(["block", "x_upper_quartile"]).groupby("block").tail(4).to_string(index=False))
        selection = engine_selection(engine, args.limit)
        selection.to_csv(RESULTS_DIR / "hostile_engine.csv", index=False, float_format="%.4f")
        log.info("%s", selection.to_string(index=False))
        return
    if args.step == "dev":
        from analysis.routing_study import RESULTS_DIR

        dev_check().to_csv(RESULTS_DIR / "hostile_dev.csv", index=False, float_format="%.4f")
        return
    if args.step == "build":
        from analysis.routing_study import study_engine

        for name, path in build(study_engine()).items():
            log.info("%s -> %s", name, path)
        return
    from analysis.pool_scaling import report_hostile

    report_hostile()


if __name__ == "__main__":
    main()
