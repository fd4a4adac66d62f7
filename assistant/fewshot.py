"""In-context learning: the examples most similar to the question, made diverse with maximal marginal relevance
(so three near-copies of one example do not crowd the prompt), within a token budget."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from assistant.embeddings import Embedder
from assistant.errors import AssistantError
from assistant.examples import Example, LineError, read_examples

MMR_LAMBDA = 0.6  # relevance against redundancy with the examples already chosen
NEAR_DUPLICATE = 0.95  # cosine above which an example repeats one already chosen and is skipped


class ExampleBank:
    def __init__(self, examples: list[Example], embedder: Embedder, errors: list[LineError] | None = None) -> None:
        if not examples:
            raise AssistantError("The example bank is empty: give a file with prompt/completion pairs.")
        self.examples = examples
        self.errors = errors or []
        self.embedder = embedder
        self.vectors = embedder.embed([example.prompt for example in examples])

    @classmethod
    def from_file(cls, path: Path, embedder: Embedder) -> ExampleBank:
        examples, errors = read_examples(path)
        if not examples:
            detail = "; ".join(str(e) for e in errors[:3])
            raise AssistantError(f"No usable examples in {path}" + (f" ({detail})" if detail else "") + ".")
        return cls(examples, embedder, errors)

    def select(self, question: str, k: int = 3, budget_tokens: int | None = None,
               count_tokens: Callable[[str], int] = lambda text: len(text) // 4) -> list[Example]:
        """Up to k examples by MMR; then the least relevant are dropped until they fit `budget_tokens`."""
        query = self.embedder.embed([question])[0]
        relevance = self.vectors @ query
        chosen: list[int] = []
        candidates = list(range(len(self.examples)))
        while candidates and len(chosen) < k:
            redundancy = (np.max(self.vectors[candidates] @ self.vectors[chosen].T, axis=1) if chosen
                          else np.zeros(len(candidates)))
            candidates = [c for c, r in zip(candidates, redundancy) if r < NEAR_DUPLICATE]
            redundancy = redundancy[redundancy < NEAR_DUPLICATE]
            if not candidates:
                break
            scores = MMR_LAMBDA * relevance[candidates] - (1 - MMR_LAMBDA) * redundancy
            chosen.append(candidates.pop(int(np.argmax(scores))))
        picked = [self.examples[i] for i in chosen]
        while budget_tokens is not None and picked and sum(
                count_tokens(e.prompt) + count_tokens(e.completion) for e in picked) > budget_tokens:
            picked.pop()
        return picked
