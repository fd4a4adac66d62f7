"""Hybrid fusion never falls below the better single retriever where the other one is useless, and an exact term
only BM25 finds stays on top: properties of `fuse`, then both cases end to end over a real embedded Chroma."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from assistant.config import Settings, load_settings
from assistant.retrieval import Retriever, fuse
from ingest.pipeline import Ingestor
from ingest.store import KnowledgeStore
from tests.fakes import HashingEmbedder

chunk_ids = st.lists(st.sampled_from([f"c{i}" for i in range(30)]), unique=True, max_size=20)


@given(chunk_ids, chunk_ids)
def test_without_a_rare_term_the_ranking_is_denses(dense: list[str], lexical: list[str]) -> None:
    assert fuse(dense, lexical, exact_term=False) == dense


@given(chunk_ids, chunk_ids.filter(bool), st.integers(1, 20), st.booleans())
def test_with_a_rare_term_bm25s_best_hit_leads_and_dense_loses_at_most_its_last(
    dense: list[str], lexical: list[str], k: int, dense_has_it: bool
) -> None:
    fused = fuse(dense, lexical, exact_term=True, dense_has_it=dense_has_it)
    if dense_has_it and dense:  # dense's first hit holds the rare term too: it stays first, BM25's comes next
        assert fused[0] == dense[0] and lexical[0] in fused[:2]
    else:
        assert fused[0] == lexical[0]
    assert set(dense[:k - 1]) <= set(fused[:k])  # dense's top k−1 stay in the top k
    assert [c for c in fused if c != lexical[0]] == [c for c in dense if c != lexical[0]]  # in dense's order
    assert len(fused) == len(set(fused)) == len(set(dense) | {lexical[0]})


COMMON = ["router", "network", "cable", "setting", "signal", "device", "update", "password", "light", "power",
          "port", "channel", "guest", "speed", "screen", "button", "reset", "account", "backup", "modem"]
DOCS = 40
K = 5


@pytest.fixture
def corpus(isolated_environment: Path, tmp_path: Path) -> tuple[Settings, dict[str, str], dict[str, np.ndarray]]:
    """40 documents of common words (each in ~40 % of them) plus one code found in that document alone."""
    folder = tmp_path / "kb"
    folder.mkdir()
    rng = random.Random(0)
    codes = {}
    for i in range(DOCS):
        codes[f"d{i:02d}.txt"] = f"KX{4400 + i}"
        words = rng.sample(COMMON, 8)
        (folder / f"d{i:02d}.txt").write_text(f"{' '.join(words)} {codes[f'd{i:02d}.txt']}.\n")
    settings = load_settings()
    Ingestor(settings, embedder=HashingEmbedder()).run([folder])
    collection = KnowledgeStore(settings).get(settings.collection)
    records = collection.records(collection.ids())
    vectors = {meta["doc_id"]: vector for _, meta, vector in records.values()}
    return settings, codes, vectors


def _retriever(settings: Settings) -> Retriever:
    return Retriever(KnowledgeStore(settings).get(settings.collection), HashingEmbedder(), settings.home / "bm25")


def _ranks(retriever: Retriever, asks: list[tuple[str, np.ndarray, str]], mode: str) -> list[list[str]]:
    return [[p.source for p in retriever.retrieve(q, K, mode, vector=v)] for q, v, _ in asks]


def _hits(rankings: list[list[str]], asks: list[tuple[str, np.ndarray, str]], k: int) -> int:
    return sum(relevant in ranking[:k] for ranking, (_, _, relevant) in zip(rankings, asks))


def test_bm25_useless_hybrid_is_dense(corpus) -> None:
    """Questions whose words are all common (BM25 ranks noise) and whose vectors are their document's: hybrid
    keeps dense's ranking exactly, not RRF's mix."""
    settings, codes, vectors = corpus
    rng = np.random.default_rng(1)
    asks = []
    for doc in sorted(codes):
        noisy = vectors[doc] + rng.normal(0, 0.05, vectors[doc].shape)
        asks.append((" ".join(random.Random(doc).sample(COMMON, 4)), noisy / np.linalg.norm(noisy), doc))
    retriever = _retriever(settings)
    dense, lexical, hybrid = (_ranks(retriever, asks, mode) for mode in ("dense", "bm25", "hybrid"))
    assert _hits(lexical, asks, K) <= len(asks) // 2  # the premise: BM25 is of little use here
    assert hybrid == dense
    assert _hits(hybrid, asks, 1) == _hits(dense, asks, 1) == len(asks)


def test_dense_useless_an_exact_term_only_bm25_finds_stays_on_top(corpus) -> None:
    """Lookups of a code held by one document, with vectors that point nowhere: hybrid finds every one first."""
    settings, codes, vectors = corpus
    rng = np.random.default_rng(2)
    asks = []
    for doc, code in sorted(codes.items()):
        nowhere = rng.normal(size=next(iter(vectors.values())).shape)
        asks.append((f"what does {code} mean", nowhere / np.linalg.norm(nowhere), doc))
    retriever = _retriever(settings)
    dense, lexical, hybrid = (_ranks(retriever, asks, mode) for mode in ("dense", "bm25", "hybrid"))
    assert _hits(dense, asks, K) <= len(asks) // 2  # the premise: dense is of little use here
    assert _hits(lexical, asks, 1) == len(asks)
    assert _hits(hybrid, asks, 1) == len(asks)


def test_a_term_many_chunks_hold_is_not_rare(corpus) -> None:
    settings, codes, _ = corpus
    index = _retriever(settings).bm25()
    holder = next(chunk for chunk in index.ids if codes["d07.txt"] in _text(settings, chunk))
    assert index.rare_terms(f"router {codes['d07.txt']}", holder) == [codes["d07.txt"].lower()]
    assert index.rare_terms("router", holder) == []  # in ~40 % of the chunks (or not in this one)


def _text(settings: Settings, chunk: str) -> str:
    collection = KnowledgeStore(settings).get(settings.collection)
    return collection.records([chunk])[chunk][0]
