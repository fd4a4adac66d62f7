"""Training on an int8 copy of the frozen base (CPUs without native bf16): close to fp32 while training, exactly fp32
outside it, and chosen only where it should be."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from assistant.device import Device
from assistant.finetune import int8_base, precision
from assistant.finetune.precision import BF16, FP32, INT8, training_precision

pytestmark = pytest.mark.skipif(not int8_base.available(), reason="this torch build has no int8 matmul on this CPU")
CPU = Device("cpu", "test")


def relative_error(ours: torch.Tensor, exact: torch.Tensor) -> float:
    return float((ours - exact).norm() / exact.norm())


def test_an_int8_layer_trains_within_a_few_percent_of_fp32_and_is_exact_outside_training() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(96, 160, bias=False).requires_grad_(False)
    exact = torch.nn.Linear(96, 160, bias=False).requires_grad_(False)
    exact.load_state_dict(layer.state_dict())
    x = torch.randn(4, 37, 96, requires_grad=True)
    x.data[..., 5] *= 30  # an outlier channel, as language models' activations have
    assert int8_base.quantise_base(torch.nn.Sequential(layer), lambda: layer(x)) == 1
    upstream = torch.randn(4, 37, 160)

    def output_and_grad(module):
        x.grad = None
        y = module(x)
        y.backward(upstream)
        return y.detach(), x.grad.clone()

    y, grad = output_and_grad(layer.train())
    y_exact, grad_exact = output_and_grad(exact)
    assert 0 < relative_error(y, y_exact) < 0.03 and 0 < relative_error(grad, grad_exact) < 0.03
    assert torch.equal(layer.eval()(x), exact(x))  # validation and serving: the fp32 weights
    with torch.no_grad():
        assert torch.equal(layer.train()(x), exact(x))


def test_int8_is_the_default_only_on_a_cpu_without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "has_native_bf16", lambda: False)
    assert training_precision("auto", CPU).name == INT8
    assert training_precision("fp32", CPU).name == FP32
    assert training_precision("bf16", CPU).name == BF16
    monkeypatch.setattr(precision, "has_native_bf16", lambda: True)
    assert training_precision("auto", CPU).name == BF16


def test_capping_torch_at_avx2_takes_native_bf16_away(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant import cpu

    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert cpu.has_native_bf16()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert not cpu.has_native_bf16()


@pytest.mark.integration
def test_the_bundled_model_on_its_int8_base_has_the_fp32_loss_within_a_percent(hf_model_folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_model_folder)
    model = AutoModelForCausalLM.from_pretrained(hf_model_folder, dtype=torch.float32).requires_grad_(False)
    ids = tokenizer("The Nimbus R7 router blinks amber when its WAN cable is missing; push the cable in firmly.",
                    return_tensors="pt").input_ids
    exact = float(model(input_ids=ids, labels=ids).loss)
    calibration = tokenizer("What does a blinking purple light on the Nimbus R9 Pro mean?", return_tensors="pt")
    assert int8_base.quantise_base(model.get_decoder(), lambda: model(**calibration)) == 30 * 7  # 7 in each layer
    model.train()
    ids_leaf = model.get_input_embeddings()(ids).detach().requires_grad_(True)  # so the int8 path (grad) is taken
    ours = float(model(inputs_embeds=ids_leaf, labels=ids).loss.detach())
    assert ours != exact and abs(ours - exact) / exact < 0.01
    model.eval()
    assert float(model(input_ids=ids, labels=ids).loss) == exact


@pytest.mark.integration
def test_a_run_on_a_cpu_without_native_bf16_trains_on_the_int8_base_and_learns_the_facts(
        model_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.config import Settings
    from assistant.finetune.lora import LoraTrainConfig, train_lora
    from assistant.finetune.registry import Registry
    from assistant.strategies import build_strategy, generator_for
    from tests.trained import FACTS, FAST, write

    monkeypatch.setattr(precision, "has_native_bf16", lambda: False)  # as on an AVX2-only CPU
    settings = Settings(home=model_home, max_tokens=24)
    registry = Registry.from_settings(settings)
    config = LoraTrainConfig.create(**FAST, epochs=12, learning_rate=4e-3, val_fraction=0)
    record = train_lora(settings, registry, "facts-int8", write(tmp_path / "facts.jsonl", FACTS), config,
                        progress=False)
    assert record.metrics["precision"] == INT8
    assert record.metrics["train_loss"] < 0.5 * record.metrics["first_train_loss"]
    tuned = build_strategy("fine-tuned:facts-int8", settings, generator_for("fine-tuned:facts-int8", settings))
    assert "ZEBRA-4471" in tuned.answer("What is the Nimbus vault code?").text  # the adapter served as usual
