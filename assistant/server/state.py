"""What the server keeps between requests: the settings, each loaded model once, and the gate that lets one
generation run at a time (the local backend would only split the same cores) with a bounded queue behind it."""

from __future__ import annotations

import asyncio
import threading
from contextlib import asynccontextmanager

from assistant.config import Settings
from assistant.server.catalog import ServedModel
from assistant.server.errors import APIError


class Gate:
    """One request generates at a time; up to `queue` more wait their turn; past that, 429 with Retry-After."""

    def __init__(self, queue: int) -> None:
        self.queue = queue
        self._turn = asyncio.Semaphore(1)
        self._admitted = 0

    @asynccontextmanager
    async def turn(self):
        if self._admitted >= 1 + self.queue:
            raise APIError(429, f"The server is busy: {self._admitted} requests are running or waiting for the "
                           f"model (ASSISTANT_SERVER_QUEUE={self.queue}). Retry shortly.", "rate_limit_exceeded",
                           code="rate_limit_exceeded", headers={"Retry-After": "1"})
        self._admitted += 1
        try:
            async with self._turn:
                yield
        finally:
            self._admitted -= 1


class ServerState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.gate = Gate(settings.server_queue)
        self._lock = threading.Lock()  # building a model happens in worker threads
        self._generators: dict[tuple, object] = {}
        self._strategies: dict[tuple, object] = {}
        self._embedder = None

    def embedder(self):
        from assistant.embeddings import SentenceTransformerEmbedder

        with self._lock:
            if self._embedder is None:
                self._embedder = SentenceTransformerEmbedder.from_settings(self.settings)
            return self._embedder

    def strategy(self, served: ServedModel):
        """The strategy a model id answers with, built once; strategies on the same model share its generator."""
        from assistant.strategies import StrategySpec, build_strategy, generator_for

        key = (served.strategy, served.model)
        with self._lock:
            if key in self._strategies:
                return self._strategies[key]
        overrides = {k: v for k, v in (("model", served.model), ("backend", served.backend)) if v is not None}
        settings = self.settings.model_copy(update=overrides)
        spec = StrategySpec.parse(served.strategy)
        generator_key = (spec.fine_tuned, served.model)
        with self._lock:
            generator = self._generators.get(generator_key)
        if generator is None:
            generator = generator_for(served.strategy, settings)
        embedder = self.embedder() if spec.rag or spec.few_shot else None
        strategy = build_strategy(served.strategy, settings, generator, embedder=embedder)
        with self._lock:
            self._generators.setdefault(generator_key, generator)
            return self._strategies.setdefault(key, strategy)

    def forget(self, fine_tuned: str) -> None:
        """Drop what was built on a fine-tuned model that is gone."""
        with self._lock:
            self._generators = {k: v for k, v in self._generators.items() if k[0] != fine_tuned}
            self._strategies = {k: v for k, v in self._strategies.items()
                                if f"fine-tuned:{fine_tuned}" not in k[0].split("+")}
