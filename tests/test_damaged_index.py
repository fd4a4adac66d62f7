"""A knowledge base whose vector index Chroma cannot load (what a SIGKILL between Chroma's two index writes leaves,
found by benchmarks/reliability/kill_ingest.py): every command says so in one line with the repair, and `kb reindex`
rebuilds it from the chunk texts without losing one."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.config import Settings, load_settings
from assistant.errors import StoreError
from ingest.pipeline import embedder_name
from ingest.salvage import salvage_records
from ingest.store import KnowledgeStore
from tests.limits import HANG_GUARD_S

ASSISTANT = str(Path(sys.executable).with_name("assistant"))
NAME = "handbook"
SYNC_THRESHOLD = 1000  # Chroma writes a collection's HNSW files after this many records (its default)


DIMENSION = 384  # the bundled embedder's, so that `retrieve` gets as far as the index


def upsert(collection, start: int, stop: int, rng: np.random.Generator) -> None:
    for first in range(start, stop, 100):
        ids = [f"doc{i // 10}#{i}" for i in range(first, min(first + 100, stop))]
        collection.upsert(ids, rng.normal(size=(len(ids), DIMENSION)).astype(np.float32), [f"Chunk {i}." for i in ids],
                          [{"doc_id": i.split("#")[0], "position": int(i.split("#")[1]) % 10} for i in ids])


def damage_like_a_kill(settings: Settings) -> dict[str, int]:
    """Build a knowledge base, then leave it as a writer SIGKILLed inside Chroma's index save does: the HNSW files
    written (with deletions in them), the id map and the index's sequence number still the previous save's, and the
    write log since kept. Returns doc_id → chunks, as the documents say."""
    store = KnowledgeStore(settings)
    collection = store.get_or_create(NAME, embedder_name(settings), DIMENSION)
    rng = np.random.default_rng(0)
    upsert(collection, 0, SYNC_THRESHOLD, rng)  # the first save of the index
    db = sqlite3.connect(settings.store_dir / "chroma.sqlite3")
    segment = db.execute("SELECT id FROM segments WHERE collection = ? AND scope = 'VECTOR'",
                         (collection.uid,)).fetchone()[0]
    id_map = settings.store_dir / segment / "index_metadata.pickle"
    saved_id_map, saved_seq = id_map.read_bytes(), db.execute(
        "SELECT seq_id FROM max_seq_id WHERE segment_id = ?", (segment,)).fetchone()[0]
    # The killed writer had not purged the log it was applying (Chroma purges after the save completes).
    db.execute("""UPDATE embeddings_queue_config SET config_json_str = '{"automatically_purge": false}'""")
    db.commit()
    collection.delete([f"doc0#{i}" for i in range(10)])
    upsert(collection, SYNC_THRESHOLD, 2 * SYNC_THRESHOLD, rng)  # the second save: the kill lands after its files
    id_map.write_bytes(saved_id_map)
    db.execute("UPDATE max_seq_id SET seq_id = ? WHERE segment_id = ?", (saved_seq, segment))
    db.commit()
    db.close()
    return {f"doc{d}": 10 for d in range(1, 2 * SYNC_THRESHOLD // 10)}


def cli(*args: str) -> subprocess.CompletedProcess:
    # Each command in its own process: the test process's Chroma keeps the index it wrote in memory.
    return subprocess.run([ASSISTANT, *args], capture_output=True, text=True, timeout=HANG_GUARD_S)


def test_a_damaged_index_is_reported_then_rebuilt_from_the_chunk_texts() -> None:
    settings = load_settings()
    expected = damage_like_a_kill(settings)

    for command in (["kb", "stats", "--collection", NAME], ["retrieve", "chunk", "--collection", NAME]):
        broken = cli(*command)
        assert broken.returncode != 0, broken.stdout
        assert "Traceback" not in broken.stderr
        assert "cannot be read: Chroma could not load its vector index" in broken.stderr
        assert f"`assistant kb reindex --collection {NAME}`" in broken.stderr

    repaired = cli("kb", "reindex", "--collection", NAME)
    assert repaired.returncode == 0, repaired.stderr
    assert f"Reindexed {NAME}: {sum(expected.values())} chunks." in repaired.stdout

    listed = cli("kb", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [info] = [entry for entry in json.loads(listed.stdout) if entry["name"] == NAME]
    assert info["documents"] == expected  # every chunk, with its metadata; the deleted document stays deleted
    found = cli("retrieve", "Chunk doc7#75.", "--collection", NAME, "--json")
    assert found.returncode == 0, found.stderr
    assert "doc7#75" in found.stdout


def test_chunks_are_not_salvaged_from_metadata_behind_the_write_log() -> None:
    settings = load_settings()
    damage_like_a_kill(settings)
    db = sqlite3.connect(settings.store_dir / "chroma.sqlite3")
    db.execute("UPDATE max_seq_id SET seq_id = 1 WHERE segment_id IN (SELECT id FROM segments WHERE scope = "
               "'METADATA')")
    db.commit()
    db.close()
    uid = KnowledgeStore(settings).get(NAME).uid
    with pytest.raises(StoreError, match="behind its write log"):
        list(salvage_records(settings.store_dir, uid))
