"""Training a reranker from the user's examples: `assistant finetune train DATA --target reranker --name NAME`.

No cross-encoder ships on PyPI here, so one is made: a sentence-transformers CrossEncoder initialised from the
embedder's own MiniLM weights (a fresh one-logit head), trained with binary cross-entropy on each question with its
answer (1) and with the answers the embedder ranks highest among the wrong ones (0: mined hard negatives, the
mistakes a reranker exists to fix). After each epoch it reranks the embedder's top candidates for the held-out
questions; early stopping keeps the best epoch, and the card records held-out MRR/hit@k of the embedder alone and
with the reranker — whether it helps on this user's data is a number, not a hope.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tqdm import tqdm

from assistant import hf
from assistant.config import Settings
from assistant.errors import ConfigError
from assistant.finetune.datasets import dataset_hash, load_examples
from assistant.finetune.registry import ModelRecord, Registry, holds_training_lock
from assistant.finetune.retrieval_data import Pairs, load_pairs
from assistant.rerank import RERANKER_DIR

CANDIDATES = 20  # what the reranker re-scores: the embedder's top 20, as in retrieval (rerank_top_n)


class RerankerTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(3, ge=1, le=100)
    batch_size: int = Field(16, ge=1, le=512)
    learning_rate: float = Field(3e-5, gt=0, le=1)
    negatives: int = Field(3, ge=1, le=50, description="mined wrong answers per question")
    val_fraction: float = Field(0.2, ge=0, lt=1)
    patience: int = Field(2, ge=0)
    seed: int = 0

    @classmethod
    def create(cls, **values: object) -> RerankerTrainConfig:
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"Invalid training option — {problems}.") from None


@holds_training_lock
def train_reranker(settings: Settings, registry: Registry, name: str, data: Path, config: RerankerTrainConfig,
                   validation: Path | None = None, progress: bool = True) -> ModelRecord:
    from sentence_transformers import CrossEncoder

    from assistant.device import resolve_device
    from assistant.embeddings import SentenceTransformerEmbedder, embedder_source

    hf.quiet()
    pairs = load_pairs(data, validation, config.val_fraction, config.seed)
    base_folder, base_name = embedder_source(settings)
    if registry.exists(name):
        raise ConfigError(f"A model named {name!r} already exists; pick another --name or remove it.")
    examples, _ = load_examples(data)
    registry.save(ModelRecord(name, "local", base_name, "running", hyperparameters=config.model_dump(),
                              data_hash=dataset_hash(examples), target="reranker"))
    try:
        embedder = SentenceTransformerEmbedder.from_settings(settings)
        corpus = pairs.corpus
        vectors = embedder.embed(corpus)
        torch.manual_seed(config.seed)
        device = resolve_device(settings.device).name
        model = CrossEncoder(str(base_folder), num_labels=1, device=device, local_files_only=True)
        training = _training_pairs(embedder, pairs, corpus, vectors, config)
        held_out = _candidates(embedder, pairs, corpus, vectors)
        before = _scores(held_out, None, corpus)
        state = {"before": before, "best": None, "best_epoch": 0, "history": []}
        target = registry.folder(name) / RERANKER_DIR
        optimizer = torch.optim.AdamW(model.model.parameters(), lr=config.learning_rate)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        steps = math.ceil(len(training) / config.batch_size)
        started, bad = time.perf_counter(), 0
        for epoch in range(1, config.epochs + 1):
            random.Random(config.seed + epoch).shuffle(training)
            model.model.train()
            for start in tqdm(range(0, len(training), config.batch_size), total=steps, disable=not progress,
                              desc=f"reranker {name} epoch {epoch}"):
                batch = training[start:start + config.batch_size]
                features = model.tokenizer([q for q, _, _ in batch], [t for _, t, _ in batch], padding=True,
                                           truncation=True, return_tensors="pt").to(device)
                logits = model.model(**features).logits.view(-1)
                loss = loss_fn(logits, torch.tensor([y for _, _, y in batch], dtype=torch.float32, device=device))
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            model.model.eval()
            scores = _scores(held_out, model, corpus) if held_out else {}
            state["history"].append({"epoch": epoch, **scores})
            if state["best"] is None or scores.get("mrr@10", 0) > state["best"].get("mrr@10", -1) + 1e-4:
                state.update(best=scores, best_epoch=epoch)
                _save(model, target)
                bad = 0
            else:
                bad += 1
                if config.patience and bad >= config.patience:
                    break
        metrics = {"embedder_alone": before, "with_reranker": state["best"], "best_epoch": state["best_epoch"],
                   "seconds": round(time.perf_counter() - started, 1), "train_pairs": len(pairs.train),
                   "held_out_pairs": len(pairs.held_out), "candidates": CANDIDATES}
    except Exception as exc:
        registry.update(name, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    registry.run_dir(name).mkdir(parents=True, exist_ok=True)
    (registry.run_dir(name) / "metrics.json").write_text(json.dumps(metrics | {"history": state["history"]},
                                                                     indent=2))
    record = registry.update(name, status="succeeded", metrics=metrics, error=None)
    card = asdict(record) | {"trained_with": "ragtune reranker training (sentence-transformers CrossEncoder, "
                                             "mined hard negatives)"}
    card.pop("training_hashes", None)
    (target / "card.json").write_text(json.dumps(card, indent=2))
    return record


def _training_pairs(embedder, pairs: Pairs, corpus, vectors, config) -> list[tuple[str, str, float]]:
    """(question, answer, 1.0) and, per question, its `negatives` highest-ranked wrong answers with 0.0."""
    questions = embedder.embed([q for q, _ in pairs.train])
    order = np.argsort(-(questions @ vectors.T), axis=1)
    rows = []
    for (question, answer), ranking in zip(pairs.train, order):
        rows.append((question, answer, 1.0))
        wrong = [corpus[i] for i in ranking if corpus[i] != answer][:config.negatives]
        rows += [(question, text, 0.0) for text in wrong]
    return rows


def _candidates(embedder, pairs: Pairs, corpus, vectors) -> list[tuple[str, str, list[int]]]:
    """(question, its answer, the embedder's top candidate indexes) for each held-out question."""
    if not pairs.held_out:
        return []
    questions = embedder.embed([q for q, _ in pairs.held_out])
    order = np.argsort(-(questions @ vectors.T), axis=1)[:, :CANDIDATES]
    return [(q, a, list(map(int, ranking))) for (q, a), ranking in zip(pairs.held_out, order)]


def _scores(held_out, model, corpus) -> dict:
    """hit@1/5 and MRR@10 of the answer among the candidates: in the embedder's order, or reranked by `model`.
    A question whose answer is not among the candidates counts as a miss either way."""
    ranks = []
    for question, answer, candidates in held_out:
        order = candidates
        if model is not None:
            scores = model.predict([(question, corpus[i]) for i in candidates], show_progress_bar=False)
            order = [candidates[j] for j in np.argsort(-np.asarray(scores))]
        texts = [corpus[i] for i in order]
        ranks.append(texts.index(answer) + 1 if answer in texts else None)
    if not ranks:
        return {}
    hit = {f"hit@{k}": round(sum(r is not None and r <= k for r in ranks) / len(ranks), 4) for k in (1, 5)}
    return hit | {"mrr@10": round(sum(1 / r for r in ranks if r and r <= 10) / len(ranks), 4)}


def _save(model, target: Path) -> None:
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging), safe_serialization=True)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
