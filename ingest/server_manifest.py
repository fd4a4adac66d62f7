"""The ingestion manifest of a collection in a Chroma server, kept in the server itself.

A companion collection holds one record per document (id = doc_id; the chunk ids as the record's text; source,
size, mtime, hash and state as its metadata), so every machine and every worker ingesting into the server reads
and writes the same manifest: a file one machine ingested is `unchanged` for the next (same content hash), and a
killed worker's `pending` documents are redone by whichever run comes next. Each call is one request the server
applies before answering, which gives the same write order as the SQLite manifest (ingest/manifest.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from ingest.manifest import Entry

# Companion collections are named from a hash of the knowledge base's name (a name may already use Chroma's
# 63 characters); the prefix keeps them out of `kb list`, and knowledge bases may not start with it.
MANIFEST_PREFIX = "ragtune-manifest-"
# Chroma keeps a vector for every record; the manifest needs none, so each gets the same one-number vector.
_NO_VECTOR = [1.0]
_PAGE = 5000


def manifest_collection_name(name: str) -> str:
    return MANIFEST_PREFIX + hashlib.sha256(name.encode()).hexdigest()[:24]


class ServerManifest:
    def __init__(self, client, name: str) -> None:
        self._client = client
        self._c = client.get_or_create_collection(manifest_collection_name(name), metadata={"manifest_of": name},
                                                  embedding_function=None)

    def close(self) -> None:
        pass  # an HTTP client: nothing held open per manifest

    def __enter__(self) -> ServerManifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def bind_to(self, collection_uid: str, *, keep: bool = False) -> None:
        """As LocalManifest.bind_to: forget every entry when the collection was re-created behind our back."""
        metadata = self._fresh_metadata()
        if metadata.get("collection") not in (None, collection_uid) and not keep:
            ids = [id_ for page in self._pages([]) for id_ in page["ids"]]
            for start in range(0, len(ids), _PAGE):
                self._c.delete(ids=ids[start:start + _PAGE])
        if metadata.get("collection") != collection_uid:
            self._c.modify(metadata={**metadata, "collection": collection_uid})

    def get(self, doc_id: str) -> Entry | None:
        found = self._c.get(ids=[doc_id], include=["documents", "metadatas"])
        return _entry(found["ids"][0], found["documents"][0], found["metadatas"][0]) if found["ids"] else None

    def entries(self) -> list[Entry]:
        entries = [_entry(*record) for page in self._pages(["documents", "metadatas"])
                   for record in zip(page["ids"], page["documents"], page["metadatas"])]
        return sorted(entries, key=lambda entry: entry.doc_id)

    def begin(self, doc_id: str, source: str, size: int, mtime_ns: int, sha256: str, chunk_ids: list[str]) -> None:
        self._put([Entry(doc_id, source, size, mtime_ns, sha256, tuple(chunk_ids), "pending")])

    def finish(self, doc_ids: list[str]) -> None:
        self._rewrite(doc_ids, state="done")

    def touch(self, doc_id: str, size: int, mtime_ns: int) -> None:
        self._rewrite([doc_id], size=size, mtime_ns=mtime_ns)

    def remove(self, doc_id: str) -> None:
        self._c.delete(ids=[doc_id])

    def import_entries(self, entries: list[Entry]) -> None:
        """Take over a manifest an earlier version kept on one machine (see KnowledgeStore.manifest)."""
        for start in range(0, len(entries), _PAGE):
            self._put(entries[start:start + _PAGE])

    def _rewrite(self, doc_ids: list[str], **changes) -> None:
        found = self._c.get(ids=list(doc_ids), include=["documents", "metadatas"])
        entries = [_entry(*record) for record in zip(found["ids"], found["documents"], found["metadatas"])]
        self._put([replace(entry, **changes) for entry in entries])

    def _put(self, entries: list[Entry]) -> None:
        if entries:
            self._c.upsert(ids=[e.doc_id for e in entries], embeddings=[_NO_VECTOR] * len(entries),
                           documents=[json.dumps(list(e.chunk_ids)) for e in entries],
                           metadatas=[{"source": e.source, "size": e.size, "mtime_ns": e.mtime_ns,
                                       "sha256": e.sha256, "state": e.state} for e in entries])

    def _pages(self, include: list[str]):
        offset = 0
        while True:
            page = self._c.get(include=include, limit=_PAGE, offset=offset)
            if not page["ids"]:
                return
            yield page
            offset += len(page["ids"])

    def _fresh_metadata(self) -> dict:
        return dict(self._client.get_collection_by_id(self._c.id, embedding_function=None).metadata or {})


def _entry(doc_id: str, chunk_ids: str, meta: dict) -> Entry:
    return Entry(doc_id, meta["source"], int(meta["size"]), int(meta["mtime_ns"]), meta["sha256"],
                 tuple(json.loads(chunk_ids)), meta["state"])
