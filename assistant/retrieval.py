"""Finding the passages of a knowledge base that answer a question: dense (Chroma), BM25 (bm25s), or both fused
by reciprocal-rank fusion. Dense search finds paraphrases; BM25 finds exact terms (error codes, product names)."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from assistant.config import Settings
from assistant.embeddings import Embedder, SentenceTransformerEmbedder
from assistant.errors import ConfigError
from ingest.pipeline import embedder_name
from ingest.store import Collection, KnowledgeStore

Mode = Literal["dense", "bm25", "hybrid"]
MODES = ("dense", "bm25", "hybrid")
RRF_K = 60  # the constant from Cormack et al. (2009); ranks matter, raw scores of the two searches do not mix


@dataclass(frozen=True)
class Passage:
    text: str
    source: str  # the document id: the file's path relative to the knowledge-base root
    location: str  # "page 2", "Install > Linux", "row 7", or ""
    score: float  # dense: cosine similarity; bm25: BM25 score; hybrid: fused RRF score
    chunk_id: str
    similarity: float | None = None  # cosine similarity to the query, what the relevance threshold applies to

    def to_dict(self) -> dict:
        return asdict(self)


class Bm25Index:
    """BM25 over a collection's chunk texts, kept on disk and rebuilt whenever the collection's chunks change
    (chunk ids hash their content, so the sorted ids fingerprint the collection)."""

    def __init__(self, collection: Collection, folder: Path) -> None:
        import bm25s

        ids = sorted(collection.ids())
        fingerprint = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
        index_dir = folder / collection.name / fingerprint
        if (index_dir / "ids.txt").is_file():
            self.index = bm25s.BM25.load(str(index_dir))
            self.ids = (index_dir / "ids.txt").read_text().split("\n")
            return
        texts = dict(zip(*collection.texts(ids)))
        self.ids = ids
        self.index = bm25s.BM25()
        if ids:
            self.index.index(bm25s.tokenize([texts[i] for i in ids], stopwords="en", show_progress=False),
                             show_progress=False)
        shutil.rmtree(folder / collection.name, ignore_errors=True)  # older fingerprints are stale
        index_dir.mkdir(parents=True)
        if ids:
            self.index.save(str(index_dir))
        (index_dir / "ids.txt").write_text("\n".join(ids))

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        import bm25s

        if not self.ids:
            return []
        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        found, scores = self.index.retrieve(tokens, k=min(k, len(self.ids)), show_progress=False)
        return [(self.ids[int(i)], float(s)) for i, s in zip(found[0], scores[0]) if s > 0]


class Retriever:
    def __init__(self, collection: Collection, embedder: Embedder, bm25_folder: Path) -> None:
        self.collection = collection
        self.embedder = embedder
        self.bm25_folder = bm25_folder
        self._bm25: Bm25Index | None = None

    @classmethod
    def from_settings(cls, settings: Settings, collection: str | None = None,
                      embedder: Embedder | None = None) -> Retriever:
        store = KnowledgeStore(settings)
        opened = store.get(collection or settings.collection, embedder_name(settings))
        return cls(opened, embedder or SentenceTransformerEmbedder.from_settings(settings), settings.home / "bm25")

    def bm25(self) -> Bm25Index:
        if self._bm25 is None or sorted(self.collection.ids()) != sorted(self._bm25.ids):
            self._bm25 = Bm25Index(self.collection, self.bm25_folder)
        return self._bm25

    def retrieve(self, query: str, k: int = 4, mode: Mode = "hybrid", threshold: float | None = None,
                 sources: list[str] | None = None) -> list[Passage]:
        """The k best passages; `threshold` drops those whose cosine similarity to the query is lower, `sources`
        keeps only those documents."""
        if mode not in MODES:
            raise ConfigError(f"Unknown retrieval mode {mode!r}; use one of {', '.join(MODES)}.")
        vector = self.embedder.embed([query])[0]
        pool = k * 4 if sources or threshold is not None else k  # room for what the filters drop
        rankings: list[list[tuple[str, float]]] = []
        if mode in ("dense", "hybrid"):
            where = {"doc_id": {"$in": sources}} if sources else None
            rankings.append([(hit.id, hit.score) for hit in self.collection.query(vector, pool, where)])
        if mode in ("bm25", "hybrid"):
            rankings.append(self.bm25().search(query, pool * (4 if sources else 1)))
        scores = rankings[0] if len(rankings) == 1 else _fuse(rankings)
        records = self.collection.records([chunk for chunk, _ in scores])
        passages = []
        for chunk, score in scores:
            text, meta, chunk_vector = records[chunk]
            if sources and meta.get("doc_id") not in sources:
                continue
            similarity = float(np.dot(vector, chunk_vector))
            if threshold is not None and similarity < threshold:
                continue
            passages.append(Passage(text, meta.get("doc_id", "?"), meta.get("location", ""), score, chunk,
                                    similarity))
        return passages[:k]


def _fuse(rankings: list[list[tuple[str, float]]]) -> list[tuple[str, float]]:
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, (chunk, _) in enumerate(ranking, start=1):
            fused[chunk] = fused.get(chunk, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: -item[1])

