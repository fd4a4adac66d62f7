"""Fakes for fast tests: a generator that records what it was asked and answers from a queue, and embedders."""

from __future__ import annotations

import os
import re
import time
import zlib
from collections.abc import Iterator

import numpy as np

from assistant.models.base import BaseGenerator, GenerationOptions, Message, StopSequence, StreamEnd, Usage


class FakeGenerator(BaseGenerator):
    """Answers with queued replies (or an echo of the question), one word per streamed piece."""

    def __init__(self, replies: list[str] | None = None, model_id: str = "fake-model") -> None:
        super().__init__(model_id, GenerationOptions(max_tokens=64))
        self.replies = list(replies or [])
        self.calls: list[tuple[list[Message], GenerationOptions]] = []

    def _stream(self, messages: list[Message], options: GenerationOptions) -> Iterator[str | StreamEnd]:
        self.calls.append((messages, options))
        reply = self.replies.pop(0) if self.replies else f"You asked: {messages[-1].content}"
        words = reply.split(" ")
        kept = words[: options.max_tokens]
        prompt_tokens = sum(len(m.content.split()) for m in messages)
        for index, word in enumerate(kept):
            try:
                yield word if index == 0 else " " + word
            except StopSequence:
                yield StreamEnd(Usage(prompt_tokens, index + 1), "stop")
                return
        yield StreamEnd(Usage(prompt_tokens, len(kept)), "length" if len(words) > len(kept) else "stop")


class HashingEmbedder:
    """Deterministic bag-of-words vectors (Chroma's trick for tests): fast, and texts sharing words are similar."""

    def __init__(self, dimension: int = 64, name: str = "all-MiniLM-L6-v2") -> None:
        self.name = name  # poses as the bundled embedder, so stores it builds match the default settings
        self.dimension = dimension
        self.calls: list[list[str]] = []

    @property
    def embedded(self) -> int:
        return sum(len(texts) for texts in self.calls)

    def tokenize(self, text: str) -> list[int]:
        return [zlib.crc32(word.encode()) for word in re.findall(r"\w+|[^\w\s]", text.lower())]

    def embed(self, texts) -> np.ndarray:
        self.calls.append(list(texts))
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in self.tokenize(text):
                vectors[row, token % self.dimension] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)


class SlowEmbedder(HashingEmbedder):
    """Announces each embedding call with its process id and takes a while over it, so a test can kill an ingest
    (or one of its workers) in the middle of writing."""

    def embed(self, texts):
        print("embedding", os.getpid(), flush=True)
        time.sleep(0.02)
        return super().embed(texts)


def stop_after(run_dir, at_step: int, step: int, loss: float) -> None:
    """An `on_step` hook (top-level, so it pickles into a training process): ask the run to stop at `at_step`, as
    `assistant finetune cancel` does."""
    if step >= at_step:
        (run_dir / "STOP").touch()
