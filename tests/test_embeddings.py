"""The bundled embedder: normalised vectors, and the fast bf16 mode finds the same neighbours as fp32."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.config import load_settings
from assistant.embeddings import SentenceTransformerEmbedder
from ingest.loaders import load_file
from tests.test_cli_kb import SAMPLE

pytestmark = pytest.mark.integration
QUERIES = ["How long is the warranty?", "What does an amber light mean?", "How do I forward a port?",
           "Is there a VPN server?", "What comes in the box?", "How do I reset a forgotten password?"]


@pytest.fixture(scope="module")
def passages() -> list[str]:
    return [section.text for path in sorted(SAMPLE.iterdir()) for section in load_file(path)]


def test_vectors_are_normalised_and_sized(passages: list[str]) -> None:
    embedder = SentenceTransformerEmbedder.from_settings(load_settings(embed_precision="fp32"))
    vectors = embedder.embed(passages[:5])
    assert embedder.name == "all-MiniLM-L6-v2" and embedder.dimension == 384
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert embedder.embed([]).shape == (0, 384)
    assert len(embedder.tokenize("The router's WAN port")) >= 4


def test_bf16_keeps_the_nearest_neighbours(passages: list[str]) -> None:
    exact = SentenceTransformerEmbedder.from_settings(load_settings(embed_precision="fp32"))
    fast = SentenceTransformerEmbedder.from_settings(load_settings(embed_precision="bf16"))
    assert fast.precision == "bf16"
    docs_exact, docs_fast = exact.embed(passages), fast.embed(passages)
    assert np.min(np.sum(docs_exact * docs_fast, axis=1)) > 0.99
    nearest_exact = np.argmax(exact.embed(QUERIES) @ docs_exact.T, axis=1)
    nearest_fast = np.argmax(fast.embed(QUERIES) @ docs_fast.T, axis=1)
    assert nearest_exact.tolist() == nearest_fast.tolist()
