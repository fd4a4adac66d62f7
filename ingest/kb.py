"""Managing knowledge bases: list, inspect, remove a document, re-embed with another embedder."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Annotated

from pydantic import TypeAdapter, ValidationError

from assistant.config import Settings
from assistant.embeddings import Embedder, SentenceTransformerEmbedder
from assistant.errors import ConfigError, StoreError
from ingest.pipeline import embedder_name
from ingest.salvage import salvage_records
from ingest.server_manifest import MANIFEST_PREFIX
from ingest.store import REINDEX_SUFFIX, DamagedIndex, KnowledgeStore


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    embedder: str | None
    documents: dict[str, int]  # doc_id → chunks

    @property
    def chunks(self) -> int:
        return sum(self.documents.values())


# The same rule as the `collection` setting (Chroma's naming rule), for names typed at run time (the web app).
_COLLECTION_NAME = TypeAdapter(Annotated[(str, *Settings.model_fields["collection"].metadata)])


def check_collection_name(name: str) -> str:
    """`name` if it is a valid knowledge-base name (it also names folders under the data home), else ConfigError."""
    try:
        _COLLECTION_NAME.validate_python(name)
    except ValidationError:
        raise ConfigError(f"{name!r} is not a valid knowledge base name: use 3-63 letters, digits, '.', '_' or '-', "
                          "starting and ending with a letter or digit.") from None
    if ".." in name or name.endswith(REINDEX_SUFFIX) or name.startswith(MANIFEST_PREFIX):
        raise ConfigError(f"{name!r} is not a valid knowledge base name: no '..', no {REINDEX_SUFFIX!r} ending and "
                          f"no {MANIFEST_PREFIX!r} beginning.")
    return name


def collection_names(settings: Settings) -> list[str]:
    """The knowledge bases in the store, without the staging copies of a reindex in progress."""
    return [name for name in KnowledgeStore(settings).names() if not name.endswith(REINDEX_SUFFIX)]


def collection_info(settings: Settings, name: str) -> CollectionInfo | None:
    """One knowledge base's documents with chunk counts; None when there is none of that name yet."""
    store = KnowledgeStore(settings)
    if name not in store.names():
        return None
    collection = store.get(name)
    return CollectionInfo(name, collection.embedder, collection.documents())


def list_collections(settings: Settings) -> list[CollectionInfo]:
    store = KnowledgeStore(settings)
    infos = []
    for name in store.names():
        collection = store.get(name)
        infos.append(CollectionInfo(name, collection.embedder, collection.documents()))
    return infos


def stats(settings: Settings, name: str) -> dict:
    store = KnowledgeStore(settings)
    collection = store.get(name)
    documents = collection.documents()
    with store.manifest(name) as manifest:
        pending = [entry.doc_id for entry in manifest.entries() if not entry.done]
    return {"collection": name, "store": store.where, "embedder": collection.embedder,
            "dimension": collection.dimension, "documents": len(documents),
            "chunks": collection.count(), "largest_documents": sorted(documents.items(), key=lambda kv: -kv[1])[:5],
            "interrupted_documents": pending}


def remove_document(settings: Settings, name: str, doc_id: str) -> int:
    """Delete one document's chunks and forget it; returns how many chunks went."""
    store = KnowledgeStore(settings)
    with store.writing():
        collection = store.get(name)
        documents = collection.documents()
        if doc_id not in documents:
            close = difflib.get_close_matches(doc_id, list(documents), n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else " `assistant kb list` shows them."
            raise StoreError(f"No document {doc_id!r} in knowledge base {name!r}.{hint}")
        # The manifest first: a removal killed in between leaves chunks the next ingest or removal finds. (The other
        # order left a manifest saying "done" for chunks that were gone, and the next ingest skipped the file.)
        with store.manifest(name) as manifest:
            manifest.remove(doc_id)
        return collection.delete_document(doc_id)


def reindex(settings: Settings, name: str, embedder: Embedder | None = None) -> int:
    """Re-embed every stored chunk with the configured embedder, into a new collection that replaces the old one
    only once it is complete: an interrupted reindex leaves the old knowledge base as it was. This is also the repair
    of an embedded knowledge base whose vector index Chroma cannot load: its chunks are then read from the SQLite
    file they are kept in."""
    store = KnowledgeStore(settings)
    embedder = embedder or SentenceTransformerEmbedder.from_settings(settings)
    identity = embedder_name(settings)
    staging = f"{name}{REINDEX_SUFFIX}"
    with store.writing():
        finished = name not in store.names() and staging in store.names()
        if finished:  # a reindex killed between deleting the old collection and renaming the new, complete one
            _replace(store, staging, name)
        old = store.get(name)
        if finished and old.embedder == identity:
            return old.count()
        if staging in store.names():
            store.delete(staging)  # left over from an interrupted reindex
        try:
            expected, records = old.count(), old.all_records()
        except DamagedIndex:
            if store.server:
                raise
            records = list(salvage_records(settings.store_dir, old.uid))
            expected = sum(len(ids) for ids, _, _ in records)
        new = store.get_or_create(staging, identity, embedder.dimension)
        for ids, texts, metadatas in records:
            new.upsert(ids, embedder.embed(texts), texts, metadatas)
        if new.count() != expected:
            raise StoreError(f"Reindexing {name!r} copied {new.count()} of {expected} chunks; the old knowledge "
                             "base is untouched. Try again.")
        store.delete(name)
        _replace(store, staging, name)
        return new.count()


def _replace(store: KnowledgeStore, staging: str, name: str) -> None:
    store.rename(staging, name)
    with store.manifest(name) as manifest:
        manifest.bind_to(store.get(name).uid, keep=True)  # same chunk ids, new vectors
