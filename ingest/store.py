"""The vector store: Chroma, embedded under the data home by default or a server at ASSISTANT_CHROMA_URL.

We pass our own embeddings always (Chroma's default embedding function would download a model). Each collection
records the embedder that made its vectors; opening it with another embedder is refused rather than mixing vectors.
An embedded store is not safe for two writer processes, so writers hold a file lock.
"""

from __future__ import annotations

import contextlib
import functools
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np
from filelock import FileLock, Timeout

from assistant.config import Settings
from assistant.errors import StoreError, disk_full_as_error, nearly_full, no_space
from ingest.manifest import LocalManifest, Manifest
from ingest.server_manifest import MANIFEST_PREFIX, ServerManifest, manifest_collection_name

WRITER_WAIT_SECONDS = 10.0
# Chroma asks SQLite for the ids of a get() in one statement, and SQLite refuses more than 32,766 variables (a BM25
# index over 100k chunks failed so): ask for long id lists in slices.
IDS_PER_REQUEST = 5000
# Collection metadata key holding a stamp that every write through `Collection` replaces: readers (the BM25 index)
# compare it to tell whether the chunks changed, in this process or another, without listing every chunk id.
GENERATION_KEY = "generation"
# `kb reindex` builds the new collection under this suffix and renames it over the old one once complete.
REINDEX_SUFFIX = "-reindexing"
# What Chroma says when it cannot bring a collection's vector index up to date with its write log before a read:
# "Error executing plan: Error sending backfill request to compactor: Failed to apply logs to the hnsw segment
# writer" and kin. Chroma writes an HNSW index's files and then its id map, not atomically, so a writer killed between
# the two leaves an index it refuses to load (docs/RELIABILITY.md §1); the chunk texts, in SQLite, are intact.
_DAMAGED_INDEX = re.compile(r"backfill|compact|hnsw|segment", re.IGNORECASE)


class DamagedIndex(StoreError):
    """Chroma cannot load a collection's vector index; its texts and metadata can still be re-embedded."""


class _Guarded:
    """A Chroma collection whose calls raise our errors where Chroma raises its InternalError: NoSpace for a full disk
    (reads write too: Chroma applies its write log first), DamagedIndex, with the repair, for an index it cannot load.
    """

    def __init__(self, chroma_collection, store: KnowledgeStore) -> None:
        self._c = chroma_collection
        self._store = store

    def __getattr__(self, attribute: str):
        value = getattr(self._c, attribute)
        if not callable(value):
            return value

        @functools.wraps(value)
        def guarded(*args, **kwargs):
            from chromadb.errors import InternalError

            try:
                with disk_full_as_error(self._store.home, f"using the store at {self._store.where}"):
                    return value(*args, **kwargs)
            except InternalError as exc:
                if not _DAMAGED_INDEX.search(str(exc)):
                    raise
                if not self._store.server and nearly_full(self._store.home):
                    raise no_space(self._store.home, f"using the store at {self._store.where}") from None
                repair = (f"Rebuild the index from them: `assistant kb reindex --collection {self._c.name}`."
                          if not self._store.server else "Re-ingest the documents into a new knowledge base "
                          "(`assistant ingest PATH --collection NEW`), or restore the Chroma server's data folder "
                          "from a backup.")
                raise DamagedIndex(f"The knowledge base {self._c.name!r} cannot be read: Chroma could not load its "
                                   f"vector index ({exc}). A write killed at the wrong moment leaves it so; the "
                                   f"chunk texts are kept. {repair}") from None
        return guarded


@dataclass(frozen=True)
class Hit:
    id: str
    text: str
    metadata: dict
    score: float  # cosine similarity, 1 = same direction


class Collection:
    def __init__(self, chroma_collection, store: KnowledgeStore) -> None:
        self._c = _Guarded(chroma_collection, store)
        self._store = store
        self._client = store.client
        self.name: str = chroma_collection.name
        self.uid = str(chroma_collection.id)

    @property
    def embedder(self) -> str | None:
        return (self._c.metadata or {}).get("embedder")

    @property
    def dimension(self) -> int | None:
        return (self._c.metadata or {}).get("dimension")

    def count(self) -> int:
        return self._c.count()

    def reopened(self) -> Collection:
        """The collection under this name now: a reindex replaces a knowledge base with a new collection."""
        from chromadb.errors import NotFoundError

        try:
            return Collection(self._client.get_collection(self.name, embedding_function=None), self._store)
        except NotFoundError:
            raise StoreError(f"The knowledge base {self.name!r} was removed. Pick another, or create it with "
                             f"`assistant ingest PATH --collection {self.name}`.") from None

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, texts: Sequence[str], metadatas: Sequence[dict]) -> None:
        if ids:
            self._c.upsert(ids=list(ids), embeddings=vectors, documents=list(texts), metadatas=list(metadatas))
            self._bump_generation()

    def ids(self) -> list[str]:
        return self._c.get(include=[])["ids"]

    def _get(self, ids: Sequence[str], include: list[str]) -> Iterator[dict]:
        for start in range(0, len(ids), IDS_PER_REQUEST):
            yield self._c.get(ids=list(ids[start:start + IDS_PER_REQUEST]), include=include)

    def texts(self, ids: Sequence[str]) -> tuple[list[str], list[str]]:
        found, texts = [], []
        for page in self._get(ids, ["documents"]):
            found += page["ids"]
            texts += page["documents"]
        return found, texts

    def records(self, ids: Sequence[str]) -> dict[str, tuple[str, dict, np.ndarray]]:
        """id → (text, metadata, vector)."""
        return {id_: (text, meta or {}, np.asarray(vector, dtype=np.float32))
                for page in self._get(ids, ["documents", "metadatas", "embeddings"])
                for id_, text, meta, vector in
                zip(page["ids"], page["documents"], page["metadatas"], page["embeddings"])}

    def ids_of(self, doc_id: str) -> set[str]:
        return set(self._c.get(where={"doc_id": doc_id}, include=[])["ids"])

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), IDS_PER_REQUEST):
            self._c.delete(ids=list(ids[start:start + IDS_PER_REQUEST]))
        if ids:
            self._bump_generation()

    def delete_document(self, doc_id: str) -> int:
        ids = self.ids_of(doc_id)
        self.delete(sorted(ids))
        return len(ids)

    def generation(self) -> str | None:
        """The stamp of the last write, read fresh from the store (one metadata lookup, well under a millisecond,
        where listing the ids of 100k chunks takes ~0.2 s); None for a collection no write has stamped yet."""
        fresh = self._client.get_collection_by_id(self._c.id, embedding_function=None)
        return (fresh.metadata or {}).get(GENERATION_KEY)

    def _bump_generation(self) -> None:
        # After the write, never before: a reader that sees the new stamp then also sees the new chunks. A reader
        # that reads chunks between the write and the stamp just rebuilds once more. A writer killed in between
        # leaves the old stamp until its next (repairing) run writes again.
        current = self._client.get_collection_by_id(self._c.id, embedding_function=None).metadata or {}
        self._c.modify(metadata={**current, GENERATION_KEY: uuid.uuid4().hex})

    def query(self, vector: np.ndarray, k: int, where: dict | None = None) -> list[Hit]:
        # No count() guard: Chroma ≥ 1.0 answers an empty collection with no hits, and count() costs ~10 ms at 100k
        # chunks, three times the search itself.
        result = self._c.query(query_embeddings=[vector], n_results=k, where=where,
                               include=["documents", "metadatas", "distances"])
        return [Hit(id_, text, meta or {}, 1.0 - distance) for id_, text, meta, distance in
                zip(result["ids"][0], result["documents"][0], result["metadatas"][0], result["distances"][0])]

    def all_records(self, batch: int = 1000) -> Iterator[tuple[list[str], list[str], list[dict]]]:
        """Every (ids, texts, metadatas), page by page: the store holds the chunk texts, so nothing is re-read."""
        for offset in range(0, self.count(), batch):
            page = self._c.get(include=["documents", "metadatas"], limit=batch, offset=offset)
            yield page["ids"], page["documents"], page["metadatas"]

    def documents(self) -> dict[str, int]:
        """doc_id → number of chunks."""
        counts: dict[str, int] = {}
        for offset in range(0, self.count(), 5000):
            for meta in self._c.get(include=["metadatas"], limit=5000, offset=offset)["metadatas"]:
                counts[meta["doc_id"]] = counts.get(meta["doc_id"], 0) + 1
        return counts


class KnowledgeStore:
    def __init__(self, settings: Settings) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        self.server = settings.chroma_url
        if self.server:
            url = urlparse(self.server)
            try:
                self.client = chromadb.HttpClient(host=url.hostname or "localhost", port=url.port or 8000,
                                                  ssl=url.scheme == "https", settings=chroma_settings)
                self.client.heartbeat()
            except Exception as exc:  # chromadb raises many types for "cannot reach the server"
                raise StoreError(f"Could not reach the Chroma server at {self.server} ({type(exc).__name__}). Start "
                                 "it (`chroma run --path DIR --port N`) or unset ASSISTANT_CHROMA_URL.") from None
            self.where = self.server
            # Only where an earlier version kept this server's manifests: they are imported once (see manifest()).
            self.state_dir = settings.home / "manifests" / f"{url.hostname}_{url.port or 8000}"
        else:
            settings.store_dir.mkdir(parents=True, exist_ok=True)
            self.client = chromadb.PersistentClient(path=str(settings.store_dir), settings=chroma_settings)
            self.where = str(settings.store_dir)
            self.state_dir = settings.store_dir / "manifests"
        if not self.server:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = settings.store_dir / ".writer.lock" if not self.server else None
        self.home = settings.home

    @contextlib.contextmanager
    def writing(self, wait: float = WRITER_WAIT_SECONDS) -> Iterator[None]:
        """Hold the writer lock of an embedded store (a server serialises writers itself); a full disk met while
        writing is one NoSpace error."""
        with disk_full_as_error(self.home, f"writing to the store at {self.where}"):
            yield from self._locked(wait)

    def _locked(self, wait: float) -> Iterator[None]:
        if self._lock_file is None:
            yield
            return
        lock = FileLock(str(self._lock_file), timeout=wait)
        try:
            lock.acquire()
        except Timeout:
            raise StoreError(f"Another process is writing to the embedded store at {self.where} (waited {wait:.0f} s). "
                             "Wait for it to finish, or for concurrent writers run a Chroma server (`chroma run "
                             "--path DIR --port N`) and set ASSISTANT_CHROMA_URL.") from None
        try:
            yield
        finally:
            lock.release()

    def names(self) -> list[str]:
        """The knowledge bases (a server's manifest collections are not)."""
        return sorted(name for name in self._all_names() if not name.startswith(MANIFEST_PREFIX))

    def _all_names(self) -> set[str]:
        return {c.name if hasattr(c, "name") else str(c) for c in self.client.list_collections()}

    def get(self, name: str, embedder: str | None = None) -> Collection:
        """An existing collection; with `embedder`, refuse one built by a different embedder."""
        if name not in self.names():
            known = ", ".join(self.names()) or "none yet"
            if f"{name}{REINDEX_SUFFIX}" in self.names():
                raise StoreError(f"The knowledge base {name!r} is half-way through a `kb reindex` that was "
                                 f"interrupted. Finish it: `assistant kb reindex --collection {name}`.")
            raise StoreError(f"No knowledge base named {name!r} (known: {known}). Create it with "
                             f"`assistant ingest PATH --collection {name}`.")
        collection = Collection(self.client.get_collection(name), self)
        if embedder is not None and collection.embedder not in (None, embedder):
            raise StoreError(
                f"Knowledge base {name!r} was embedded with {collection.embedder}, but the configured embedder is "
                f"{embedder}. Mixing them would make search meaningless: run `assistant kb reindex --collection "
                f"{name}` to re-embed it with {embedder}, or set ASSISTANT_EMBEDDER back."
            )
        return collection

    def get_or_create(self, name: str, embedder: str, dimension: int) -> Collection:
        from chromadb.errors import ChromaError

        if name in self.names():
            return self.get(name, embedder)
        try:
            return Collection(self.client.create_collection(
                name, metadata={"embedder": embedder, "dimension": dimension},
                configuration={"hnsw": {"space": "cosine"}}, embedding_function=None,
            ), self)
        except ChromaError:  # "already exists": another machine created it a moment ago (else: re-raised)
            if name not in self.names():
                raise
            return self.get(name, embedder)

    def delete(self, name: str) -> None:
        self.client.delete_collection(name)

    def rename(self, old: str, new: str) -> None:
        self.client.get_collection(old).modify(name=new)

    def manifest(self, name: str) -> Manifest:
        """The ingestion manifest of knowledge base `name`, kept with the collection (see ingest/manifest.py)."""
        local = self.state_dir / f"{name}.sqlite"
        if not self.server:
            return LocalManifest(local)
        fresh = manifest_collection_name(name) not in self._all_names()
        manifest = ServerManifest(self.client, name)
        if fresh and local.exists():  # kept on this machine by a version before the manifest moved to the server
            with LocalManifest(local) as old:
                manifest.import_entries(old.entries())
            local.rename(local.with_suffix(".sqlite.imported"))
        return manifest
