"""Trains one PEFT LoRA adapter per pool task on the embedded base model and saves it in fp16.

python -m zoo.train --all                  # every pool task (a CUDA GPU takes minutes; a CPU hours)
python -m zoo.train --tasks en_fr --steps 2 --batch-size 2 --out /tmp/adapters   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from logo.base_model import load_base_model
from zoo.data import ADAPTERS_DIR, TASKS_DIR, Task, canonical_target, load_task, load_tasks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Settings shared by every adapter of the zoo (recorded in each card.json)."""

    rank: int = field(default=6, metadata={"help": "LoRA rank."})
    alpha: int = field(default=12, metadata={"help": "LoRA alpha (scaling alpha / rank = 2)."})
    # q and v only: q_proj must be adapted for the probe, and r=6 on q,v keeps 27 adapters under 20 MB in fp16
    targets: tuple[str, ...] = field(default=("q_proj", "v_proj"), metadata={"help": "Adapted modules."})
    steps: int = field(default=300, metadata={"help": "Optimiser steps."})
    batch_size: int = field(default=32, metadata={"help": "Examples per step."})
    lr: float = field(default=2e-3, metadata={"help": "Peak learning rate (linear warm-up, cosine decay)."})
    max_length: int = field(default=320, metadata={"help": "Longest prompt+answer in tokens; longer are skipped."})
    seed: int = field(default=0, metadata={"help": "Seed of data order and LoRA init."})


def train_step(peft_model, batch: dict, params, optimiser, schedule, autocast) -> float:
    """One optimiser step on `batch` (gradients clipped at norm 1, the schedule advanced); returns the loss."""
    with autocast:
        loss = peft_model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimiser.step()
    schedule.step()
    optimiser.zero_grad(set_to_none=True)
    return loss.item()


def encode_examples(tokenizer, task: Task, rows: list[dict], max_length: int) -> list[tuple[list[int], int]]:
    """(token ids of prompt+answer+<|im_end|>, length of the prompt part) per example; the loss covers the answer."""
    encoded = []
    for row in rows:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": task.prompt(row["input"])}], tokenize=False, add_generation_prompt=True
        )
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(canonical_target(row["target"]) + tokenizer.eos_token, add_special_tokens=False)[
            "input_ids"
        ]
        if len(prompt_ids) + len(answer_ids) <= max_length:
            encoded.append((prompt_ids + answer_ids, len(prompt_ids)))
    return encoded


def collate(batch: list[tuple[list[int], int]], pad_id: int, device) -> dict[str, torch.Tensor]:
    """Right-padded ids, mask and labels (-100 on the prompt and padding): (B, T) each."""
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), -100)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (tokens, prompt_len) in enumerate(batch):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
        labels[row, prompt_len : len(tokens)] = torch.tensor(tokens[prompt_len:])
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def train_adapter(base, task: Task, config: TrainConfig, out_dir: Path, limit: int | None = None) -> dict:
    """Train one adapter on the task's train split and save it (fp16 safetensors + card.json)."""
    torch.manual_seed(config.seed)
    rng = random.Random(f"{config.seed}:{task.name}")
    model, tokenizer = base.model, base.tokenizer
    device = next(model.parameters()).device
    examples = encode_examples(tokenizer, task, task.examples("train", limit), config.max_length)
    if not examples:
        raise ValueError(f"task {task.name!r} has no training example shorter than {config.max_length} tokens")
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        target_modules=list(config.targets),
        lora_dropout=0.05,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    peft_model.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    warmup = max(1, config.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * s / config.steps)).item()),
    )
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    started = time.perf_counter()
    order: list[int] = []
    progress = tqdm(range(config.steps), desc=task.name, leave=False)
    loss_value = float("nan")
    for _ in progress:
        if len(order) < config.batch_size:
            fresh = list(range(len(examples)))
            rng.shuffle(fresh)
            order.extend(fresh)
        batch = collate([examples[i] for i in order[: config.batch_size]], tokenizer.pad_token_id, device)
        del order[: config.batch_size]
        loss_value = train_step(peft_model, batch, params, optimiser, schedule, autocast)
        progress.set_postfix(loss=f"{loss_value:.3f}")
    minutes = (time.perf_counter() - started) / 60
    log.info("%s: final loss %.4f in %.1f min", task.name, loss_value, minutes)

    target = out_dir / task.name
    peft_model.save_pretrained(target, safe_serialization=True)
    peft_model.unload()  # removes the LoRA layers: the base model is clean for the next task
    weights = target / "adapter_model.safetensors"
    save_file({k: v.to(torch.float16).contiguous() for k, v in load_file(str(weights)).items()}, str(weights))
    (target / "README.md").unlink(missing_ok=True)
    card = {
        "name": task.name,
        "category": task.category,
        "description": task.description,
        "training": {
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
            "examples": len(examples),
            "final_loss": round(loss_value, 4),
            "machine": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "minutes": round(minutes, 2),
        },
    }
    (target / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def run_workers(tasks: list[Task], args: argparse.Namespace, config: TrainConfig) -> None:
    """Split the tasks round-robin over `args.workers` processes running this module, and wait for all."""
    common = ["--tasks-dir", str(args.tasks_dir), "--out", str(args.out)]
    common += ["--device", args.device] if args.device else []
    common += ["--limit", str(args.limit)] if args.limit else []
    common += [
        f"--{k.replace('_', '-')}={getattr(config, k)}" for k in TrainConfig.__dataclass_fields__ if k != "targets"
    ]
    shares = [tasks[i :: args.workers] for i in range(args.workers)]
    procs = [
        subprocess.Popen([sys.executable, "-m", "zoo.train", *common, "--tasks", *(t.name for t in share)])
        for share in shares
        if share
    ]
    failed = [p.args for p in procs if p.wait() != 0]
    if failed:
        raise SystemExit(f"error: {len(failed)} worker(s) failed: {failed}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Train the zoo's LoRA adapters.")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every pool task")
    which.add_argument("--tasks", nargs="+", help="these tasks")
    parser.add_argument("--tasks-dir", type=Path, default=TASKS_DIR)
    parser.add_argument("--out", type=Path, default=ADAPTERS_DIR)
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--limit", type=int, help="read at most this many training examples (smoke runs)")
    parser.add_argument("--skip-existing", action="store_true", help="keep adapters that already have a card.json")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="train in this many processes at once: a 135M model leaves a GPU mostly idle (launch-bound)",
    )
    for name, f in TrainConfig.__dataclass_fields__.items():
        if name != "targets":
            parser.add_argument(
                f"--{name.replace('_', '-')}", type=type(f.default), default=f.default, help=f.metadata["help"]
            )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = TrainConfig(**{k: getattr(args, k) for k in TrainConfig.__dataclass_fields__ if k != "targets"})
    tasks = (
        load_tasks(args.tasks_dir, held_out=False) if args.all else [load_task(t, args.tasks_dir) for t in args.tasks]
    )
    held = [t.name for t in tasks if t.held_out]
    if held:
        raise SystemExit(f"error: {held} are held-out tasks: no adapter is trained on them")
    if args.skip_existing:
        tasks = [t for t in tasks if not (args.out / t.name / "card.json").is_file()]
    if args.workers > 1:
        run_workers(tasks, args, config)
        return
    base = load_base_model("embedded", device=args.device, dtype="float32")
    base.model.config.use_cache = False
    for task in tasks:
        card = train_adapter(base, task, config, args.out, args.limit)
        print(
            f"{task.name:28s} loss {card['training']['final_loss']:.4f}  {card['training']['minutes']:.2f} min",
            flush=True,
        )


if __name__ == "__main__":
    main()
