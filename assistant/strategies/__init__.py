"""Answer strategies by name. `build_strategy` wires a strategy to its generator and, for rag, a retriever."""

from __future__ import annotations

from assistant.config import Settings
from assistant.errors import ConfigError
from assistant.models import Generator
from assistant.strategies.base import Answer, AnswerStream, Source, Strategy
from assistant.strategies.plain import PlainStrategy
from assistant.strategies.rag import RagStrategy

STRATEGIES: dict[str, type[Strategy]] = {"plain": PlainStrategy, "rag": RagStrategy}

__all__ = ["Answer", "AnswerStream", "STRATEGIES", "Source", "Strategy", "build_strategy"]


def build_strategy(name: str, settings: Settings, generator: Generator, collection: str | None = None,
                   k: int | None = None, retriever=None) -> Strategy:
    if name not in STRATEGIES:
        raise ConfigError(f"Unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}.")
    if name == "rag":
        from assistant.retrieval import Retriever

        retriever = retriever or Retriever.from_settings(settings, collection)
        return RagStrategy(generator, retriever, k or settings.top_k, settings.relevance_threshold,
                           settings.retrieval_mode)
    return STRATEGIES[name](generator)
