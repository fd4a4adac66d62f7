"""Finding the passages of a knowledge base that answer a question (dense search; hybrid comes with strategies)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from assistant.config import Settings
from assistant.embeddings import Embedder, SentenceTransformerEmbedder
from ingest.pipeline import embedder_name
from ingest.store import Collection, KnowledgeStore


@dataclass(frozen=True)
class Passage:
    text: str
    source: str  # the document id: the file's path relative to the knowledge-base root
    location: str  # "page 2", "Install > Linux", "row 7", or ""
    score: float
    chunk_id: str

    def to_dict(self) -> dict:
        return asdict(self)


class DenseRetriever:
    def __init__(self, collection: Collection, embedder: Embedder) -> None:
        self.collection = collection
        self.embedder = embedder

    @classmethod
    def from_settings(cls, settings: Settings, collection: str | None = None,
                      embedder: Embedder | None = None) -> DenseRetriever:
        store = KnowledgeStore(settings)
        opened = store.get(collection or settings.collection, embedder_name(settings))
        return cls(opened, embedder or SentenceTransformerEmbedder.from_settings(settings))

    def retrieve(self, query: str, k: int = 4) -> list[Passage]:
        vector = self.embedder.embed([query])[0]
        return [Passage(hit.text, hit.metadata.get("doc_id", "?"), hit.metadata.get("location", ""), hit.score, hit.id)
                for hit in self.collection.query(vector, k)]
