"""Ingestion past one process and one machine: worker processes (`--workers N`), shares of a folder (`--shard i/N`),
and the manifest kept in a real loopback `chroma run`, so machines ingesting into one server never redo each other's
work — and a killed worker, or a killed run, is repaired by the next run."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.config import Settings, load_settings
from assistant.errors import ConfigError
from ingest.manifest import LocalManifest
from ingest.pipeline import Ingestor, Shard
from ingest.server_manifest import manifest_collection_name
from ingest.store import Collection, KnowledgeStore
from tests.fakes import HashingEmbedder
from tests.limits import HANG_GUARD_S, QUICK_GUARD_S
from tests.test_cli import assert_one_line_error, run
from tests.test_cli_kb import SAMPLE
from tests.test_crash_safety import make_corpus
from tests.test_ingest_pipeline import expected, stored

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    make_corpus(tmp_path / "kb", random.Random(15), files=24)
    return tmp_path / "kb"


def served(monkeypatch: pytest.MonkeyPatch, url: str, home: Path, collection: str) -> Settings:
    """Settings of one "machine": its own data home, the shared server."""
    monkeypatch.setenv("ASSISTANT_CHROMA_URL", url)
    monkeypatch.setenv("ASSISTANT_HOME", str(home))
    return load_settings(collection=collection, chunk_size=40, chunk_overlap=8)


def manifest_entries(settings: Settings):
    with KnowledgeStore(settings).manifest(settings.collection) as manifest:
        return manifest.entries()


def vectors(collection: Collection, ids: list[str]) -> np.ndarray:
    records = collection.records(ids)
    return np.array([records[id_][2] for id_ in ids])


def test_two_workers_store_exactly_what_one_stores(corpus: Path, tmp_path: Path) -> None:
    one = load_settings(home=tmp_path / "one", chunk_size=40, chunk_overlap=8)
    two = load_settings(home=tmp_path / "two", chunk_size=40, chunk_overlap=8)
    Ingestor(one, embedder=HashingEmbedder()).run([corpus])
    report = Ingestor(two, embedder=HashingEmbedder()).run([corpus], workers=2)
    assert report.count("added") == 24 and report.count("failed") == 0
    assert stored(two) == stored(one) == expected(two, corpus)
    assert report.embedded_chunks == sum(len(ids) for ids in expected(two, corpus).values())
    first, second = KnowledgeStore(one).get(one.collection), KnowledgeStore(two).get(two.collection)
    ids, _, _ = next(first.all_records())
    assert np.allclose(vectors(first, ids), vectors(second, ids))
    assert all(entry.done for entry in manifest_entries(two))
    assert Ingestor(two, embedder=HashingEmbedder()).run([corpus], workers=2).count("unchanged") == 24


def test_workers_into_a_server_and_a_second_machine_re_embeds_nothing(
        corpus: Path, tmp_path: Path, chroma_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = served(monkeypatch, chroma_url, tmp_path / "machine-a", "parallel-kb")
    assert Ingestor(first, embedder=HashingEmbedder()).run([corpus], workers=2).count("added") == 24
    assert stored(first) == expected(first, corpus)
    assert not (first.home / "manifests").exists()  # the manifest went to the server, not to this data home

    # Another machine: its own data home, the same documents copied to another path (so other mtimes).
    copy = shutil.copytree(corpus, tmp_path / "elsewhere" / "kb")
    second = served(monkeypatch, chroma_url, tmp_path / "machine-b", "parallel-kb")
    embedder = HashingEmbedder()
    report = Ingestor(second, embedder=embedder).run([copy], workers=2)
    assert report.count("unchanged") == 24 and embedder.embedded == 0
    assert "parallel-kb" in KnowledgeStore(second).names()
    assert manifest_collection_name("parallel-kb") not in KnowledgeStore(second).names()  # not a knowledge base


def test_shards_on_two_machines_cover_the_folder_once(corpus: Path, tmp_path: Path, chroma_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    reports = []
    for index in (1, 2):
        settings = served(monkeypatch, chroma_url, tmp_path / f"machine-{index}", "sharded-kb")
        reports.append(Ingestor(settings, embedder=HashingEmbedder()).run([corpus], shard=Shard(index, 2)))
    added = [{r.doc_id for r in report.results if r.status == "added"} for report in reports]
    assert added[0] and added[1] and not added[0] & added[1]
    assert added[0] | added[1] == set(expected(settings, corpus))
    assert stored(settings) == expected(settings, corpus)

    # Pruning on one machine removes only what is gone from its own share.
    gone = sorted(added[0])[0], sorted(added[1])[0]
    for doc_id in gone:
        (corpus / doc_id).unlink()
    report = Ingestor(settings, embedder=HashingEmbedder()).run([corpus], prune=True, shard=Shard(1, 2))
    assert [r.doc_id for r in report.results if r.status == "removed"] == [gone[0]]
    assert gone[1] in stored(settings)


def test_a_killed_worker_and_a_killed_run_are_repaired(corpus: Path, tmp_path: Path, chroma_url: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings = served(monkeypatch, chroma_url, tmp_path / "home", "killed-kb")
    env = {**os.environ, "PYTHONPATH": str(REPO), "ASSISTANT_COLLECTION": "killed-kb"}

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "tests.slow_ingest", str(corpus), "2"], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def embedding_pid(process: subprocess.Popen, calls: int) -> int:
        pids = [int(process.stdout.readline().split()[1]) for _ in range(calls)]
        return pids[-1]

    # 1. One worker is killed while it embeds: the run stops with a clear error, what it stored is kept.
    run_ = start()
    worker = embedding_pid(run_, 3)
    assert worker != run_.pid
    os.kill(worker, signal.SIGKILL)
    _, errors = run_.communicate(timeout=QUICK_GUARD_S)
    assert run_.returncode != 0 and "An ingestion worker stopped unexpectedly" in errors, errors

    # 2. The whole run (the main process and its workers) is killed in the middle; files change in between.
    (corpus / "doc003.md").write_text("# Changed\nThe guest network has its own password now.")
    (corpus / "doc005.md").unlink()
    run_ = start()
    embedding_pid(run_, 4)
    os.killpg(run_.pid, signal.SIGKILL)
    run_.wait(timeout=QUICK_GUARD_S)

    # 3. The next run finishes the job: exactly the current files' chunks, a complete manifest.
    final = start()
    output, errors = final.communicate(timeout=HANG_GUARD_S)
    assert final.returncode == 0 and "finished" in output, errors
    assert stored(settings) == expected(settings, corpus)
    entries = manifest_entries(settings)
    assert all(entry.done for entry in entries) and {e.doc_id for e in entries} == set(expected(settings, corpus))
    collection = KnowledgeStore(settings).get(settings.collection)
    assert collection.count() == sum(len(ids) for ids in expected(settings, corpus).values())  # no duplicates


def test_a_manifest_kept_on_this_machine_moves_into_the_server(corpus: Path, tmp_path: Path, chroma_url: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Earlier versions kept a server collection's manifest under the data home: it is taken over, not redone."""
    settings = served(monkeypatch, chroma_url, tmp_path / "home", "legacy-kb")
    Ingestor(settings, embedder=HashingEmbedder()).run([corpus])
    store = KnowledgeStore(settings)
    legacy = settings.home / "manifests" / f"127.0.0.1_{chroma_url.rsplit(':', 1)[1]}" / "legacy-kb.sqlite"
    legacy.parent.mkdir(parents=True)
    with store.manifest("legacy-kb") as manifest, LocalManifest(legacy) as old:
        entries = manifest.entries()
        old.bind_to(store.get("legacy-kb").uid)
        for entry in entries:
            old.begin(entry.doc_id, entry.source, entry.size, entry.mtime_ns, entry.sha256, list(entry.chunk_ids))
        old.finish([entry.doc_id for entry in entries])
    store.client.delete_collection(manifest_collection_name("legacy-kb"))  # as an earlier version left the server

    embedder = HashingEmbedder()
    assert Ingestor(settings, embedder=embedder).run([corpus]).count("unchanged") == 24 and embedder.embedded == 0
    assert manifest_entries(settings) == entries
    assert not legacy.exists() and legacy.with_suffix(".sqlite.imported").exists()


def test_shard_parsing() -> None:
    assert Shard.parse("2/3") == Shard(2, 3) and Shard.parse(" 1 / 1 ") == Shard(1, 1)
    for bad in ("0/2", "3/2", "1", "a/b", "1/0"):
        with pytest.raises(ConfigError, match="i/N"):
            Shard.parse(bad)
    ids = [f"doc{n}.md" for n in range(200)]
    shares = [{doc_id for doc_id in ids if doc_id in Shard(index, 3)} for index in (1, 2, 3)]
    assert sum(len(share) for share in shares) == 200 and set().union(*shares) == set(ids)
    assert all(40 < len(share) < 95 for share in shares)  # a hash spreads them, roughly evenly


@pytest.mark.integration
def test_the_cli_ingests_with_real_minilm_workers(tmp_path: Path) -> None:
    env = {"ASSISTANT_HOME": str(tmp_path / "home")}
    result = run("ingest", str(SAMPLE), "--workers", "2", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("knowledge: 5 added, 0 updated, 0 unchanged")
    assert_one_line_error(run("ingest", str(SAMPLE), "--shard", "3/2", env=env), "--shard")

    from assistant.embeddings import SentenceTransformerEmbedder

    settings = load_settings(home=tmp_path / "home")
    collection = KnowledgeStore(settings).get(settings.collection)
    ids, texts, _ = next(collection.all_records())
    here = SentenceTransformerEmbedder.from_settings(settings).embed(texts[:8])
    cosines = np.sum(vectors(collection, ids[:8]) * here, axis=1)
    assert np.all(cosines > 0.999), cosines  # the workers' vectors are the ones this process would make
