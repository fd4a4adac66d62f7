"""Dense, BM25 and hybrid retrieval over a real embedded Chroma (hashing embedder: fast and deterministic)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assistant.config import Settings, load_settings
from assistant.errors import ConfigError, StoreError
from assistant.retrieval import Bm25Index, Retriever
from ingest import kb
from ingest import store as store_module
from ingest.pipeline import Ingestor
from ingest.store import KnowledgeStore
from tests.fakes import HashingEmbedder

DOCS = {
    "errors.md": "# Error codes\nError E4471 means the WAN cable is unplugged.\n",
    "wifi.md": "# Wireless\nThe wireless network is faster on the 5 GHz band, slower on 2.4 GHz.\n",
    "reset.txt": "Hold the reset button for ten seconds to restore the factory settings of the router.",
    "guest.txt": "A guest network keeps visitors away from your own devices.",
}


@pytest.fixture
def settings(isolated_environment: Path, tmp_path: Path) -> Settings:
    folder = tmp_path / "kb"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    settings = load_settings()
    Ingestor(settings, embedder=HashingEmbedder()).run([folder])
    return settings


@pytest.fixture
def retriever(settings: Settings) -> Retriever:
    return Retriever(KnowledgeStore(settings).get(settings.collection), HashingEmbedder(), settings.home / "bm25")


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_mode_finds_the_answering_passage(retriever: Retriever, mode: str) -> None:
    passages = retriever.retrieve("how do I restore factory settings with the reset button", k=2, mode=mode)
    assert passages[0].source == "reset.txt"
    assert len(passages) <= 2
    assert passages[0].similarity is not None and passages[0].similarity > 0.3


def test_bm25_finds_exact_codes(retriever: Retriever) -> None:
    (top,) = retriever.retrieve("E4471", k=1, mode="bm25")
    assert top.source == "errors.md" and top.location == "Error codes"
    assert retriever.retrieve("E4471", k=1, mode="hybrid")[0].source == "errors.md"


def test_threshold_and_source_filters(retriever: Retriever) -> None:
    assert retriever.retrieve("guest network visitors", k=3, threshold=0.999) == []
    assert len(retriever.retrieve("guest network visitors", k=3, threshold=-1.0)) == 3
    only = retriever.retrieve("network", k=4, sources=["wifi.md"])
    assert only and {p.source for p in only} == {"wifi.md"}


def test_bm25_follows_the_collection(retriever: Retriever, settings: Settings, tmp_path: Path) -> None:
    assert retriever.retrieve("zeroconf", k=1, mode="bm25") == []
    (tmp_path / "kb" / "mdns.md").write_text("# Discovery\nThe router announces itself with zeroconf.\n")
    Ingestor(settings, embedder=HashingEmbedder()).run([tmp_path / "kb"])
    assert retriever.retrieve("zeroconf", k=1, mode="bm25")[0].source == "mdns.md"


def test_bm25_drops_a_removed_document(retriever: Retriever, settings: Settings) -> None:
    assert retriever.retrieve("E4471", k=1, mode="bm25")[0].source == "errors.md"  # the index is built now
    kb.remove_document(settings, settings.collection, "errors.md")
    assert all(p.source != "errors.md" for p in retriever.retrieve("E4471", k=4, mode="bm25"))


def test_bm25_sees_a_write_by_another_process(retriever: Retriever, settings: Settings, tmp_path: Path) -> None:
    assert retriever.retrieve("zeroconf", k=1, mode="bm25") == []
    (tmp_path / "kb" / "mdns.md").write_text("# Discovery\nThe router announces itself with zeroconf.\n")
    writer = textwrap.dedent(f"""
        from assistant.config import load_settings
        from ingest.pipeline import Ingestor
        from tests.fakes import HashingEmbedder
        Ingestor(load_settings(), embedder=HashingEmbedder()).run([{str(tmp_path / "kb")!r}])
    """)
    subprocess.run([sys.executable, "-c", writer], check=True, cwd=Path(__file__).parent.parent)
    # The index itself, not retrieve(): an embedded Chroma client does not see vectors another process wrote until
    # it is reopened (a Chroma limitation; a server has none), and retrieve() reads the vectors back.
    (found, _), = retriever.bm25().search("zeroconf", 1)
    assert found in KnowledgeStore(settings).get(settings.collection).ids_of("mdns.md")


def test_bm25_is_not_rebuilt_while_the_collection_is_unchanged(retriever: Retriever, settings: Settings,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    built = retriever.bm25()
    retriever.retrieve("reset button", k=2, mode="hybrid")
    assert retriever.bm25() is built
    # A new process finds the saved index of the same write stamp on disk.
    monkeypatch.setattr(Bm25Index, "_build", lambda self, collection: pytest.fail("rebuilt an unchanged index"))
    again = Retriever(KnowledgeStore(settings).get(settings.collection), HashingEmbedder(), settings.home / "bm25")
    assert again.retrieve("E4471", k=1, mode="bm25")[0].source == "errors.md"


def test_bm25_reads_long_id_lists_in_slices(retriever: Retriever, monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite refuses a statement with more than 32,766 variables: 100k chunks in one get() failed.
    monkeypatch.setattr(store_module, "IDS_PER_REQUEST", 2)
    assert len(retriever.bm25().ids) == retriever.collection.count() > 2
    assert retriever.retrieve("E4471", k=1, mode="bm25")[0].source == "errors.md"


def test_chunk_records_are_read_and_deleted_in_slices(retriever: Retriever, monkeypatch: pytest.MonkeyPatch) -> None:
    # As SQLite refuses more than 32,766 variables a statement, this store refuses more than 2 ids a request.
    monkeypatch.setattr(store_module, "IDS_PER_REQUEST", 2)
    chroma = retriever.collection._c

    def at_most_two(method):
        def call(*args, ids=None, **kwargs):
            assert ids is None or len(ids) <= 2, f"{len(ids)} ids in one request"
            return method(*args, ids=ids, **kwargs)
        return call

    monkeypatch.setattr(chroma, "get", at_most_two(chroma.get))
    monkeypatch.setattr(chroma, "delete", at_most_two(chroma.delete))
    ids = sorted(retriever.collection.ids())
    assert len(ids) > 2 and set(retriever.collection.records(ids)) == set(ids)
    retriever.collection.delete(ids[:3])
    assert sorted(retriever.collection.ids()) == ids[3:]


def test_a_retriever_follows_its_knowledge_base_through_a_reindex(retriever: Retriever, settings: Settings) -> None:
    before = retriever.collection.uid
    kb.reindex(settings, settings.collection, HashingEmbedder())  # a new collection under the same name
    for mode in ("dense", "bm25", "hybrid"):
        assert retriever.retrieve("E4471", k=1, mode=mode)[0].source == "errors.md"
    assert retriever.collection.uid != before
    KnowledgeStore(settings).delete(settings.collection)
    with pytest.raises(StoreError, match="was removed"):
        retriever.retrieve("E4471", k=1, mode="dense")


def test_unknown_mode_is_refused(retriever: Retriever) -> None:
    with pytest.raises(ConfigError, match="dense, bm25, hybrid"):
        retriever.retrieve("x", mode="sparse")  # type: ignore[arg-type]
