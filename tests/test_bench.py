"""The benchmark scripts run in a tiny configuration on the CPU (smoke tests: no timing is asserted)."""

from __future__ import annotations

import torch

from app.pool import AdapterPool
from bench.engine_gpu import TINY, main, random_model


def test_gpu_benchmark_runs_tiny_on_the_cpu(capsys):
    main(["--tiny", "--adapters", "3", "--k", "2", "--prompt-tokens", "8", "--new-tokens", "4", "--repeats", "1"])
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("N |"))
    row = lines[lines.index(header) + 1].split(" | ")
    assert row[0] == "3" and len(row) == len(header.split(" | "))
    assert any("end-to-end mixture" in line for line in lines)


def test_random_pool_covers_every_targeted_module():
    model = random_model(TINY, "cpu", torch.float32)
    pool = AdapterPool.random(model, 5, rank=4)
    assert len(pool) == 5 and len(pool.modules) == 4 * TINY["num_hidden_layers"]
    q = pool.modules["model.layers.0.self_attn.q_proj"]
    assert q.a.shape == (5, 4, 64) and q.b.shape == (5, 64, 4) and q.scaling.tolist() == [8.0] * 5
