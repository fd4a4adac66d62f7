"""Finding the passages of a knowledge base that answer a question: dense (Chroma), BM25 (bm25s), or both fused
by reciprocal-rank fusion. Dense search finds paraphrases; BM25 finds exact terms (error codes, product names)."""

from __future__ import annotations

import hashlib
import os
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
    """BM25 over a collection's chunk texts, kept on disk under the collection's write stamp, so it is rebuilt only
    after the collection changed — whichever process wrote."""

    def __init__(self, collection: Collection, folder: Path) -> None:
        # The key is read before the chunks: a write landing in between changes the stamp again, so the next check
        # rebuilds rather than keeping an index that misses the write.
        self.key = _freshness_key(collection)
        index_dir = folder / collection.name / f"{collection.uid}-{self.key}"
        if not self._load(index_dir):
            self._build(collection)
            self._save(index_dir)

    def is_current(self, collection: Collection) -> bool:
        return _freshness_key(collection) == self.key

    def _load(self, index_dir: Path) -> bool:
        import bm25s

        try:
            self.index = bm25s.BM25.load(str(index_dir))
            self.ids = (index_dir / "ids.txt").read_text().split("\n")
        except (OSError, ValueError, EOFError):  # none yet, or another process is replacing it: build our own
            return False
        return True

    def _build(self, collection: Collection) -> None:
        import bm25s

        self.ids = sorted(collection.ids())
        texts = dict(zip(*collection.texts(self.ids)))
        self.index = bm25s.BM25()
        if self.ids:
            self.index.index(bm25s.tokenize([texts[i] for i in self.ids], stopwords="en", show_progress=False),
                             show_progress=False)

    def _save(self, index_dir: Path) -> None:
        """Keep the index on disk for the next process. Written aside and renamed into place, so a loader never
        sees half an index; a failure (another process clearing stale indexes at the same moment) costs only a
        rebuild at the next start, so it is not an error."""
        staging = index_dir.with_name(f"{index_dir.name}.{os.getpid()}.tmp")
        try:
            staging.mkdir(parents=True)
            if self.ids:
                self.index.save(str(staging))
            (staging / "ids.txt").write_text("\n".join(self.ids))
            for stale in index_dir.parent.iterdir():  # older stamps' indexes, leftovers of killed builds
                if stale not in (staging, index_dir):
                    shutil.rmtree(stale, ignore_errors=True)
            staging.rename(index_dir)  # fails if another process saved this stamp's index first: theirs will do
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)

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
        if self._bm25 is None or not self._bm25.is_current(self.collection):
            self._bm25 = Bm25Index(self.collection, self.bm25_folder)
        return self._bm25

    def retrieve(self, query: str, k: int = 4, mode: Mode = "hybrid", threshold: float | None = None,
                 sources: list[str] | None = None) -> list[Passage]:
        """The k best passages; `threshold` drops those whose cosine similarity to the query is lower, `sources`
        keeps only those documents."""
        from chromadb.errors import NotFoundError

        if mode not in MODES:
            raise ConfigError(f"Unknown retrieval mode {mode!r}; use one of {', '.join(MODES)}.")
        vector = self.embedder.embed([query])[0]
        try:
            return self._search(query, vector, k, mode, threshold, sources)
        except NotFoundError:  # re-indexed since this retriever opened it: the name now holds a new collection
            self.collection = self.collection.reopened()
            return self._search(query, vector, k, mode, threshold, sources)

    def _search(self, query: str, vector: np.ndarray, k: int, mode: Mode, threshold: float | None,
                sources: list[str] | None) -> list[Passage]:
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
            if chunk not in records:  # deleted by another process since the searches ran
                continue
            text, meta, chunk_vector = records[chunk]
            if sources and meta.get("doc_id") not in sources:
                continue
            similarity = float(np.dot(vector, chunk_vector))
            if threshold is not None and similarity < threshold:
                continue
            passages.append(Passage(text, meta.get("doc_id", "?"), meta.get("location", ""), score, chunk,
                                    similarity))
        return passages[:k]


def _freshness_key(collection: Collection) -> str:
    """The collection's write stamp (one metadata read). A collection no write has stamped yet (made before stamps
    existed) falls back to a fingerprint of its chunk ids, which hash their content: correct, but ~0.2 s at 100k
    chunks; its next write stamps it."""
    stamp = collection.generation()
    if stamp is not None:
        return stamp
    return "ids-" + hashlib.sha256("\n".join(sorted(collection.ids())).encode()).hexdigest()[:16]


def _fuse(rankings: list[list[tuple[str, float]]]) -> list[tuple[str, float]]:
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, (chunk, _) in enumerate(ranking, start=1):
            fused[chunk] = fused.get(chunk, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: -item[1])

