"""How llama.cpp is built for this CPU, and which builds are refused, without building or loading anything."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from assistant import cpu
from assistant.errors import ModelUnavailable
from assistant.models import llama_build, llama_lib

SAPPHIRE_RAPIDS = frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"})
ZEN_4 = frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"})


def test_a_native_build_on_an_amx_cpu_leaves_the_amx_kernels_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "cpu_flags", lambda: SAPPHIRE_RAPIDS)
    assert "-mno-amx-int8" in llama_build.native_args()
    # A wheel cached before this fix (key without the flags) is not reused: it would crash.
    assert llama_build._key(llama_build.native_args()) != llama_build._key("")
    monkeypatch.setattr(cpu, "cpu_flags", lambda: ZEN_4)
    assert llama_build.native_args() == ""


def test_a_build_with_the_amx_kernels_is_refused_with_the_fix() -> None:
    amx = SimpleNamespace(llama_print_system_info=lambda: b"CPU : AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 |")
    with pytest.raises(ModelUnavailable, match=r"AMX kernels.*#20824.*make install"):
        llama_lib.refuse_crashing_build(amx)
    plain = SimpleNamespace(llama_print_system_info=lambda: b"CPU : AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 0 |")
    llama_lib.refuse_crashing_build(plain)
    assert llama_lib.built_features(plain) == {"AVX2", "AVX512"}
