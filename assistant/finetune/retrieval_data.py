"""What tuning the retriever learns from: the user's question/answer examples as (question, answer) pairs, a
held-out split, and the held-out retrieval score — each held-out question must find its own answer among all the
answers — that decides early stopping and goes on the model's card before and after."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import AssistantError
from assistant.examples import Example
from assistant.finetune.datasets import duplicates, load_examples, split


@dataclass(frozen=True)
class Pairs:
    train: list[tuple[str, str]]  # (question, answer)
    held_out: list[tuple[str, str]]

    @property
    def corpus(self) -> list[str]:
        """Every distinct answer: what a held-out question searches."""
        return list(dict.fromkeys(a for _, a in self.train + self.held_out))


def load_pairs(data: Path, validation: Path | None, val_fraction: float, seed: int) -> Pairs:
    examples, _ = load_examples(data)
    dropped = {line for line, _ in duplicates(examples)[0]}
    examples = [e for e in examples if e.line not in dropped]
    if validation is not None:
        train, held = examples, load_examples(validation)[0]
    else:
        train, held = split(examples, val_fraction, seed)
    if len(train) < 2:
        raise AssistantError(f"Tuning a retriever needs at least 2 training examples; {data} has {len(train)}.")
    return Pairs(_pairs(train), _pairs(held))


def _pairs(examples: list[Example]) -> list[tuple[str, str]]:
    return [(e.prompt, e.completion) for e in examples]


def batches(pairs: list[tuple[str, str]], size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled batches in which no answer appears twice: with in-batch negatives, a second copy of the right
    answer would be scored as a wrong one. Deterministic in (seed, epoch), so a resumed run sees the same ones."""
    order = list(range(len(pairs)))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    result: list[list[int]] = []
    pending = order
    while pending:
        batch, seen, later = [], set(), []
        for index in pending:
            answer = pairs[index][1]
            if len(batch) < size and answer not in seen:
                batch.append(index)
                seen.add(answer)
            else:
                later.append(index)
        result.append(batch)
        pending = later
    return result


def retrieval_scores(embed, pairs: Pairs, ks=(1, 5, 10)) -> dict:
    """hit@k and MRR@10 of the held-out questions searching every answer, with `embed` (texts → unit vectors)."""
    import numpy as np

    if not pairs.held_out:
        return {}
    corpus = pairs.corpus
    index = {text: i for i, text in enumerate(corpus)}
    documents = embed(corpus)
    queries = embed([q for q, _ in pairs.held_out])
    order = np.argsort(-(queries @ documents.T), axis=1)
    ranks = [int(np.where(order[row] == index[answer])[0][0]) + 1 for row, (_, answer) in enumerate(pairs.held_out)]
    scores = {f"hit@{k}": round(sum(r <= k for r in ranks) / len(ranks), 4) for k in ks}
    scores["mrr@10"] = round(sum(1 / r for r in ranks if r <= 10) / len(ranks), 4)
    return scores
