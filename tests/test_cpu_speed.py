"""The fast CPU path must not change what the model says: exact packing, kernel arithmetic, greedy identity."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from assistant.config import Settings
from assistant.models import exact_quant
from assistant.models.local import LocalGenerator
from assistant.prompts import plain_chat

UNSUPPORTED = exact_quant.kernels_supported()
needs_kernels = pytest.mark.skipif(UNSUPPORTED is not None, reason=f"exact CPU kernels: {UNSUPPORTED}")


def q4_1_weights(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    """Weights that are exactly Q4_1 values, as a GGUF dequantisation produces them."""
    generator = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (rows, cols // 32, 32), generator=generator).float()
    q[..., 0], q[..., 1] = 0, 15  # a quantiser spans each block's range: its min is q=0, its max q=15
    scale = (torch.rand(rows, cols // 32, 1, generator=generator) * 0.02 + 1e-3).half().float()
    low = (-torch.rand(rows, cols // 32, 1, generator=generator) * 0.1).half().float()
    return torch.addcmul(low, q, scale).view(rows, cols)


def test_q4_1_packing_is_lossless_and_refuses_other_weights() -> None:
    weight = q4_1_weights(8, 64)
    nibbles, scale, low = exact_quant.pack_q4_1(weight)
    assert nibbles.dtype == torch.uint8 and nibbles.shape == (8, 32)
    q = torch.stack([nibbles & 0x0F, nibbles >> 4], dim=-1)  # two 4-bit values per byte...
    q = torch.cat([q[..., 0].view(8, 2, 16), q[..., 1].view(8, 2, 16)], dim=-1).float()  # ...low half first
    assert torch.equal(q * scale.unsqueeze(-1) + low.unsqueeze(-1), weight.view(8, 2, 32))
    with pytest.raises(exact_quant.NotExact):
        exact_quant.pack_q4_1(torch.randn(8, 64))


def q8_0_weights(rows: int, cols: int) -> torch.Tensor:
    q = torch.randint(-127, 128, (rows, cols // 32, 32)).float()
    q[..., 0] = 127  # the block's largest magnitude maps to ±127
    return (q * (torch.rand(rows, cols // 32, 1) * 0.01 + 1e-4).half().float()).view(rows, cols)


def test_q8_0_packing_is_lossless_and_refuses_other_weights() -> None:
    weight = q8_0_weights(4, 64)
    packed, packed_scale = exact_quant.pack_q8_0(weight)
    assert torch.equal(packed.view(4, 2, 32).float() * packed_scale.unsqueeze(-1), weight.view(4, 2, 32))
    with pytest.raises(exact_quant.NotExact):
        exact_quant.pack_q8_0(torch.randn(4, 64))


@pytest.fixture
def kernels(model_home: Path):
    ops = exact_quant.load_kernels(model_home / "kernels")
    yield ops
    ops.set_threads(torch.get_num_threads())


@needs_kernels
@pytest.mark.parametrize("rows", [1, 3, 5, 16])  # single-token decode, small tiles, and the prefill path
@pytest.mark.parametrize("pool", [1, 3])  # serial, and split over the kernels' own threads (more than there are cores)
@pytest.mark.parametrize("torch_threads", [1, 2])  # prefill shares its sgemm over the pool only on one torch thread
def test_kernels_compute_the_fp32_product(rows: int, pool: int, torch_threads: int, kernels) -> None:
    kernels.set_threads(pool)
    weight = q4_1_weights(200, 128, seed=rows)  # 200 rows: shares of unequal size
    x = torch.randn(rows, 128)
    before = exact_quant.torch_threads_here(torch_threads)
    try:
        with torch.inference_mode():  # as in generation: the helpers' torch ops must run in the caller's mode
            got = kernels.q4_1_mm(x, *exact_quant.pack_q4_1(weight))
            q8 = q8_0_weights(600, 128)
            got_q8 = kernels.q8_0_mm(x, *exact_quant.pack_q8_0(q8))
    finally:
        exact_quant.torch_threads_here(before)
    torch.testing.assert_close(got, x @ weight.T, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_q8, x @ q8.T, rtol=1e-5, atol=1e-5)


@pytest.mark.integration
@needs_kernels
def test_decoding_on_one_torch_thread_leaves_other_threads_alone(local_generator: LocalGenerator) -> None:
    from assistant.models.cpu_speed import DecodeThreads

    default = torch.get_num_threads()
    seen: dict[str, int] = {}

    def generating_thread() -> None:
        threads = DecodeThreads(local_generator.model)
        threads(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 4))  # after the prompt's forward pass
        seen["decoding"] = torch.get_num_threads()
        started_meanwhile = threading.Thread(target=lambda: seen.update(other=torch.get_num_threads()))
        started_meanwhile.start()
        started_meanwhile.join()
        threads.restore()
        seen["after"] = torch.get_num_threads()

    worker = threading.Thread(target=generating_thread)
    worker.start()
    worker.join()
    assert seen == {"decoding": 1, "other": default, "after": default}
    assert torch.get_num_threads() == default


@pytest.mark.integration
@needs_kernels
def test_the_fast_path_answers_exactly_like_fp32(local_generator: LocalGenerator, model_home: Path) -> None:
    assert local_generator.weight_format.startswith("exact")
    reference = LocalGenerator.from_settings(Settings(home=model_home, max_tokens=32, local_precision="fp32"))
    assert reference.weight_format == "fp32"
    for question in ("What is the difference between TCP and UDP?", "Give me a recipe for pancakes.",
                     "Write a SQL query that counts the rows of a table named users."):
        assert local_generator.generate(plain_chat(question), max_tokens=32).text == reference.generate(
            plain_chat(question)).text


@pytest.mark.integration
def test_a_trained_adapter_falls_back_to_fp32(model_home: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_folder = next((model_home / "models").glob("SmolLM2-135M-Instruct*/config.json")).parent
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_folder),
                                LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "trained")  # random, non-zero B: merged weights are no longer Q4_1
    tuned = LocalGenerator.from_settings(Settings(home=model_home, max_tokens=8), adapter=tmp_path / "trained")
    assert tuned.weight_format.startswith("fp32")
    assert tuned.generate(plain_chat("Hello")).usage.completion_tokens > 0


def test_bf16_is_available_on_request(tmp_path: Path) -> None:
    from assistant.models import cpu_speed

    model = torch.nn.Linear(4, 4)
    converted, label = cpu_speed.optimise(model, "bf16", tmp_path, [])
    assert label == "bf16" and converted.weight.dtype == torch.bfloat16
