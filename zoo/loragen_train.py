"""`make loragen`: train the LoRA-Gen generator on the zoo's pool tasks (GPU in minutes; a tiny run on the CPU)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from tqdm.auto import tqdm

from logo.loragen import LoraGenConfig, LoraGenerator, TrainConfig
from logo.loragen.train import train
from zoo.data import ASSETS_DIR, TASKS_DIR
from zoo.loragen_data import training_examples, zoo_experts

DEFAULT_OUT = ASSETS_DIR / "loragen"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="checkpoint folder (default assets/loragen)")
    parser.add_argument("--resume", type=Path, help="a checkpoint folder with trainer.pt to continue from")
    parser.add_argument("--experts", choices=("trained", "zoo"), default="trained")
    parser.add_argument("--tasks-dir", type=Path, default=TASKS_DIR)
    parser.add_argument("--per-task", type=int, help="train examples per task (default: all)")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--max-minutes", type=float, default=TrainConfig.max_minutes)
    parser.add_argument("--device", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    config = LoraGenConfig(experts=args.experts)
    experts = zoo_experts() if args.experts == "zoo" else []
    generator = LoraGenerator.build(config, expert_adapters=experts, device=args.device, seed=args.seed)
    examples = training_examples(args.tasks_dir, seed=args.seed, per_task=args.per_task)
    run = TrainConfig(steps=args.steps, batch_size=args.batch_size, max_minutes=args.max_minutes, seed=args.seed)
    bar = tqdm(total=run.steps, desc="loragen")

    def on_step(log) -> None:
        bar.n = log.step
        bar.set_postfix(loss=f"{log.loss:.3f}", lm=f"{log.lm_loss:.3f}", bal=f"{log.balance_loss:.3f}")
        if log.step % 50 == 0:
            logging.info(
                "step %d loss %.4f lm %.4f balance %.4f lr %.2e",
                log.step,
                log.loss,
                log.lm_loss,
                log.balance_loss,
                log.lr,
            )

    result = train(generator, examples, run, checkpoint=args.out, resume=args.resume, on_step=on_step)
    bar.close()
    losses = [h.lm_loss for h in result.history]
    summary = {
        "steps": result.step,
        "finished": result.finished,
        "examples": len(examples),
        "first_lm_loss": losses[0] if losses else None,
        "last_lm_loss_mean50": sum(losses[-50:]) / max(1, len(losses[-50:])),
    }
    (args.out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    logging.info("%s", summary)


if __name__ == "__main__":
    main()
