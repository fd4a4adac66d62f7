"""`assistant doctor`: checks what the configured assistant needs and says how to fix what is wrong."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from assistant import bundled
from assistant.config import Settings
from assistant.errors import AssistantError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def run_checks(settings: Settings) -> Iterator[Check]:
    yield _check("data home", lambda: _writable(settings))
    for model in bundled.BUNDLED:
        yield _check(f"bundled {model.name}", lambda model=model: str(model.path()))
    yield _check("device", lambda: _device(settings))
    yield _check("LoRA training precision", lambda: _training_precision(settings))
    yield _check("llama.cpp (GGUF runtime)", lambda: _llama_cpp(settings))
    yield _check(f"backend {settings.backend}", lambda: _try_backend(settings))
    yield _check(f"knowledge base {settings.collection}", lambda: _knowledge_base(settings))
    yield _check("retrieval", lambda: _retrieval(settings))


def _check(name: str, probe: Callable[[], str]) -> Check:
    try:
        return Check(name, True, probe())
    except AssistantError as exc:
        return Check(name, False, str(exc))
    except OSError as exc:
        return Check(name, False, f"{exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".strip(": "))


def _writable(settings: Settings) -> str:
    settings.home.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=settings.home):
        pass
    return f"{settings.home} (writable; set ASSISTANT_HOME to move it)"


def _knowledge_base(settings: Settings) -> str:
    from ingest.pipeline import embedder_name
    from ingest.store import KnowledgeStore

    store = KnowledgeStore(settings)
    if settings.collection not in store.names():
        return f"not created yet in {store.where}; `assistant ingest PATH` creates it"
    collection = store.get(settings.collection, embedder_name(settings))  # refuses a mismatched embedder
    return f"{collection.count()} chunks in {store.where} ({collection.embedder})"


def _retrieval(settings: Settings) -> str:
    """What the rag strategies search with; a tuned embedder or reranker that is missing or not ready fails here."""
    from assistant.embeddings import embedder_source
    from assistant.rerank import reranker_source

    _, embedder = embedder_source(settings)
    reranker = reranker_source(settings)
    reranking = f"reranker {reranker} (top {settings.rerank_top_n})" if reranker else "no reranker"
    return f"{settings.retrieval_mode} search, embedder {embedder}, {reranking}"


def _try_backend(settings: Settings) -> str:
    from assistant.models import build_generator

    generator = build_generator(settings)
    if settings.backend == "openai":
        return generator.check()  # type: ignore[attr-defined]
    reply = generator.generate([{"role": "user", "content": "Say OK."}], max_tokens=2)
    return (f"{generator.model_id} loaded in {generator.load_seconds:.1f} s ({generator.runtime}) and "
            f"generated {reply.usage.completion_tokens} token(s)")


def _device(settings: Settings) -> str:
    from assistant.device import resolve_device

    device = resolve_device(settings.device)
    return f"{device.name} ({device.why}): local models, the embedder and LoRA training run there"


def _training_precision(settings: Settings) -> str:
    from assistant.device import resolve_device
    from assistant.finetune.precision import training_precision

    chosen = training_precision(settings.local_precision, resolve_device(settings.device))
    return f"{chosen.name} ({chosen.why})"


def _llama_cpp(settings: Settings) -> str:
    from assistant.models.llama_lib import load_llama_cpp

    llama_cpp = load_llama_cpp(settings.local_cpu)  # ModelUnavailable says why not, and how to build it
    from assistant.models.llamacpp import cpu_features

    gpu = "GPU offload available" if llama_cpp.llama_supports_gpu_offload() else "CPU only (built without GPU support)"
    return f"llama-cpp-python {llama_cpp.__version__}, {settings.local_cpu} build, {cpu_features(llama_cpp)}, {gpu}"
