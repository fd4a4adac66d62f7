"""What has been ingested: per document, its content hash, its chunk ids and whether it is complete.

Our own record rather than llama-index's IngestionPipeline docstore, because crash safety needs a specific write
order the docstore does not give: a document is marked `pending` (committed) *before* its chunks are written to the
vector store and `done` only *after*, so a killed run leaves at worst `pending` rows, which the next run simply
redoes (chunk ids are deterministic and writes are upserts, so redoing never duplicates).

It lives with the collection: a tiny SQLite file beside an embedded store (here), or a companion collection in a
Chroma server (ingest/server_manifest.py), so every machine ingesting into one server shares it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id   TEXT PRIMARY KEY,
    source   TEXT NOT NULL,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256   TEXT NOT NULL,
    chunks   TEXT NOT NULL,   -- JSON list of chunk ids
    state    TEXT NOT NULL CHECK (state IN ('pending', 'done'))
);
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Entry:
    doc_id: str
    source: str
    size: int
    mtime_ns: int
    sha256: str
    chunk_ids: tuple[str, ...]
    state: str

    @property
    def done(self) -> bool:
        return self.state == "done"


class Manifest(Protocol):
    """What the pipeline needs of a manifest; every call is durable when it returns."""

    def bind_to(self, collection_uid: str, *, keep: bool = False) -> None: ...
    def get(self, doc_id: str) -> Entry | None: ...
    def entries(self) -> list[Entry]: ...
    def begin(self, doc_id: str, source: str, size: int, mtime_ns: int, sha256: str,
              chunk_ids: list[str]) -> None: ...
    def finish(self, doc_ids: list[str]) -> None: ...
    def touch(self, doc_id: str, size: int, mtime_ns: int) -> None: ...
    def remove(self, doc_id: str) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Manifest: ...
    def __exit__(self, *exc: object) -> None: ...


class LocalManifest:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)  # autocommit: each call is its own transaction
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed 'done' survives a power cut
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> LocalManifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def bind_to(self, collection_uid: str, *, keep: bool = False) -> None:
        """Forget everything if the collection was deleted and re-created behind our back (its id changed);
        `keep` when we replaced it ourselves with the same chunks (reindex)."""
        row = self._db.execute("SELECT value FROM info WHERE key = 'collection'").fetchone()
        if row and row[0] != collection_uid and not keep:
            self._db.execute("DELETE FROM documents")
        self._db.execute("INSERT OR REPLACE INTO info VALUES ('collection', ?)", (collection_uid,))

    def get(self, doc_id: str) -> Entry | None:
        row = self._db.execute("SELECT * FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        return _entry(row) if row else None

    def entries(self) -> list[Entry]:
        return [_entry(row) for row in self._db.execute("SELECT * FROM documents ORDER BY doc_id")]

    def begin(self, doc_id: str, source: str, size: int, mtime_ns: int, sha256: str, chunk_ids: list[str]) -> None:
        self._db.execute("INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                         (doc_id, source, size, mtime_ns, sha256, json.dumps(chunk_ids)))

    def finish(self, doc_ids: list[str]) -> None:
        self._db.executemany("UPDATE documents SET state = 'done' WHERE doc_id = ?", [(d,) for d in doc_ids])

    def touch(self, doc_id: str, size: int, mtime_ns: int) -> None:
        """Same content, new timestamp (e.g. after a checkout): remember it so the next run skips hashing."""
        self._db.execute("UPDATE documents SET size = ?, mtime_ns = ? WHERE doc_id = ?", (size, mtime_ns, doc_id))

    def remove(self, doc_id: str) -> None:
        self._db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))


def _entry(row: tuple) -> Entry:
    doc_id, source, size, mtime_ns, sha256, chunks, state = row
    return Entry(doc_id, source, size, mtime_ns, sha256, tuple(json.loads(chunks)), state)
