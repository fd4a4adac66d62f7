"""The model ids the server answers to (`GET /v1/models`), and what each one means.

- every usable strategy: `plain`, `rag` (when the knowledge base exists), `few-shot` and `rag+few-shot` (when an
  example bank is configured), and for each ready fine-tuned model `fine-tuned:NAME`, `rag+fine-tuned:NAME`, …;
- each local base model that can be fine-tuned (the bundled one as `SmolLM2-135M-Instruct`): it answers as `plain`;
- each registered fine-tuned model under its `fine_tuned_model` id (`ft:…`), as OpenAI lists them;
- the embedder, for `POST /v1/embeddings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.server.errors import APIError

OWNER = "ragtune"


@dataclass(frozen=True)
class ServedModel:
    id: str
    kind: str  # strategy | base | fine-tuned | embedder
    strategy: str = "plain"
    model: str | None = None  # a local base model other than the configured default
    backend: str | None = None  # set for base models: they are local whatever the default backend is
    created: int = 0
    fine_tuned: str | None = None  # the registry name behind it

    def to_dict(self) -> dict:
        return {"id": self.id, "object": "model", "created": self.created, "owned_by": OWNER}


def catalog(settings: Settings) -> list[ServedModel]:
    from assistant.finetune.registry import Registry

    ready = [r for r in Registry.from_settings(settings).list() if r.ready and r.target == "generator"]
    prompts = ["plain"] + (["rag"] if _has_knowledge_base(settings) else [])
    if settings.examples is not None:
        prompts += ["few-shot"] + (["rag+few-shot"] if "rag" in prompts else [])
    found = [ServedModel(name, "strategy", name) for name in prompts]
    for record in ready:
        created = _epoch(record.created)
        found += [ServedModel(f"{prefix}fine-tuned:{record.name}", "strategy", f"{prefix}fine-tuned:{record.name}",
                              created=created, fine_tuned=record.name)
                  for prefix in ("", *(f"{p}+" for p in prompts if p != "plain"))]
        if record.model_id:
            found.append(ServedModel(record.model_id, "fine-tuned", f"fine-tuned:{record.name}", created=created,
                                     fine_tuned=record.name))
    for name, path in base_models(settings).items():
        if path is None and (settings.model or settings.backend != "local"):  # the bundled one, not the default
            from assistant import bundled

            path = str(bundled.GENERATOR.path())
        found.append(ServedModel(name, "base", "plain", model=path, backend="local"))
    return found + [ServedModel(embedder_name(settings), "embedder", "")]


def resolve(settings: Settings, model_id: str) -> ServedModel:
    """What a request's `model` names. A strategy name is taken as it is (building it says clearly what is missing,
    e.g. the knowledge base): listing the whole catalogue opens the store, too slow to do for every request."""
    from assistant.strategies import StrategySpec

    try:
        spec = StrategySpec.parse(model_id)
    except AssistantError:
        spec = None
    if spec is not None and spec.fine_tuned is None and spec.name == model_id:
        return ServedModel(model_id, "strategy", model_id)
    for served in catalog(settings):
        if served.id == model_id:
            return served
    raise APIError(404, f"The model {model_id!r} does not exist here; GET /v1/models lists the ones that do.",
                   param="model", code="model_not_found")


def base_models(settings: Settings) -> dict[str, str | None]:
    """{id: ASSISTANT_MODEL value (None = the bundled one)} of the local models a fine-tuning job can start from."""
    from assistant.models.local_weights import resolve_source

    bases: dict[str, str | None] = {resolve_source(None).name: None}
    if settings.backend == "local" and settings.model:
        try:
            bases.setdefault(resolve_source(settings.model).name, settings.model)
        except AssistantError:
            pass  # a broken local model setting: answering will say so; it is just not offered here
    return bases


def embedder_name(settings: Settings) -> str:
    from ingest.pipeline import embedder_name as name

    return name(settings)


def _has_knowledge_base(settings: Settings) -> bool:
    from ingest.store import KnowledgeStore

    try:
        return settings.collection in KnowledgeStore(settings).names()
    except AssistantError:
        return False


def _epoch(stamp: str) -> int:
    try:
        return int(datetime.fromisoformat(stamp).timestamp())
    except ValueError:
        return 0
