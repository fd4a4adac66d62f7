"""Answer strategies by name. `build_strategy` wires one to its generator, retriever and example bank."""

from __future__ import annotations

from pathlib import Path

from assistant.config import Settings
from assistant.errors import ConfigError
from assistant.models import Generator
from assistant.strategies.base import Answer, AnswerStream, Source, Strategy
from assistant.strategies.fewshot import FewShotStrategy
from assistant.strategies.plain import PlainStrategy
from assistant.strategies.rag import RagStrategy

STRATEGIES: dict[str, type[Strategy]] = {"plain": PlainStrategy, "few-shot": FewShotStrategy, "rag": RagStrategy,
                                         "rag+few-shot": RagStrategy}

__all__ = ["Answer", "AnswerStream", "STRATEGIES", "Source", "Strategy", "build_strategy"]


def build_strategy(name: str, settings: Settings, generator: Generator, collection: str | None = None,
                   k: int | None = None, examples: Path | None = None, retriever=None, embedder=None) -> Strategy:
    if name not in STRATEGIES:
        raise ConfigError(f"Unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}.")
    if name == "plain":
        return PlainStrategy(generator)
    from assistant.embeddings import SentenceTransformerEmbedder

    embedder = embedder or SentenceTransformerEmbedder.from_settings(settings)
    bank = _bank(settings, examples, embedder) if "few-shot" in name else None
    if name == "few-shot":
        return FewShotStrategy(generator, bank, settings.fewshot_k)
    from assistant.retrieval import Retriever

    retriever = retriever or Retriever.from_settings(settings, collection, embedder)
    return RagStrategy(generator, retriever, k or settings.top_k, settings.relevance_threshold,
                       settings.retrieval_mode, bank=bank)


def _bank(settings: Settings, examples: Path | None, embedder):
    from assistant.fewshot import ExampleBank

    path = examples or settings.examples
    if path is None:
        raise ConfigError("few-shot needs examples: pass --examples FILE or set ASSISTANT_EXAMPLES "
                          "(e.g. knowledge/examples.jsonl).")
    return ExampleBank.from_file(Path(path).expanduser(), embedder)
