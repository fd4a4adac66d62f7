"""How local LoRA training multiplies, decided once from the device and `local_precision`, with the reason: the
trainer runs it and records it, `assistant doctor` shows it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from assistant.cpu import has_native_bf16
from assistant.device import Device

BF16, FP32 = "bf16 autocast", "fp32"


@dataclass(frozen=True)
class TrainingPrecision:
    name: str  # BF16 or FP32: what the run's metrics record
    why: str


def training_precision(local_precision: str, device: Device) -> TrainingPrecision:
    """bf16 autocast where the device multiplies bf16 natively (a GPU that has it; a CPU with AVX512_BF16 or AMX),
    else fp32 (emulated bf16 is slower than fp32); `local_precision=fp32` opts out, `bf16` forces it."""
    if local_precision in ("fp32", "fp16"):  # fp16 is for generating on a GPU; training keeps fp32 with it
        return TrainingPrecision(FP32, f"local_precision={local_precision}")
    if local_precision == "bf16":
        return TrainingPrecision(BF16, "local_precision=bf16")
    if device.kind == "cuda":
        if torch.cuda.is_bf16_supported():
            return TrainingPrecision(BF16, "the GPU has bf16")
        return TrainingPrecision(FP32, "the GPU has no bf16")
    if device.is_gpu:
        return TrainingPrecision(FP32, f"{device.kind} trains in fp32")
    if has_native_bf16():
        return TrainingPrecision(BF16, "the CPU multiplies bf16 natively")
    return TrainingPrecision(FP32, "no native bf16 on this CPU (AVX512_BF16 or AMX)")
