"""Trains a LoraGenerator end to end on (system prompt, bare input, target) examples; seeded and resumable.

Loss = the edge model's LM loss on the target tokens + balance_weight * CV(gates)^2 (the paper's
load-balancing term: per layer, the coefficient of variation of the gate mass each expert gets in a batch).
The edge model and the reader's base weights stay frozen; the experts, routers, meta tokens and the
reader's q/v LoRA learn. Progress goes to `on_step`, never to stdout.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import TrainConfig
from .generator import LoraGenerator
from .prompts import edge_prompt

TRAINER_STATE = "trainer.pt"
MAX_SKIPPED_STEPS = 20


@dataclass(frozen=True)
class TrainExample:
    system_prompt: str  # what the reader reads: description (+ demos)
    input: str  # what the edge model reads, inside its chat template
    target: str  # the answer it should give


@dataclass(frozen=True)
class StepLog:
    step: int
    loss: float
    lm_loss: float
    balance_loss: float
    lr: float
    elapsed_s: float


@dataclass(frozen=True)
class TrainResult:
    step: int  # steps done in total
    finished: bool  # reached config.steps (False: stopped by the time limit, resume to go on)
    history: tuple[StepLog, ...]


def balance_loss(gates: torch.Tensor) -> torch.Tensor:
    """CV^2 of each expert's total gate in the batch, averaged over layers. gates: (B, L, n)."""
    importance = gates.sum(0)  # (L, n)
    mean = importance.mean(-1)
    return (importance.var(-1, unbiased=False) / (mean**2 + 1e-9)).mean()


def encode_edge_batch(tokenizer, examples: Sequence[TrainExample], device) -> tuple[torch.Tensor, ...]:
    """Right-padded ids, mask and labels (B, T): labels are -100 except on the target and its end-of-turn."""
    rows, label_rows = [], []
    eos = tokenizer.eos_token or ""
    for ex in examples:
        prompt = edge_prompt(tokenizer, ex.input)  # the bare input, as the engine sends it
        prompt_ids = tokenizer(prompt, add_special_tokens=not tokenizer.chat_template)["input_ids"]
        target_ids = tokenizer(ex.target + eos, add_special_tokens=False)["input_ids"]
        rows.append(prompt_ids + target_ids)
        label_rows.append([-100] * len(prompt_ids) + target_ids)
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id or 0
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
    labels = torch.tensor([r + [-100] * (width - len(r)) for r in label_rows], device=device)
    return ids, mask, labels


def _schedule(config: TrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _optimizer(generator: LoraGenerator, config: TrainConfig) -> torch.optim.Optimizer:
    named = [(n, p) for n, p in generator.model.named_parameters() if p.requires_grad]
    reader = [p for n, p in named if n.startswith("reader.model.")]
    rest = [p for n, p in named if not n.startswith("reader.model.")]
    groups = [{"params": rest, "lr": config.lr}, {"params": reader, "lr": config.reader_lr}]
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=config.weight_decay)


def train(
    generator: LoraGenerator,
    examples: Sequence[TrainExample],
    config: TrainConfig,
    *,
    checkpoint: Path | None = None,
    resume: Path | None = None,
    on_step: Callable[[StepLog], None] | None = None,
) -> TrainResult:
    """1. resume model, optimiser and step from `resume` if given; 2. per step draw a seeded batch, read the
    system prompts into gates, run the edge model with the gated deltas, back-propagate LM + balance loss;
    3. checkpoint every `checkpoint_every` steps, at the time limit and at the end."""
    if len(examples) < config.batch_size:
        raise ValueError(f"{len(examples)} training examples, fewer than batch_size={config.batch_size}")
    if config.batch_size < 2:
        raise ValueError("batch_size must be at least 2: the routers' BatchNorm needs a batch")
    optimizer = _optimizer(generator, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    step = 0
    if resume is not None:
        state = torch.load(Path(resume) / TRAINER_STATE, map_location=generator.device, weights_only=True)
        generator.model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = int(state["step"])
    torch.manual_seed(config.seed)
    generator.model.train()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=generator.device.type == "cuda")
    start, history, skipped = time.perf_counter(), [], 0
    while step < config.steps:
        rng = np.random.default_rng([config.seed, step])  # the batch depends on (seed, step) alone: resumable
        batch = [examples[i] for i in rng.choice(len(examples), config.batch_size, replace=False)]
        ids, mask, labels = encode_edge_batch(generator.edge.tokenizer, batch, generator.device)
        with autocast:
            gates = generator.gates([ex.system_prompt for ex in batch])  # (B, L, n)
            logits = generator.edge_logits(ids, mask, gates)  # (B, T, V)
        lm = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
        )
        balance = balance_loss(gates.float())
        loss = lm + config.balance_weight * balance
        optimizer.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            trainable = [p for p in generator.model.parameters() if p.requires_grad]
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
        if not torch.isfinite(loss) or not torch.isfinite(grad_norm):
            # one bad batch (bf16 overflow) skips its update; many in a row mean the run has diverged
            skipped += 1
            if skipped > MAX_SKIPPED_STEPS:
                raise FloatingPointError(
                    f"step {step}: {skipped} steps in a row had a non-finite loss or gradient: lower lr "
                    f"(now {config.lr}) and resume from the last checkpoint"
                )
            step += 1
            continue
        skipped = 0
        optimizer.step()
        scheduler.step()
        step += 1
        log = StepLog(
            step, loss.item(), lm.item(), balance.item(), scheduler.get_last_lr()[0], time.perf_counter() - start
        )
        history.append(log)
        if on_step is not None:
            on_step(log)
        out_of_time = log.elapsed_s > 60 * config.max_minutes
        if checkpoint is not None and (step % config.checkpoint_every == 0 or out_of_time or step == config.steps):
            save_trainer_state(generator, optimizer, scheduler, step, Path(checkpoint))
        if out_of_time:
            break
    generator.model.eval()
    return TrainResult(step=step, finished=step >= config.steps, history=tuple(history))


def save_trainer_state(generator: LoraGenerator, optimizer, scheduler, step: int, directory: Path) -> None:
    """fp32 model state + optimiser + schedule (to resume) next to the fp16 generator checkpoint (to ship)."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "model": {k: v.detach().cpu() for k, v in generator.model.generator_state().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
    }
    torch.save(state, directory / TRAINER_STATE)
    generator.save_checkpoint(directory, card={"trained_steps": step})
