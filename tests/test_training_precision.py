"""Which precision local LoRA training runs in, and why (what the trainer records and `doctor` shows)."""

from __future__ import annotations

import pytest

from assistant import cpu
from assistant.device import Device
from assistant.finetune import precision
from assistant.finetune.precision import BF16, FP32, training_precision

CPU = Device("cpu", "test")


def test_bf16_autocast_only_where_the_cpu_has_it_and_fp32_opts_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "has_native_bf16", lambda: True)
    assert training_precision("auto", CPU) == precision.TrainingPrecision(BF16, "the CPU multiplies bf16 natively")
    assert training_precision("fp32", CPU).name == FP32
    assert training_precision("fp16", CPU).name == FP32  # fp16 is a generation setting
    monkeypatch.setattr(precision, "has_native_bf16", lambda: False)
    assert training_precision("auto", CPU).name == FP32
    assert training_precision("bf16", CPU).name == BF16


def test_capping_torch_at_avx2_takes_native_bf16_away(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert cpu.has_native_bf16()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not cpu.has_native_bf16()
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert not cpu.has_native_bf16()
