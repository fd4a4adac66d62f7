"""A training run holds its name: a second run of a live name is refused, a run killed by SIGKILL is reported
stopped (not running forever), and its --resume ends where an uninterrupted run does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.finetune.lora import LoraTrainConfig, train_lora
from assistant.finetune.registry import ModelRecord, Registry
from tests.limits import HANG_GUARD_S
from tests.trained import FACTS, write

ASSISTANT = str(Path(sys.executable).with_name("assistant"))
# 4 examples, 2 a step, 20 epochs: 40 steps, a checkpoint every 10.
OPTIONS = dict(epochs=20, batch_size=2, max_length=96, lr=2e-3, warmup_ratio=0, seed=3, val_fraction=0)


def test_a_held_name_is_refused_and_a_record_nobody_holds_is_stopped(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    registry.save(ModelRecord("faq", "local", "SmolLM2", "running"))
    with registry.training("faq"):
        assert registry.get("faq").status == "running"
        with pytest.raises(AssistantError, match="being trained by another process"):
            with registry.training("faq"):
                pass
        with pytest.raises(AssistantError, match="training right now"):
            registry.remove("faq")
    gone = registry.get("faq")  # the lock went with its holder
    assert gone.status == "stopped" and "--resume" in gone.error
    assert [r.status for r in registry.list()] == ["stopped"]
    registry.save(ModelRecord("remote", "openai", "gpt-4o-mini", "running"))  # an OpenAI job runs elsewhere
    assert registry.get("remote").status == "running"


def cli_options() -> list[str]:
    return [arg for key, value in OPTIONS.items() for arg in (f"--{key.replace('_', '-')}", str(value))]


def trained_steps(run_dir: Path) -> int:
    history = run_dir / "history.jsonl"
    lines = history.read_text().splitlines() if history.is_file() else []
    return max((json.loads(line).get("step", 0) for line in lines if line.strip()), default=0)


@pytest.mark.integration
def test_a_killed_run_is_stopped_a_live_one_holds_its_name_and_resume_ends_where_a_whole_run_does(
        model_home: Path, tmp_path: Path) -> None:
    data = write(tmp_path / "facts.jsonl", FACTS)
    env = {**os.environ, "ASSISTANT_HOME": str(model_home), "ASSISTANT_LOCAL_PRECISION": "fp32"}
    command = [ASSISTANT, "finetune", "train", str(data), "--name", "killed", *cli_options()]
    run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    registry = Registry(model_home / "finetuned")
    deadline = time.monotonic() + HANG_GUARD_S
    while trained_steps(registry.run_dir("killed")) < 12 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run.poll() is None, "the run ended before it could be killed"
    run.send_signal(signal.SIGSTOP)  # frozen, lock held: however fast this machine, it cannot finish meanwhile

    second = subprocess.run([*command, "--resume"], capture_output=True, text=True, env=env, timeout=HANG_GUARD_S)
    assert second.returncode != 0 and "being trained by another process" in second.stderr, second.stderr
    assert registry.get("killed").status == "running"
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=HANG_GUARD_S)
    assert registry.get("killed").status == "stopped"  # not `running` with no process behind it

    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, env=env, timeout=HANG_GUARD_S)
    assert resumed.returncode == 0, resumed.stderr
    assert registry.get("killed").status == "succeeded" and registry.get("killed").metrics["steps"] == 40
    config = LoraTrainConfig.create(epochs=20, batch_size=2, max_length=96, learning_rate=2e-3, warmup_ratio=0,
                                    seed=3, val_fraction=0)
    train_lora(Settings(home=model_home, local_precision="fp32"), registry, "unbroken", data, config, progress=False)
    pieced = load_file(registry.adapter_dir("killed") / "adapter_model.safetensors")
    whole = load_file(registry.adapter_dir("unbroken") / "adapter_model.safetensors")
    assert pieced.keys() == whole.keys()
    for key in whole:
        torch.testing.assert_close(pieced[key], whole[key])
