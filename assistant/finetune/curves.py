"""The loss curve of a training run (train and validation against optimizer steps), as a PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402


def plot_loss(history: list[dict], out: Path, title: str) -> Path:
    train = [(h["step"], h["train_loss"]) for h in history if "train_loss" in h]
    val = [(h["step"], h["val_loss"]) for h in history if "val_loss" in h]
    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        axes.plot(*zip(*train), label="train", linewidth=1.2)
    if val:
        axes.plot(*zip(*val), label="validation", marker="o", linewidth=1.5)
    axes.set(xlabel="optimizer step", ylabel="loss (answer tokens)", title=title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)
    return out
