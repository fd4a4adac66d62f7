"""Data-parallel LoRA on the CPU: two gloo processes, each training half of every step's examples, give the adapter
one process gives on the same global batch; a run stopped with two processes resumes with one."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.finetune.lora import LoraTrainConfig, train_lora
from assistant.finetune.registry import Registry
from tests.fakes import stop_after
from tests.limits import HANG_GUARD_S
from tests.trained import FACTS, FAST, write

pytestmark = pytest.mark.integration
# 8 examples, 4 a step (2 per process), 2 epochs: 4 steps, validated every 2 (on both processes' halves).
CONFIG = LoraTrainConfig.create(**(FAST | dict(batch_size=4)), epochs=2, learning_rate=4e-3, eval_every=2)


@pytest.fixture(scope="module")
def setup(model_home: Path, tmp_path_factory: pytest.TempPathFactory):
    """(settings, registry, data, validation, the single-process run the parallel ones must match)."""
    folder = tmp_path_factory.mktemp("parallel")
    data = write(folder / "train.jsonl", FACTS + [(q + " Answer briefly.", a) for q, a in FACTS])
    validation = write(folder / "val.jsonl", [(q.replace("?", " exactly?"), a) for q, a in FACTS[:2]])
    # fp32: bf16 autocast would round the two processes' smaller batches differently.
    settings = Settings(home=model_home, local_precision="fp32")
    registry = Registry.from_settings(settings)
    alone = train_lora(settings, registry, "alone", data, CONFIG, validation, progress=False)
    return settings, registry, data, validation, alone


def adapter(registry: Registry, name: str) -> dict[str, torch.Tensor]:
    return load_file(registry.adapter_dir(name) / "adapter_model.safetensors")


def assert_same_adapter(registry: Registry, name: str, reference: str = "alone") -> None:
    """Equal within float rounding: smaller batches sum in another order, and Adam's first steps (g / sqrt(v))
    magnify that to ~3e-5 of the weights' norm (measured); a step that missed the other process's gradients is
    off by far more than 1e-3. lora_B starts at zero, so its norm is all training did."""
    got, expected = adapter(registry, name), adapter(registry, reference)
    assert got.keys() == expected.keys()
    for part in ("lora_A", "lora_B"):
        keys = [key for key in expected if part in key]
        error = torch.sqrt(sum(((got[k] - expected[k]) ** 2).sum() for k in keys))
        norm = torch.sqrt(sum((expected[k] ** 2).sum() for k in keys))
        assert norm > 0 and error / norm < 1e-3, (part, float(error / norm))


def losses(record) -> list[float]:
    return [record.metrics[k] for k in ("first_train_loss", "train_loss", "initial_val_loss", "best_val_loss")]


def test_two_processes_train_the_adapter_one_process_trains(setup) -> None:
    settings, registry, data, validation, alone = setup
    pair = train_lora(settings, registry, "pair", data, CONFIG, validation, progress=False, processes=2)
    assert pair.status == "succeeded" and pair.metrics["steps"] == alone.metrics["steps"] == 4
    assert losses(pair) == pytest.approx(losses(alone), rel=1e-4)
    assert_same_adapter(registry, "pair")
    # Written once, by rank 0: the same entries as the single run's, not one set per process.
    entries = [sorted(json.loads(line)) for line in (registry.run_dir("pair") / "history.jsonl").open()]
    assert entries == [sorted(json.loads(line)) for line in (registry.run_dir("alone") / "history.jsonl").open()]


def test_a_run_stopped_with_two_processes_resumes_with_one(setup) -> None:
    settings, registry, data, validation, _ = setup
    stop = functools.partial(stop_after, registry.run_dir("split"), 2)
    stopped = train_lora(settings, registry, "split", data, CONFIG, validation, progress=False, processes=2,
                         on_step=stop)
    assert stopped.status == "stopped" and stopped.metrics["steps"] == 2 and "--resume" in stopped.error
    resumed = train_lora(settings, registry, "split", data, CONFIG, validation, progress=False, resume=True)
    assert resumed.status == "succeeded" and resumed.metrics["steps"] == 4
    assert_same_adapter(registry, "split")


def test_more_processes_than_examples_a_step_is_refused_before_anything_starts(setup) -> None:
    settings, registry, data, validation, _ = setup
    with pytest.raises(AssistantError, match="idle"):
        train_lora(settings, registry, "crowd", data, CONFIG, validation, progress=False, processes=5)
    assert not registry.exists("crowd")


def test_torchrun_launches_the_same_training_from_the_cli(setup) -> None:
    """How several machines train (DEPLOY.md): torchrun starts the command once per process; each joins the group."""
    settings, registry, data, validation, _ = setup
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    options = dict(validation=validation, batch_size=4, epochs=2, lr=CONFIG.learning_rate, eval_every=2,
                   max_length=CONFIG.max_length, lora_r=CONFIG.r, lora_alpha=CONFIG.alpha, lora_dropout=0,
                   warmup_ratio=0, seed=CONFIG.seed)
    command = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "assistant", "finetune", "train", str(data),
               "--name", "launched", *[arg for key, value in options.items()
                                        for arg in (f"--{key.replace('_', '-')}", str(value))]]
    env = {**os.environ, "ASSISTANT_HOME": str(settings.home), "ASSISTANT_LOCAL_PRECISION": "fp32"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD_S, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("[local, succeeded]") == 1, done.stdout  # reported once, by rank 0
    assert_same_adapter(registry, "launched")
