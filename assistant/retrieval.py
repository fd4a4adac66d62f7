"""Finding the passages of a knowledge base that answer a question: dense (Chroma), BM25 (bm25s), or both (hybrid:
dense's ranking, with BM25's best hit put first when the question holds a term rare in the knowledge base — see
`fuse`). Dense search finds paraphrases; BM25 finds exact terms (error codes, product names). An optional reranker
re-scores the result."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from dataclasses import asdict, dataclass, replace
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
RARE_SHARE = 0.001  # a term is rare when at most this share of the chunks (and at least one) holds it


@dataclass(frozen=True)
class Passage:
    text: str
    source: str  # the document id: the file's path relative to the knowledge-base root
    location: str  # "page 2", "Install > Linux", "row 7", or ""
    score: float  # dense: cosine similarity; bm25: BM25 score; hybrid: 1 / rank in the fused list; reranked: the
    # reranker's
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
        self.position = {chunk: n for n, chunk in enumerate(self.ids)}  # chunk id → its document number in bm25s

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

    def rare_terms(self, query: str, chunk: str) -> list[str]:
        """The query's terms that `chunk` holds and at most RARE_SHARE of the chunks (at least one) hold: a name,
        a number, an error code. Read off the index's term columns (bm25s keeps, per term, the chunks holding it)."""
        import bm25s

        if not self.ids:
            return []
        columns, documents = self.index.scores["indptr"], self.index.scores["indices"]
        position = self.position.get(chunk)
        limit = math.ceil(RARE_SHARE * len(self.ids))
        rare = []
        for term in dict.fromkeys(bm25s.tokenize([query], stopwords="en", return_ids=False,
                                                 show_progress=False)[0]):
            column = self.index.vocab_dict.get(term)
            if column is None:
                continue
            holders = documents[columns[column]:columns[column + 1]]
            if len(holders) <= limit and position in holders:
                rare.append(term)
        return rare


class Retriever:
    def __init__(self, collection: Collection, embedder: Embedder, bm25_folder: Path, reranker=None,
                 rerank_top_n: int = 20) -> None:
        self.collection = collection
        self.embedder = embedder
        self.bm25_folder = bm25_folder
        self.reranker = reranker  # assistant.rerank.Reranker: re-scores the top `rerank_top_n` when set
        self.rerank_top_n = rerank_top_n
        self.last_rerank_ms: float | None = None
        self._bm25: Bm25Index | None = None

    @classmethod
    def from_settings(cls, settings: Settings, collection: str | None = None,
                      embedder: Embedder | None = None) -> Retriever:
        from assistant.rerank import Reranker

        store = KnowledgeStore(settings)
        opened = store.get(collection or settings.collection, embedder_name(settings))
        return cls(opened, embedder or SentenceTransformerEmbedder.from_settings(settings), settings.home / "bm25",
                   Reranker.from_settings(settings), settings.rerank_top_n)

    def describe(self, mode: Mode) -> dict:
        """Which configuration answers: what an answer records about how its sources were found."""
        return {"mode": mode, "embedder": self.embedder.name,
                "reranker": None if self.reranker is None else self.reranker.name,
                "rerank_top_n": None if self.reranker is None else self.rerank_top_n,
                "rerank_ms": None if self.last_rerank_ms is None else round(self.last_rerank_ms, 1)}

    def bm25(self) -> Bm25Index:
        if self._bm25 is None or not self._bm25.is_current(self.collection):
            self._bm25 = Bm25Index(self.collection, self.bm25_folder)
        return self._bm25

    def retrieve(self, query: str, k: int = 4, mode: Mode = "hybrid", threshold: float | None = None,
                 sources: list[str] | None = None, vector: np.ndarray | None = None,
                 rerank: bool = True) -> list[Passage]:
        """The k best passages; `threshold` drops those whose cosine similarity to the query is lower, `sources`
        keeps only those documents. `vector`: the query's embedding, when the caller embedded many at once. With a
        reranker (and `rerank`), the best `rerank_top_n` are re-scored by it and the k best of those kept; its
        time is in `last_rerank_ms`."""
        from chromadb.errors import NotFoundError

        if mode not in MODES:
            raise ConfigError(f"Unknown retrieval mode {mode!r}; use one of {', '.join(MODES)}.")
        vector = self.embedder.embed([query])[0] if vector is None else vector
        reranking = rerank and self.reranker is not None
        depth = max(k, self.rerank_top_n) if reranking else k
        try:
            passages = self._search(query, vector, depth, mode, threshold, sources)
        except NotFoundError:  # re-indexed since this retriever opened it: the name now holds a new collection
            self.collection = self.collection.reopened()
            passages = self._search(query, vector, depth, mode, threshold, sources)
        self.last_rerank_ms = None
        if not reranking or not passages:
            return passages[:k]
        scores = self.reranker.scores(query, [p.text for p in passages])
        self.last_rerank_ms = self.reranker.last_ms
        ranked = sorted(zip(scores, passages), key=lambda pair: -pair[0])[:k]
        return [replace(passage, score=score) for score, passage in ranked]

    def _search(self, query: str, vector: np.ndarray, k: int, mode: Mode, threshold: float | None,
                sources: list[str] | None) -> list[Passage]:
        pool = k * 4 if sources or threshold is not None else k  # room for what the filters drop
        dense: list[tuple[str, float]] = []
        lexical: list[tuple[str, float]] = []
        if mode in ("dense", "hybrid"):
            where = {"doc_id": {"$in": sources}} if sources else None
            dense = [(hit.id, hit.score) for hit in self.collection.query(vector, pool, where)]
        if mode in ("bm25", "hybrid"):
            lexical = self.bm25().search(query, pool * (4 if sources else 1))
        if mode == "hybrid":
            index = self.bm25()
            rare = set(index.rare_terms(query, lexical[0][0])) if lexical else set()
            dense_has_it = bool(dense and rare & set(index.rare_terms(query, dense[0][0])))
            fused = fuse([c for c, _ in dense], [c for c, _ in lexical], bool(rare), dense_has_it)
            scores = [(chunk, 1.0 / rank) for rank, chunk in enumerate(fused, start=1)]
        else:
            scores = dense or lexical
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


def fuse(dense: list[str], lexical: list[str], exact_term: bool, dense_has_it: bool = False) -> list[str]:
    """Hybrid ranking: dense's, with BM25's top hit moved up (or added) when the question holds a term rare in the
    knowledge base (in at most 0.1 % of the chunks) that this hit contains (`exact_term`): to first place, or to
    second when dense's own first hit holds that term too (`dense_has_it`: dense understood it; its answer stays).

    Why this and not reciprocal-rank fusion: on every benchmark set dense ranks better than BM25, and equal-weight
    RRF let BM25's weak ranks push good dense hits out of the top k (−1.4 hit@5 on paraphrase questions,
    docs/BENCHMARKS.md). BM25 earns its place only where dense cannot follow: a name, number or error code seen in a
    handful of chunks, which a small embedder turns into noise. That case is visible in the index itself — a query
    term of tiny document frequency, held by BM25's best hit — and there BM25's best hit is the answer 83–90 % of
    the time on natural questions and 100 % on exact-term lookups. Everywhere else the ranking is dense's,
    unchanged, so the fusion cannot fall below dense; the one promoted chunk costs dense at most its k-th hit, and
    only on questions with a rare term (it never did on the benchmark sets: benchmarks/fusion_study.py)."""
    if not exact_term or not lexical:
        return list(dense)
    position = 2 if dense_has_it else 1
    if lexical[0] in dense[:position]:
        return list(dense)
    rest = [chunk for chunk in dense if chunk != lexical[0]]
    return [*rest[:position - 1], lexical[0], *rest[position - 1:]]
