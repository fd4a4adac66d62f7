"""Resumable training state: the adapter weights (safetensors), optimizer and scheduler state, RNG state and the
run's progress. Written to a staging folder and swapped in, so a run killed mid-save keeps the previous checkpoint.
Optimizer state is loaded with `weights_only=True`: tensors and numbers only, never arbitrary pickled objects."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save_file


def save(folder: Path, model, optimizer, scheduler, state: dict) -> None:
    staging = folder.with_name(folder.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    weights = {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model).items()}
    save_file(weights, staging / "adapter_model.safetensors")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state()}, staging / "trainer.pt")
    (staging / "state.json").write_text(json.dumps(state, indent=1))
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(staging, folder)
    shutil.rmtree(old, ignore_errors=True)


def load_state(folder: Path) -> dict | None:
    """The progress of the last checkpoint; None when there is none (also after a crash between the two renames,
    where the previous checkpoint waits in `.old`)."""
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        if (candidate / "state.json").is_file():
            return json.loads((candidate / "state.json").read_text()) | {"_folder": str(candidate)}
    return None


def restore(state: dict, model, optimizer, scheduler) -> None:
    folder = Path(state["_folder"])
    set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
    saved = torch.load(folder / "trainer.pt", weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
