"""Tuning the knowledge base's embedder on the user's examples: `assistant finetune train DATA --target embedder`.

The sentence-transformers model (the bundled all-MiniLM-L6-v2 unless ASSISTANT_EMBEDDER says otherwise) learns to
put each question next to its answer, with sentence-transformers' MultipleNegativesRankingLoss: the other answers
of the batch are the negatives ("in-batch negatives"), so no negatives need labelling. A plain loop like the LoRA
trainer's (sentence-transformers' own trainer needs the `datasets` package): batches without a repeated answer,
held-out retrieval (hit@k, MRR@10: each held-out question searching every answer) after each epoch, early stopping
that keeps the best model, a resumable checkpoint per epoch, safetensors only, and a card with the held-out scores
before and after. The result lives in `<home>/finetuned/NAME/embedder/`; ASSISTANT_EMBEDDER=NAME uses it, and
`assistant kb reindex --embedder NAME` re-embeds a knowledge base with it.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tqdm import tqdm

from assistant import hf
from assistant.config import Settings
from assistant.errors import AssistantError, ConfigError
from assistant.finetune import checkpoint
from assistant.finetune.datasets import dataset_hash, load_examples
from assistant.finetune.registry import ModelRecord, Registry, holds_training_lock
from assistant.finetune.retrieval_data import Pairs, batches, load_pairs, retrieval_scores

EMBEDDER_DIR = "embedder"


class EmbedderTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(4, ge=1, le=100)
    batch_size: int = Field(32, ge=2, le=1024, description="in-batch negatives: larger batches, harder task")
    learning_rate: float = Field(3e-5, gt=0, le=1)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    val_fraction: float = Field(0.2, ge=0, lt=1)
    patience: int = Field(2, ge=0)
    seed: int = 0

    @classmethod
    def create(cls, **values: object) -> EmbedderTrainConfig:
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"Invalid training option — {problems}.") from None


@holds_training_lock
def train_embedder(settings: Settings, registry: Registry, name: str, data: Path, config: EmbedderTrainConfig,
                   validation: Path | None = None, resume: bool = False, progress: bool = True) -> ModelRecord:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import get_linear_schedule_with_warmup

    from assistant.device import resolve_device
    from assistant.embeddings import embedder_source

    hf.quiet()
    pairs = load_pairs(data, validation, config.val_fraction, config.seed)
    base_folder, base_name = embedder_source(settings)
    state = _start(registry, name, config, data, base_name, resume)
    device = resolve_device(settings.device).name
    torch.manual_seed(config.seed)
    model = SentenceTransformer(str(base_folder), device=device, local_files_only=True)
    loss_fn = MultipleNegativesRankingLoss(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    steps_per_epoch = math.ceil(len(pairs.train) / config.batch_size)
    total = steps_per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, round(config.warmup_ratio * total), total)
    run_dir = registry.run_dir(name)
    run_dir.mkdir(parents=True, exist_ok=True)
    if state is None:
        before = retrieval_scores(lambda texts: _encode(model, texts), pairs)
        state = {"epoch": 0, "history": [], "before": before, "best": before, "best_epoch": 0, "bad_evals": 0,
                 "seconds": 0.0, "config": config.model_dump()}
        _save_model(model, registry.folder(name) / EMBEDDER_DIR)  # epoch 0: until training beats the base
    else:
        model.load_state_dict(checkpoint.restore(state, optimizer, scheduler))
    started = time.perf_counter() - state["seconds"]
    bar = tqdm(total=total, initial=state["epoch"] * steps_per_epoch, desc=f"tuning embedder {name}", unit="step",
               disable=not progress)
    try:
        while state["epoch"] < config.epochs:
            model.train()
            for batch in batches(pairs.train, config.batch_size, config.seed, state["epoch"]):
                loss = _step(model, loss_fn, optimizer, scheduler, pairs, batch, device)
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                bar.update()
            state["epoch"] += 1
            if _evaluate(model, pairs, state, registry.folder(name) / EMBEDDER_DIR, config):
                break
            state["seconds"] = time.perf_counter() - started
            checkpoint.save(run_dir / "checkpoint", model.state_dict(), optimizer, scheduler, state)
            if (run_dir / "STOP").exists():
                (run_dir / "STOP").unlink(missing_ok=True)
                return registry.update(name, status="stopped", error=f"stopped after epoch {state['epoch']}; "
                                       f"continue with --resume")
    except KeyboardInterrupt:
        return registry.update(name, status="stopped", error="interrupted; continue with --resume")
    except Exception as exc:
        registry.update(name, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        bar.close()
    state["seconds"] = time.perf_counter() - started
    return _finish(registry, name, state, pairs)


def _step(model, loss_fn, optimizer, scheduler, pairs: Pairs, batch: list[int], device: str) -> float:
    questions = model.preprocess([pairs.train[i][0] for i in batch])
    answers = model.preprocess([pairs.train[i][1] for i in batch])
    features = [{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in part.items()}
                for part in (questions, answers)]
    loss = loss_fn(features, labels=None)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def _encode(model, texts: list[str]):
    return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False)


def _evaluate(model, pairs: Pairs, state: dict, target: Path, config: EmbedderTrainConfig) -> bool:
    """Held-out scores after an epoch; keeps the best model. True when patience ran out."""
    model.eval()
    with torch.no_grad():
        scores = retrieval_scores(lambda texts: _encode(model, texts), pairs)
    state["history"].append({"epoch": state["epoch"], **scores})
    if not scores:  # nothing held out: the last epoch is the result
        _save_model(model, target)
        return False
    if scores["mrr@10"] > state["best"].get("mrr@10", -1) + 1e-4:
        state.update(best=scores, best_epoch=state["epoch"], bad_evals=0)
        _save_model(model, target)
        return False
    state["bad_evals"] += 1
    return config.patience > 0 and state["bad_evals"] >= config.patience


def _save_model(model, target: Path) -> None:
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging), safe_serialization=True)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def _start(registry: Registry, name: str, config: EmbedderTrainConfig, data: Path, base: str,
           resume: bool) -> dict | None:
    examples, _ = load_examples(data)
    if resume:
        record = registry.get(name)
        if record.target != "embedder" or record.status not in {"running", "stopped", "failed"}:
            raise AssistantError(f"{name!r} has no interrupted embedder run to resume (status {record.status}).")
        registry.update(name, status="running", error=None)
        return checkpoint.load_state(registry.run_dir(name) / "checkpoint")
    if registry.exists(name):
        raise ConfigError(f"A model named {name!r} already exists; pick another --name or remove it.")
    registry.save(ModelRecord(name, "local", base, "running", hyperparameters=config.model_dump(),
                              data_hash=dataset_hash(examples), target="embedder"))
    return None


def _finish(registry: Registry, name: str, state: dict, pairs: Pairs) -> ModelRecord:
    metrics = {"before": state["before"], "after": state["best"], "best_epoch": state["best_epoch"],
               "epochs": state["epoch"], "seconds": round(state["seconds"], 1),
               "train_pairs": len(pairs.train), "held_out_pairs": len(pairs.held_out)}
    (registry.run_dir(name) / "metrics.json").write_text(json.dumps(metrics | {"history": state["history"]},
                                                                     indent=2))
    record = registry.update(name, status="succeeded", metrics=metrics, error=None)
    card = asdict(record) | {"trained_with": "ragtune embedder tuning (sentence-transformers, "
                                             "MultipleNegativesRankingLoss)"}
    card.pop("training_hashes", None)
    (registry.folder(name) / EMBEDDER_DIR / "card.json").write_text(json.dumps(card, indent=2))
    return record
