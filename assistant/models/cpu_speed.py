"""Making the local model fast on CPU. `auto` only uses formats that keep greedy output identical to fp32;
`bf16` is faster than fp32 but its greedy text drifts after a few dozen tokens. Measured in docs/BENCHMARKS.md."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
from transformers import LogitsProcessor

from assistant.models import exact_quant

log = logging.getLogger(__name__)


def optimise(model, precision: str, build_root: Path, weight_files: list[Path]) -> tuple[object, str]:
    """The model in the requested format, and a short description of the format actually used.
    `weight_files` made the model (base weights, adapter): the packed copy is cached per version of them."""
    if precision == "bf16":
        return model.to(torch.bfloat16), "bf16"
    if precision == "fp32":
        return model, "fp32"
    reason = exact_quant.kernels_supported()
    if reason is None:
        try:
            identity = "|".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in weight_files)
            key = hashlib.sha256(identity.encode()).hexdigest()[:16]
            packed = exact_quant.pack_exact(model, build_root, build_root / "packed" / f"{key}.safetensors")
            return packed, "exact Q4_1/Q8_0 kernels (fp32 activations)"
        except exact_quant.NotExact as exc:
            reason = str(exc)
        except (OSError, RuntimeError) as exc:  # compiler missing pieces, build failure
            reason = f"kernel build failed: {str(exc).splitlines()[0][:200]}"
    log.info("Using fp32 for the local model (%s)", reason)
    return model, f"fp32 ({reason})"


class DecodeThreads(LogitsProcessor):
    """With the packed kernels, decode steps run torch's own ops on one thread and leave the other cores to the
    kernels' pool: both pools spin between jobs, and the two spinning on the same cores made decoding ~10x slower,
    while torch's remaining per-token ops (norms, attention over the cache) are too small to gain from threads.
    `generate` calls logits processors after every forward pass; the first is the prompt's (prefill), which keeps
    torch's threads for attention over the whole prompt. Only the generating thread changes; `restore` undoes it."""

    def __init__(self, model) -> None:
        self.active = exact_quant.is_packed(model)  # any other model keeps torch's threads throughout
        self.before: int | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.active and self.before is None:
            self.before = exact_quant.torch_threads_here(1)
        return scores

    def restore(self) -> None:
        if self.before is not None:
            exact_quant.torch_threads_here(self.before)
            self.before = None
