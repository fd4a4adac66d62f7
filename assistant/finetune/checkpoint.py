"""Resumable training state: the trained weights (safetensors: a LoRA adapter's, or a whole embedder's), optimizer
and scheduler state, RNG state and the run's progress. Written to a staging folder and swapped in, so a run killed
mid-save keeps the previous checkpoint.
Optimizer state is loaded with `weights_only=True`: tensors and numbers only, never arbitrary pickled objects."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from assistant.errors import AssistantError

WEIGHTS = "weights.safetensors"


def save(folder: Path, weights: dict[str, torch.Tensor], optimizer, scheduler, state: dict) -> None:
    staging = folder.with_name(folder.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        save_file({k: v.detach().contiguous() for k, v in weights.items()}, staging / WEIGHTS)
        with (staging / "trainer.pt").open("wb") as out:  # a file object: a failed write's OSError stays its cause
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "rng": torch.get_rng_state()}, out)
        (staging / "state.json").write_text(json.dumps(state, indent=1))
    except BaseException:  # a full disk: the space back, the last whole checkpoint still the one
        shutil.rmtree(staging, ignore_errors=True)
        raise
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


def restore(state: dict, optimizer, scheduler) -> dict[str, torch.Tensor]:
    """Optimizer, scheduler and RNG back where the checkpoint left them; the weights for the caller to load."""
    folder = Path(state["_folder"])
    try:
        saved = torch.load(folder / "trainer.pt", weights_only=True)
    except pickle.UnpicklingError:  # torch's message suggests weights_only=False: the one thing not to do
        raise AssistantError(f"The checkpoint {folder / 'trainer.pt'} holds objects other than tensors and numbers "
                             "(a pickle that could run code); it was not loaded. Train without --resume to start "
                             "over.") from None
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    legacy = folder / "adapter_model.safetensors"  # checkpoints written before the weights file was renamed
    return load_file(legacy if legacy.is_file() and not (folder / WEIGHTS).is_file() else folder / WEIGHTS)
