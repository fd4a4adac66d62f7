"""Answer strategies by name. `build_strategy` wires one to its generator, retriever and example bank.

Names: `plain`, `few-shot`, `rag`, `fine-tuned:NAME`, and combinations joined with `+` (`rag+few-shot`,
`rag+fine-tuned:NAME`, `few-shot+fine-tuned:NAME`, `rag+few-shot+fine-tuned:NAME`). A fine-tuned model changes the
generator (`generator_for`); rag and few-shot change the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from assistant.config import Settings
from assistant.errors import ConfigError, ModelUnavailable
from assistant.models import Generator, build_generator
from assistant.strategies.base import Answer, AnswerStream, Source, Strategy
from assistant.strategies.fewshot import FewShotStrategy
from assistant.strategies.plain import PlainStrategy
from assistant.strategies.rag import RagStrategy

STRATEGIES = ("plain", "few-shot", "rag", "rag+few-shot", "fine-tuned:NAME", "rag+fine-tuned:NAME",
              "few-shot+fine-tuned:NAME")
_FINE_TUNED = "fine-tuned:"

__all__ = ["Answer", "AnswerStream", "STRATEGIES", "Source", "Strategy", "StrategySpec", "available_strategies",
           "build_strategy", "generator_for"]


@dataclass(frozen=True)
class StrategySpec:
    rag: bool = False
    few_shot: bool = False
    fine_tuned: str | None = None  # a registry name

    @classmethod
    def parse(cls, name: str) -> StrategySpec:
        parts = [part.strip() for part in name.strip().split("+")]
        tuned = [p[len(_FINE_TUNED):] for p in parts if p.startswith(_FINE_TUNED)]
        plain = [p for p in parts if not p.startswith(_FINE_TUNED)]
        known = set(plain) <= {"rag", "few-shot"} or plain == ["plain"]
        if not known or len(tuned) > 1 or len(set(parts)) != len(parts) or any(not t for t in tuned):
            raise ConfigError(f"Unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)} "
                              "(NAME is a model from `assistant finetune list`).")
        return cls("rag" in plain, "few-shot" in plain, tuned[0] if tuned else None)

    @property
    def name(self) -> str:
        parts = [p for p, used in (("rag", self.rag), ("few-shot", self.few_shot)) if used]
        if self.fine_tuned:
            parts.append(_FINE_TUNED + self.fine_tuned)
        return "+".join(parts) or "plain"


def generator_for(name: str, settings: Settings, backend: str | None = None, model: str | None = None) -> Generator:
    """The generator a strategy needs: the configured one, or the fine-tuned model its name points at."""
    spec = StrategySpec.parse(name)
    if spec.fine_tuned is None:
        return build_generator(settings, backend=backend, model=model)
    from assistant.finetune.registry import Registry

    registry = Registry.from_settings(settings)
    record = registry.get(spec.fine_tuned)
    if record.target != "generator":
        setting = "ASSISTANT_EMBEDDER" if record.target == "embedder" else "ASSISTANT_RERANKER"
        raise ConfigError(f"{record.name!r} is a tuned {record.target}, not a model that answers: use it with "
                          f"{setting}={record.name}.")
    if not record.ready:
        raise ModelUnavailable(f"The fine-tuned model {record.name!r} is {record.status}, not ready to answer"
                               + (f" ({record.error})" if record.error else "") + ". See `assistant finetune list`.")
    if record.provider == "openai":
        return build_generator(settings, backend="openai", model=record.model_id)
    return build_generator(settings, backend="local", model=record.base_path, adapter=registry.adapter_dir(record.name))


def available_strategies(settings: Settings) -> list[str]:
    """Every strategy this installation can run now: the prompt strategies, then each ready fine-tuned model alone
    and combined with rag and few-shot."""
    from assistant.finetune.registry import Registry

    names = ["plain", "few-shot", "rag", "rag+few-shot"]
    for record in Registry.from_settings(settings).list():
        if record.ready and record.target == "generator":
            names += [f"fine-tuned:{record.name}", f"rag+fine-tuned:{record.name}", f"few-shot+fine-tuned:{record.name}"]
    return names


def build_strategy(name: str, settings: Settings, generator: Generator, collection: str | None = None,
                   k: int | None = None, examples: Path | None = None, retriever=None, embedder=None) -> Strategy:
    spec = StrategySpec.parse(name)
    if not (spec.rag or spec.few_shot):
        strategy: Strategy = PlainStrategy(generator)
    else:
        from assistant.embeddings import SentenceTransformerEmbedder

        embedder = embedder or SentenceTransformerEmbedder.from_settings(settings)
        bank = _bank(settings, examples, embedder) if spec.few_shot else None
        if not spec.rag:
            strategy = FewShotStrategy(generator, bank, settings.fewshot_k)
        else:
            from assistant.retrieval import Retriever

            retriever = retriever or Retriever.from_settings(settings, collection, embedder)
            strategy = RagStrategy(generator, retriever, k or settings.top_k, settings.relevance_threshold,
                                   settings.retrieval_mode, bank=bank)
    strategy.name = spec.name
    return strategy


def _bank(settings: Settings, examples: Path | None, embedder):
    from assistant.fewshot import ExampleBank

    path = examples or settings.examples
    if path is None:
        raise ConfigError("few-shot needs examples: pass --examples FILE or set ASSISTANT_EXAMPLES "
                          "(e.g. knowledge/examples.jsonl).")
    return ExampleBank.from_file(Path(path).expanduser(), embedder)
