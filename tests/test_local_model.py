"""The local backend on the real bundled SmolLM2, offline: llama.cpp for GGUF files, transformers for folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.errors import AssistantError, ConfigError, ModelUnavailable
from assistant.models import llama_build, llama_lib, local_weights
from assistant.models.local import load_local
from assistant.prompts import plain_chat
from tests.limits import HANG_GUARD_S

pytestmark = pytest.mark.integration
ASSISTANT = str(Path(sys.executable).with_name("assistant"))


def test_answers_a_factual_question_offline(local_generator) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    reply = local_generator.generate(plain_chat("What is the capital of France?"))
    assert "Paris" in reply.text
    assert reply.finish_reason == "stop"  # it stopped at the end-of-turn token, not at max_tokens
    assert reply.usage.completion_tokens < 24


def test_a_gguf_runs_quantised_in_llama_cpp_without_being_dequantised(
        local_generator, model_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert local_generator.runtime.startswith("llama.cpp (CPU, ")

    def no_dequantisation(*args: object) -> None:
        raise AssertionError("serving a GGUF in llama.cpp must not dequantise it")

    monkeypatch.setattr(local_weights, "_dequantise_into", no_dequantisation)
    fresh = load_local(Settings(home=model_home / "elsewhere", max_tokens=24))
    question = plain_chat("What does DNS stand for?")
    assert fresh.generate(question).text == local_generator.generate(question).text


def test_prompts_are_the_tokens_training_sees(local_generator, hf_model_folder: Path) -> None:
    """Served as trained: llama.cpp's rendering of the GGUF's chat template gives exactly the token ids that
    transformers' tokenizer (what LoRA training uses) gives for the same conversation."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_model_folder)
    from assistant.models.base import Message

    for messages in (plain_chat("Héllo — what's a VLAN?"),
                     [Message("user", "first"), Message("assistant", "an answer\nover lines"), Message("user", "2nd")]):
        chat = [{"role": m.role, "content": m.content} for m in messages]
        expected = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_dict=True)["input_ids"]
        assert local_generator._encode(messages) == list(expected)


def test_a_hugging_face_folder_runs_in_transformers(transformers_generator) -> None:
    assert transformers_generator.runtime.startswith("transformers (cpu, float32")
    reply = transformers_generator.generate(plain_chat("What is the capital of France?"))
    assert "Paris" in reply.text and reply.finish_reason == "stop"


def test_a_k_quant_gguf_the_user_brings_loads_and_answers(model_home: Path, tmp_path: Path) -> None:
    """Made here with llama.cpp's own quantiser: the bundled weights re-quantised to Q4_K_M (no downloads)."""
    import ctypes

    from gguf import GGMLQuantizationType, GGUFReader

    from assistant import bundled

    llama_cpp = llama_lib.load_llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize, params.nthread = 15, True, 2  # 15 = LLAMA_FTYPE_MOSTLY_Q4_K_M
    user_model = tmp_path / "my-model.Q4_K_M.gguf"
    assert llama_cpp.llama_model_quantize(str(bundled.GENERATOR.path()).encode(), str(user_model).encode(),
                                          ctypes.byref(params)) == 0
    kinds = {t.tensor_type for t in GGUFReader(str(user_model)).tensors}
    assert {GGMLQuantizationType.Q4_K, GGMLQuantizationType.Q6_K} & kinds, kinds

    generator = load_local(Settings(home=model_home, max_tokens=24), model=str(user_model))
    assert generator.model_id == "my-model.Q4_K_M" and generator.runtime.startswith("llama.cpp")
    assert "Paris" in generator.generate(plain_chat("What is the capital of France?")).text


def test_an_untrained_lora_adapter_changes_nothing(
        local_generator, model_home: Path, hf_model_folder: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(hf_model_folder)
    # peft initialises LoRA's B matrices to zero, so a fresh adapter is an exact no-op: any change is a bug.
    adapter = tmp_path / "my-adapter"
    get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(adapter)

    tuned = load_local(Settings(home=model_home, max_tokens=24), adapter=adapter)
    # The bundled model is served from an f16 copy, so the adapter is merged into one (decodes at plain's speed).
    assert tuned.model_id.endswith("+my-adapter") and "adapter merged in f16" in tuned.runtime
    assert list((model_home / "models" / "lora").glob("*.merged-f16.gguf"))  # made once, cached by the adapter
    question = plain_chat("What is a subnet mask?")
    assert tuned.generate(question).text == local_generator.generate(question).text


def test_llama_cpp_runs_without_its_crashing_amx_kernels_and_says_so_on_amx_cpus(local_generator) -> None:
    from assistant.cpu import cpu_flags

    assert "AMX_INT8" not in llama_lib.built_features(llama_lib.load_llama_cpp())
    assert ("AMX left out" in local_generator.runtime) == ("amx_int8" in cpu_flags()), local_generator.runtime


def test_without_llama_cpp_a_gguf_falls_back_to_transformers_and_says_why(
        model_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llama_lib, "unavailable_reason", lambda cpu="auto": "llama.cpp is not available (test)")
    generator = load_local(Settings(home=model_home, max_tokens=8))
    assert generator.runtime.startswith("transformers (cpu, float32; llama.cpp unavailable: llama.cpp is not avail")
    assert generator.generate(plain_chat("Say hello.")).text.strip()


def test_the_avx2_build_can_be_forced_and_answers() -> None:
    """Most laptops have AVX2 and no AVX-512. On a CPU with AVX-512 that path is the AVX2-only build made at
    install, forced with local_cpu=avx2; on a CPU without AVX-512 it is the native build."""
    forced = llama_build.wants_avx2_variant()
    env = {**os.environ, "ASSISTANT_LOCAL_CPU": "avx2" if forced else "auto"}
    result = subprocess.run([ASSISTANT, "ask", "What is the capital of France?", "--json", "--max-tokens", "16"],
                            capture_output=True, text=True, timeout=HANG_GUARD_S, env=env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    if sys.platform.startswith("linux") and os.uname().machine == "x86_64":
        assert "AVX2 kernels" in answer["runtime"], answer["runtime"]
    assert "Paris" in answer["text"]


def test_device_auto_is_the_cpu_here_and_an_absent_gpu_is_a_clear_error(model_home: Path) -> None:
    import torch

    from assistant.device import resolve_device

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the CPU-only expectations do not apply")
    assert resolve_device("auto").name == "cpu"
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        load_local(Settings(home=model_home, device="cuda"))
    result = subprocess.run([ASSISTANT, "ask", "hi"], capture_output=True, text=True, timeout=HANG_GUARD_S,
                            env={**os.environ, "ASSISTANT_DEVICE": "cuda:0"})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "no CUDA GPU" in result.stderr


def test_pickled_adapters_are_refused(tmp_path: Path, model_home: Path) -> None:
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelUnavailable, match="pickled .bin"):
        load_local(Settings(home=model_home), adapter=tmp_path)


def test_unknown_local_model_path_is_explained(model_home: Path) -> None:
    with pytest.raises(ModelUnavailable, match="never downloads"):
        load_local(Settings(home=model_home, model="HuggingFaceTB/SmolLM2-135M-Instruct"))


def test_a_prompt_too_long_for_the_context_is_refused(local_generator) -> None:
    with pytest.raises(AssistantError, match="context window"):
        local_generator.generate(plain_chat("word " * 9000))
