"""Making the local model fast on CPU without changing what it says. Filled in from benchmarks/bench_generation.py."""

from __future__ import annotations

import torch


def optimise(model, precision: str):
    if precision == "bf16":
        return model.to(torch.bfloat16)
    return model
