"""Local LoRA fine-tuning on the real bundled model with a tiny dataset (a few pairs, a few steps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from assistant.config import Settings
from assistant.errors import AssistantError, ConfigError, ModelUnavailable
from assistant.finetune.lora import LoraTrainConfig, request_stop, train_lora
from assistant.finetune.registry import Registry
from tests.trained import FACTS, FAST, write

pytestmark = pytest.mark.integration

@pytest.fixture
def settings(model_home: Path) -> Settings:
    """The session's data home (its model cache is warm); each test registers models under its own names."""
    return Settings(home=model_home, max_tokens=24)


def test_training_lowers_the_loss_and_the_adapter_answers_from_the_data(trained) -> None:
    settings, registry = trained
    record = registry.get("facts")
    assert record.status == "succeeded" and record.provider == "local"
    assert record.metrics["train_loss"] < 0.5 * record.metrics["first_train_loss"]
    adapter = registry.adapter_dir("facts")
    assert {p.name for p in adapter.iterdir()} >= {"adapter_model.safetensors", "adapter_config.json", "card.json"}
    assert not list(adapter.glob("*.bin"))
    card = json.loads((adapter / "card.json").read_text())
    assert card["base_model"] == "SmolLM2-135M-Instruct" and card["data_hash"] == record.data_hash
    assert card["hyperparameters"]["learning_rate"] == 4e-3
    run = registry.run_dir("facts")
    assert (run / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((run / "metrics.json").read_text())["steps"] == record.metrics["steps"] == 24

    from assistant.strategies import build_strategy, generator_for

    tuned = build_strategy("fine-tuned:facts", settings, generator_for("fine-tuned:facts", settings))
    base = build_strategy("plain", settings, generator_for("plain", settings))
    question = "What is the Nimbus vault code?"
    assert "ZEBRA-4471" in tuned.answer(question).text
    assert "ZEBRA-4471" not in base.answer(question).text
    assert tuned.answer(question).strategy == "fine-tuned:facts"


def test_an_interrupted_run_resumes_from_its_checkpoint_and_ends_where_an_uninterrupted_one_does(
        settings: Settings, tmp_path: Path) -> None:
    data = write(tmp_path / "facts.jsonl", FACTS)
    config = LoraTrainConfig.create(**FAST | dict(epochs=3, learning_rate=2e-3, dropout=0.1, val_fraction=0,
                                    checkpoint_every=100))
    registry = Registry.from_settings(settings)
    train_lora(settings, registry, "whole", data, config, progress=False)

    def interrupt_at_step_4(step: int, loss: float) -> None:
        if step == 4:
            raise KeyboardInterrupt  # what Ctrl-C does mid-run

    stopped = train_lora(settings, registry, "broken", data, config, progress=False, on_step=interrupt_at_step_4)
    assert stopped.status == "stopped" and stopped.metrics["steps"] == 4 and "--resume" in stopped.error
    with pytest.raises(ConfigError, match="already exists"):
        train_lora(settings, registry, "broken", data, config, progress=False)

    seen: list[int] = []
    resumed = train_lora(settings, registry, "broken", data, config, resume=True, progress=False,
                         on_step=lambda step, loss: seen.append(step))
    assert seen == [5, 6]  # continued from the saved step, not from zero
    assert resumed.status == "succeeded" and resumed.metrics["steps"] == 6
    whole = load_file(registry.adapter_dir("whole") / "adapter_model.safetensors")
    pieced = load_file(registry.adapter_dir("broken") / "adapter_model.safetensors")
    assert whole.keys() == pieced.keys()
    for key in whole:
        torch.testing.assert_close(pieced[key], whole[key])


def test_a_stop_request_checkpoints_and_resume_refuses_other_data(settings: Settings, tmp_path: Path) -> None:
    data = write(tmp_path / "facts.jsonl", FACTS)
    registry = Registry.from_settings(settings)
    config = LoraTrainConfig.create(**FAST, epochs=2, val_fraction=0)
    stopped = train_lora(settings, registry, "asked", data, config, progress=False,
                         on_step=lambda step, loss: request_stop(registry, "asked"))
    assert stopped.status == "stopped" and stopped.metrics["steps"] == 1
    other = write(tmp_path / "other.jsonl", FACTS[:2])
    with pytest.raises(AssistantError, match="different data"):
        train_lora(settings, registry, "asked", other, config, resume=True, progress=False)


def test_a_run_interrupted_before_its_first_checkpoint_resumes_from_the_start(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.finetune import lora

    data = write(tmp_path / "facts.jsonl", FACTS)
    registry = Registry.from_settings(settings)
    config = LoraTrainConfig.create(**FAST, epochs=1, val_fraction=0)

    class InterruptedWhileLoading:
        def __init__(self, *args: object) -> None:
            raise KeyboardInterrupt  # Ctrl-C while the base model loads: no step, no checkpoint

    with monkeypatch.context() as patch:
        patch.setattr(lora, "_Run", InterruptedWhileLoading)
        with pytest.raises(KeyboardInterrupt):
            train_lora(settings, registry, "early-ctrl-c", data, config, progress=False)
    # The record still says running, but no process holds the run: it reads as stopped, resumable.
    assert registry.get("early-ctrl-c").status == "stopped"
    seen: list[int] = []
    resumed = train_lora(settings, registry, "early-ctrl-c", data, LoraTrainConfig.create(epochs=9), resume=True,
                         progress=False, on_step=lambda step, loss: seen.append(step))
    assert seen == [1, 2] and resumed.status == "succeeded"  # from zero, with the configuration it started with
    assert resumed.hyperparameters["epochs"] == 1


def test_early_stopping_keeps_the_best_adapter_when_validation_loss_rises(settings: Settings, tmp_path: Path) -> None:
    data = write(tmp_path / "facts.jsonl", FACTS)
    # The same questions with contradicting answers: the better the model learns the training answers, the worse
    # it does on these, so validation loss rises and patience runs out.
    contradicting = write(tmp_path / "val.jsonl", [(p, "I have no information about that, sorry.") for p, _ in FACTS])
    config = LoraTrainConfig.create(**FAST, epochs=20, learning_rate=5e-3, eval_every=1, patience=2)
    registry = Registry.from_settings(settings)
    record = train_lora(settings, registry, "early", data, config, validation=contradicting, progress=False)
    metrics = record.metrics
    assert metrics["stopped_early"] is True and metrics["steps"] < metrics["total_steps"]
    history = [json.loads(line) for line in (registry.run_dir("early") / "history.jsonl").read_text().splitlines()]
    val = [(h["step"], h["val_loss"]) for h in history if "val_loss" in h]
    best_step, best = min(val, key=lambda item: item[1])
    assert metrics["best_step"] == best_step and metrics["best_val_loss"] == pytest.approx(best, abs=1e-4)
    assert val[-1][1] > best and metrics["steps"] == best_step + 2  # two evaluations without improvement


def test_bad_options_and_unknown_models_fail_clearly(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="learning_rate"):
        LoraTrainConfig.create(learning_rate=-1)
    data = write(tmp_path / "facts.jsonl", FACTS)
    registry = Registry.from_settings(settings)
    with pytest.raises(ConfigError, match="LoRA cannot be applied"):
        train_lora(settings, registry, "wrong-modules", data, LoraTrainConfig.create(target_modules=["nope_proj"]),
                   progress=False)
    from assistant.strategies import generator_for

    with pytest.raises(ModelUnavailable, match="assistant finetune train"):
        generator_for("rag+fine-tuned:never-trained", settings)
