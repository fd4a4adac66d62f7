"""Incremental sync, failures beside good files, embedder safety and the writer lock (fast: hashing embedder)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from assistant.config import Settings, load_settings
from assistant.errors import StoreError
from ingest import kb
from ingest.chunking import Chunker, document_id
from ingest.loaders import load_file
from ingest.pipeline import Ingestor, IngestReport
from ingest.store import Collection, KnowledgeStore
from tests.fakes import HashingEmbedder

ROUTERS = "# Routers\nA router forwards packets between networks.\n## Setup\nPlug the WAN port into the modem.\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    root.mkdir()
    (root / "routers.md").write_text(ROUTERS)
    (root / "switches.txt").write_text("A switch connects devices inside one network. " * 30)
    (root / "faq.csv").write_text("question,answer\nWhat is DNS?,It maps names to addresses.\n"
                                  "What is DHCP?,It hands out addresses.\n")
    (root / "sub").mkdir()
    (root / "sub" / "page.html").write_text("<h1>Wi-Fi</h1><p>Use the 5 GHz band for speed.</p>")
    (root / ".hidden").write_text("never indexed")
    return root


@pytest.fixture
def settings(isolated_environment: Path) -> Settings:
    return load_settings(chunk_size=40, chunk_overlap=8)


def ingest(settings: Settings, *paths: Path, embedder: HashingEmbedder | None = None, **options) -> IngestReport:
    return Ingestor(settings, embedder=embedder or HashingEmbedder()).run(paths, **options)


def stored(settings: Settings) -> dict[str, set[str]]:
    """doc_id → the chunk ids in the store."""
    collection = KnowledgeStore(settings).get(settings.collection)
    ids: dict[str, set[str]] = {}
    for chunk_ids, _, metadatas in collection.all_records():
        for chunk, meta in zip(chunk_ids, metadatas):
            ids.setdefault(meta["doc_id"], set()).add(chunk)
    return ids


def expected(settings: Settings, root: Path) -> dict[str, set[str]]:
    """What the store should hold for the files now in `root`: exactly their current chunks."""
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap, HashingEmbedder().tokenize)
    result = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        doc_id = document_id(path, root)
        result[doc_id] = {c.id for c in chunker.chunk(doc_id, load_file(path))}
    return result


def test_first_ingest_adds_every_file_with_its_chunks(settings: Settings, folder: Path) -> None:
    report = ingest(settings, folder)
    assert {r.doc_id: r.status for r in report.results} == {
        "faq.csv": "added", "routers.md": "added", "sub/page.html": "added", "switches.txt": "added"}
    assert stored(settings) == expected(settings, folder)
    assert report.embedded_chunks == sum(len(ids) for ids in expected(settings, folder).values())


def test_second_ingest_embeds_nothing_and_changes_nothing(settings: Settings, folder: Path) -> None:
    ingest(settings, folder)
    before = stored(settings)
    embedder = HashingEmbedder()
    report = ingest(settings, folder, embedder=embedder)
    assert embedder.embedded == 0
    assert report.count("unchanged") == 4 and report.count("added") == report.count("updated") == 0
    assert stored(settings) == before
    os.utime(folder / "routers.md", (time.time() + 10, time.time() + 10))  # touched, same content
    assert ingest(settings, folder, embedder=embedder).count("unchanged") == 4
    assert embedder.embedded == 0


def test_a_modified_file_only_replaces_its_own_chunks(settings: Settings, folder: Path) -> None:
    ingest(settings, folder)
    before = stored(settings)
    (folder / "routers.md").write_text(ROUTERS.replace("modem", "fibre ONT"))
    embedder = HashingEmbedder()
    report = ingest(settings, folder, embedder=embedder)
    assert [(r.doc_id, r.status) for r in report.results if r.status != "unchanged"] == [("routers.md", "updated")]
    after = stored(settings)
    assert after == expected(settings, folder)
    assert {d: ids for d, ids in after.items() if d != "routers.md"} == {
        d: ids for d, ids in before.items() if d != "routers.md"}
    assert after["routers.md"] != before["routers.md"]
    assert embedder.embedded == len(after["routers.md"])


def test_prune_removes_exactly_the_deleted_files_chunks(settings: Settings, folder: Path) -> None:
    ingest(settings, folder)
    before = stored(settings)
    (folder / "switches.txt").unlink()
    assert ingest(settings, folder).count("removed") == 0  # without --prune nothing is deleted
    assert stored(settings) == before
    report = ingest(settings, folder, prune=True)
    assert [(r.doc_id, r.status, r.chunks) for r in report.results if r.status == "removed"] == [
        ("switches.txt", "removed", len(before["switches.txt"]))]
    assert stored(settings) == {d: ids for d, ids in before.items() if d != "switches.txt"}


def test_bad_files_are_reported_and_good_ones_indexed(settings: Settings, folder: Path) -> None:
    (folder / "empty.txt").write_bytes(b"")
    (folder / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    report = ingest(settings, folder)
    failed = {r.doc_id: r.reason for r in report.failed}
    assert failed == {"empty.txt": "empty", "image.md": "unsupported"}
    assert set(stored(settings)) == {"faq.csv", "routers.md", "sub/page.html", "switches.txt"}


def test_a_file_that_turns_bad_keeps_its_old_chunks(settings: Settings, folder: Path) -> None:
    ingest(settings, folder)
    before = stored(settings)
    (folder / "faq.csv").write_bytes(b"\x00\x01\x02 binary now")
    report = ingest(settings, folder)
    assert [r.status for r in report.results if r.doc_id == "faq.csv"] == ["failed"]
    assert stored(settings) == before  # nothing lost; fix the file and ingest again


def test_a_different_embedder_is_refused_until_reindexed(settings: Settings, folder: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ingest(settings, folder)
    before = stored(settings)
    other = load_settings(chunk_size=40, chunk_overlap=8, embedder="/models/other-embedder")
    with pytest.raises(StoreError, match="assistant kb reindex"):
        ingest(other, folder, embedder=HashingEmbedder(dimension=32, name="other-embedder"))
    assert kb.reindex(other, other.collection, embedder=HashingEmbedder(dimension=32, name="other-embedder")) == sum(
        len(ids) for ids in before.values())
    assert stored(other) == before
    assert KnowledgeStore(other).get(other.collection, "other-embedder").dimension == 32
    assert ingest(other, folder, embedder=HashingEmbedder(dimension=32, name="other-embedder")).count(
        "unchanged") == 4


def test_remove_one_document(settings: Settings, folder: Path) -> None:
    ingest(settings, folder)
    assert kb.remove_document(settings, settings.collection, "faq.csv") == 2
    assert "faq.csv" not in stored(settings)
    with pytest.raises(StoreError, match="Did you mean: routers.md"):
        kb.remove_document(settings, settings.collection, "router.md")
    assert ingest(settings, folder).count("added") == 1  # it comes back on the next ingest


def test_links_pipes_and_unreadable_files_are_reported_and_lose_nothing(
        settings: Settings, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest(settings, folder)
    before = stored(settings)
    (tmp_path / "elsewhere.md").write_text("# Elsewhere\nA linked file outside the folder is read through its link.")
    (folder / "linked.md").symlink_to(tmp_path / "elsewhere.md")
    (folder / "loop-a.md").symlink_to(folder / "loop-b.md")
    (folder / "loop-b.md").symlink_to(folder / "loop-a.md")
    (folder / "gone.md").symlink_to(folder / "nowhere.md")
    (folder / "sub" / "parent").symlink_to(folder)  # a linked folder is not walked into: no endless walk
    os.mkfifo(folder / "pipe.txt")  # reading it would block forever
    import ingest.pipeline as pipeline_module

    real_sha256 = pipeline_module._sha256

    def permission_denied_for_routers(path: Path) -> str:  # as chmod 000 would (tests may run as root)
        if path.name == "routers.md":
            raise PermissionError(13, "Permission denied", str(path))
        return real_sha256(path)

    monkeypatch.setattr(pipeline_module, "_sha256", permission_denied_for_routers)
    (folder / "routers.md").write_text(ROUTERS + "Edited, but now unreadable.\n")
    report = ingest(settings, folder, prune=True)
    assert {r.doc_id: (r.status, r.reason) for r in report.failed} == {
        "loop-a.md": ("failed", "unreadable"), "loop-b.md": ("failed", "unreadable"),
        "gone.md": ("failed", "unreadable"), "pipe.txt": ("failed", "not_a_file"),
        "routers.md": ("failed", "unreadable")}
    assert "Permission denied" in next(r.detail for r in report.failed if r.doc_id == "routers.md")
    assert [r.doc_id for r in report.results if r.status == "added"] == ["linked.md"]
    after = stored(settings)
    assert after.pop("linked.md")
    assert after == before  # the unreadable file's earlier version is kept, not pruned


def test_a_removal_interrupted_before_the_chunks_went_is_finished_by_the_next_run(
        settings: Settings, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest(settings, folder)
    before = stored(settings)
    with monkeypatch.context() as patch:
        patch.setattr(Collection, "delete_document", interrupted)
        with pytest.raises(KeyboardInterrupt):
            kb.remove_document(settings, settings.collection, "faq.csv")
    assert stored(settings) == before  # the chunks are still there, and the next ingest does not skip the file
    assert ingest(settings, folder).count("added") == 1
    assert stored(settings) == before
    with monkeypatch.context() as patch:
        patch.setattr(Collection, "delete_document", interrupted)
        with pytest.raises(KeyboardInterrupt):
            kb.remove_document(settings, settings.collection, "faq.csv")
    assert kb.remove_document(settings, settings.collection, "faq.csv") == 2  # or the removal is simply re-run
    assert "faq.csv" not in stored(settings)


def test_a_reindex_interrupted_between_delete_and_rename_is_finished_by_the_next(
        settings: Settings, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest(settings, folder)
    before = stored(settings)
    other = load_settings(chunk_size=40, chunk_overlap=8, embedder="/models/other-embedder")
    embedder = HashingEmbedder(dimension=32, name="other-embedder")
    with monkeypatch.context() as patch:
        patch.setattr(KnowledgeStore, "rename", interrupted)
        with pytest.raises(KeyboardInterrupt):
            kb.reindex(other, other.collection, embedder=embedder)
    with pytest.raises(StoreError, match="interrupted. Finish it: `assistant kb reindex --collection"):
        KnowledgeStore(other).get(other.collection)
    assert kb.reindex(other, other.collection, embedder=embedder) == sum(len(ids) for ids in before.values())
    assert stored(other) == before
    assert kb.collection_names(other) == [other.collection]
    assert ingest(other, folder, embedder=embedder).count("unchanged") == 4  # the manifest followed the swap


def interrupted(*args, **kwargs):
    raise KeyboardInterrupt  # as a Ctrl-C (or a kill) at this point would


def test_a_second_writer_is_told_to_use_the_server(settings: Settings, folder: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.store as store_module

    holder = textwrap.dedent(f"""
        from filelock import FileLock
        import sys, time
        with FileLock({str(settings.store_dir / '.writer.lock')!r}):
            print("locked", flush=True)
            time.sleep(30)
    """)
    settings.store_dir.mkdir(parents=True, exist_ok=True)
    other = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "locked"
        monkeypatch.setattr(store_module, "WRITER_WAIT_SECONDS", 0.5)
        with pytest.raises(StoreError, match="ASSISTANT_CHROMA_URL"):
            ingest(settings, folder)
    finally:
        other.kill()
        other.wait()
    assert ingest(settings, folder).count("added") == 4  # the lock is free again
