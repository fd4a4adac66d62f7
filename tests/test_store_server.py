"""Server mode: a real `chroma run` on 127.0.0.1, ingested into and searched through ASSISTANT_CHROMA_URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import load_settings
from assistant.errors import StoreError
from assistant.retrieval import Retriever
from ingest.pipeline import Ingestor
from ingest.store import KnowledgeStore
from tests.api_server import free_port
from tests.fakes import HashingEmbedder


def test_ingest_and_retrieve_through_a_chroma_server(chroma_url: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_CHROMA_URL", chroma_url)
    settings = load_settings(collection="server-kb")
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "wifi.md").write_text("# Wi-Fi\nThe 5 GHz band is faster at short range.")
    (tmp_path / "kb" / "reset.txt").write_text("Hold the reset button for ten seconds to restore factory settings.")
    embedder = HashingEmbedder()
    assert Ingestor(settings, embedder=embedder).run([tmp_path / "kb"]).count("added") == 2
    again = HashingEmbedder()
    assert Ingestor(settings, embedder=again).run([tmp_path / "kb"]).count("unchanged") == 2
    assert again.embedded == 0

    store = KnowledgeStore(settings)
    assert store.where == chroma_url and "server-kb" in store.names()
    assert not (settings.store_dir / "chroma.sqlite3").exists()  # nothing went to the embedded store
    retriever = Retriever(store.get("server-kb"), embedder, settings.home / "bm25")
    for mode in ("dense", "bm25", "hybrid"):
        assert retriever.retrieve("reset button factory settings", k=1, mode=mode)[0].source == "reset.txt"


def test_an_unreachable_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_CHROMA_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreError, match="Could not reach the Chroma server"):
        KnowledgeStore(load_settings())
