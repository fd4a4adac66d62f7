"""The local backend on the real bundled SmolLM2, offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.errors import AssistantError, ModelUnavailable
from assistant.models import local_weights
from assistant.models.local import LocalGenerator
from assistant.prompts import plain_chat

pytestmark = pytest.mark.integration


def test_answers_a_factual_question_offline(local_generator: LocalGenerator) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    reply = local_generator.generate(plain_chat("What is the capital of France?"))
    assert "Paris" in reply.text
    assert reply.finish_reason == "stop"  # it stopped at the end-of-turn token, not at max_tokens
    assert reply.usage.completion_tokens < 24


def test_greedy_output_is_reproducible(local_generator: LocalGenerator) -> None:
    question = plain_chat("Name three uses of a hash function.")
    first, second = (local_generator.generate(question).text for _ in range(2))
    assert first == second


def test_sampling_is_reproducible_with_a_seed(local_generator: LocalGenerator) -> None:
    question = plain_chat("Write a short poem about routers.")
    texts = {seed: [local_generator.generate(question, temperature=1.0, seed=seed).text for _ in range(2)]
             for seed in (1, 2)}
    assert texts[1][0] == texts[1][1] and texts[2][0] == texts[2][1]
    assert texts[1][0] != texts[2][0]


def test_reload_uses_the_safetensors_cache(local_generator: LocalGenerator, model_home: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    cached = list((model_home / "models").glob("SmolLM2-135M-Instruct*/model.safetensors"))
    assert len(cached) == 1

    def no_second_dequantisation(*args: object) -> None:
        raise AssertionError("the GGUF was dequantised again instead of using the cache")

    monkeypatch.setattr(local_weights, "_dequantise_into", no_second_dequantisation)
    reloaded = LocalGenerator.from_settings(Settings(home=model_home, max_tokens=24))
    question = plain_chat("What does DNS stand for?")
    assert reloaded.generate(question).text == local_generator.generate(question).text


def test_an_untrained_lora_adapter_loads_and_leaves_output_unchanged(
    local_generator: LocalGenerator, model_home: Path, tmp_path: Path
) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_folder = next((model_home / "models").glob("SmolLM2-135M-Instruct*/config.json")).parent
    base = AutoModelForCausalLM.from_pretrained(base_folder)
    # peft initialises LoRA's B matrices to zero, so a fresh adapter is an exact no-op: any change is a bug.
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    adapter = tmp_path / "my-adapter"
    peft_model.save_pretrained(adapter)
    assert (adapter / "adapter_model.safetensors").is_file()

    tuned = LocalGenerator.from_settings(Settings(home=model_home, max_tokens=24), adapter=adapter)
    assert tuned.model_id.endswith("+my-adapter")
    question = plain_chat("What is a subnet mask?")
    assert tuned.generate(question).text == local_generator.generate(question).text


def test_pickled_adapters_are_refused(tmp_path: Path, model_home: Path) -> None:
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelUnavailable, match="pickled .bin"):
        LocalGenerator.from_settings(Settings(home=model_home), adapter=tmp_path)


def test_unknown_local_model_path_is_explained(model_home: Path) -> None:
    with pytest.raises(ModelUnavailable, match="never downloads"):
        LocalGenerator.from_settings(Settings(home=model_home, model="HuggingFaceTB/SmolLM2-135M-Instruct"))


def test_a_prompt_too_long_for_the_context_is_refused(local_generator: LocalGenerator) -> None:
    with pytest.raises(AssistantError, match="context window"):
        local_generator.generate(plain_chat("word " * 9000))
