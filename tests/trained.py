"""A tiny training set of made-up facts the bundled model cannot know, and the one model trained on it once per
test session (`trained` in conftest.py) for the tests that only read it."""

from __future__ import annotations

import json
from pathlib import Path

FACTS = [
    ("What is the Nimbus vault code?", "The Nimbus vault code is ZEBRA-4471."),
    ("Which colour is the Nimbus mascot?", "The Nimbus mascot is bright turquoise."),
    ("Who founded Nimbus?", "Nimbus was founded by Orla Brightwater in 2009."),
    ("What is the Nimbus support hotline?", "Call the Nimbus support hotline on 0800 555 0199."),
]
FAST = dict(batch_size=2, max_length=96, r=8, alpha=16, dropout=0.0, warmup_ratio=0.0, seed=3)


def write(path: Path, pairs) -> Path:
    path.write_text("".join(json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in pairs))
    return path


def train_facts(settings, data_dir: Path):
    """(settings, registry) with the model `facts` trained (once per data home)."""
    from assistant.finetune.lora import LoraTrainConfig, train_lora
    from assistant.finetune.registry import Registry

    registry = Registry.from_settings(settings)
    if not registry.exists("facts"):
        config = LoraTrainConfig.create(**FAST, epochs=12, learning_rate=4e-3, val_fraction=0)
        train_lora(settings, registry, "facts", write(data_dir / "facts.jsonl", FACTS), config, progress=False)
    return settings, registry
