"""LoRA-Gen's row 6: ONE multi-task LoRA trained on every pool task with the description in context (the paper's
"+LoRA" baseline), on the edge model's FFN like the generated adapters; fp16 PEFT directory.

    python -m zoo.loragen_multitask --out assets/loragen_multitask            # one H200: about 3 minutes
    python -m zoo.loragen_multitask --per-task 4 --steps 2 --batch-size 2 --out /tmp/mt   # a CPU smoke run

The examples are LoRA-Gen's own (zoo.loragen_data.training_examples: a description paraphrase + 0-5 train
demos as the system prompt, the bare input as the user turn, the task's answer as the target); held-out tasks
never. Rank 4 on gate/up/down_proj: the rank of a generated adapter (K = 2 experts of rank 2) on the same
modules, so the two compare at equal size per request.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from logo.base_model import load_base_model
from logo.loragen.config import FFN_MODULES
from logo.loragen.prompts import edge_prompt
from logo.loragen.train import TrainExample
from zoo.data import ASSETS_DIR, TASKS_DIR
from zoo.loragen_data import training_examples
from zoo.train import collate, train_step

log = logging.getLogger(__name__)
DEFAULT_OUT = ASSETS_DIR / "loragen_multitask"


@dataclass(frozen=True)
class MultitaskConfig:
    rank: int = field(default=4, metadata={"help": "LoRA rank (a generated adapter's: K=2 experts x r=2)."})
    alpha: int = field(default=8, metadata={"help": "LoRA alpha (scaling 2, as the zoo's adapters)."})
    targets: tuple[str, ...] = field(
        default=tuple(m.rsplit(".", 1)[-1] for m in FFN_MODULES), metadata={"help": "The FFN, as LoRA-Gen's experts."}
    )
    steps: int = field(default=1200, metadata={"help": "Optimiser steps (cosine schedule over these)."})
    batch_size: int = field(default=32, metadata={"help": "Examples per step."})
    lr: float = field(default=1e-3, metadata={"help": "Peak learning rate (50 warm-up steps, cosine decay)."})
    max_length: int = field(default=512, metadata={"help": "Longest system + input + answer; longer are skipped."})
    max_minutes: float = field(default=3.0, metadata={"help": "Stop (and save) after this long: one GPU slot."})
    seed: int = field(default=0, metadata={"help": "Seeds data order and LoRA init."})

    def __post_init__(self) -> None:
        for name in ("rank", "steps", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.max_minutes <= 0:
            raise ValueError(f"lr and max_minutes must be positive, got {self.lr}, {self.max_minutes}")


def encode(tokenizer, examples: list[TrainExample], max_length: int) -> list[tuple[list[int], int]]:
    """(ids of system + input + answer + end of turn, prompt length) per example: the loss covers the answer.
    Examples longer than `max_length` tokens are left out."""
    encoded = []
    for ex in examples:
        prompt = edge_prompt(tokenizer, ex.input, ex.system_prompt)  # the description in context, as row 1
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(ex.target + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        if len(prompt_ids) + len(answer_ids) <= max_length:
            encoded.append((prompt_ids + answer_ids, len(prompt_ids)))
    return encoded


def train_multitask(base, examples: list[TrainExample], config: MultitaskConfig, out_dir: Path) -> dict:
    """1. PEFT LoRA on the FFN; 2. seeded batches (each drawn from (seed, step) alone), LM loss on the answers,
    AdamW with warm-up + cosine, bf16 autocast on a GPU; 3. stop at `steps` or `max_minutes`; save fp16 + card."""
    torch.manual_seed(config.seed)
    model, tokenizer = base.model, base.tokenizer
    device = next(model.parameters()).device
    if len(examples) < config.batch_size:
        raise ValueError(f"{len(examples)} training examples, fewer than batch_size={config.batch_size}")
    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, target_modules=list(config.targets), lora_dropout=0.0)
    peft_model = get_peft_model(model, lora)
    peft_model.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    warmup = min(50, max(1, config.steps // 10))

    def factor(step: int) -> float:
        progress = max(0.0, (step - warmup) / max(1, config.steps - warmup))
        return min(1.0, (step + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * min(1.0, progress)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    started, losses, step = time.perf_counter(), [], 0
    progress = tqdm(total=config.steps, desc="multitask")
    while step < config.steps and time.perf_counter() - started < 60 * config.max_minutes:
        rng = np.random.default_rng([config.seed, step])  # the batch depends on (seed, step) alone
        drawn = [examples[i] for i in rng.choice(len(examples), config.batch_size, replace=False)]
        encoded = encode(tokenizer, drawn, config.max_length)  # per batch: no minute of tokenising up front
        if not encoded:
            raise ValueError(f"step {step}: no example of the batch fits max_length={config.max_length}")
        batch = collate(encoded, tokenizer.pad_token_id, device)
        losses.append(train_step(peft_model, batch, params, optimiser, schedule, autocast))
        step += 1
        progress.update(1)
        progress.set_postfix(loss=f"{losses[-1]:.3f}")
        if step % 100 == 0:
            log.info("step %d loss %.4f (mean of the last 100 %.4f)", step, losses[-1], np.mean(losses[-100:]))
    progress.close()
    minutes = (time.perf_counter() - started) / 60
    out_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(out_dir, safe_serialization=True)
    peft_model.unload()  # the base model is clean again
    weights = out_dir / "adapter_model.safetensors"
    save_file({k: v.to(torch.float16).contiguous() for k, v in load_file(str(weights)).items()}, str(weights))
    (out_dir / "README.md").unlink(missing_ok=True)
    card = {
        "name": "loragen_multitask",
        "kind": "LoRA-Gen row 6: one multi-task LoRA, all pool tasks, description (+0-5 demos) in context",
        "training": {
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
            "examples": len(examples),
            "steps_done": step,
            "finished": step >= config.steps,
            "first_loss": round(losses[0], 4),
            "last_loss_mean100": round(float(np.mean(losses[-100:])), 4),
            "machine": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "minutes": round(minutes, 2),
        },
        "weights_bytes": weights.stat().st_size,
    }
    (out_dir / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--tasks-dir", type=Path, default=TASKS_DIR)
    parser.add_argument("--per-task", type=int, help="train examples per task (default: all)")
    parser.add_argument("--steps", type=int, default=MultitaskConfig.steps)
    parser.add_argument("--batch-size", type=int, default=MultitaskConfig.batch_size)
    parser.add_argument("--max-minutes", type=float, default=MultitaskConfig.max_minutes)
    parser.add_argument("--device", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = MultitaskConfig(steps=args.steps, batch_size=args.batch_size, max_minutes=args.max_minutes, seed=args.seed)
    base = load_base_model("embedded", device=args.device, dtype="float32")
    examples = training_examples(args.tasks_dir, seed=args.seed, per_task=args.per_task)
    card = train_multitask(base, examples, config, args.out)
    log.info("%s", json.dumps(card["training"]))


if __name__ == "__main__":
    main()
