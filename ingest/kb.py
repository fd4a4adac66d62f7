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
from ingest.server_manifest import MANIFEST_PREFIX
from ingest.store import KnowledgeStore

REINDEX_SUFFIX = "-reindexing"


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
        removed = collection.delete_document(doc_id)
        with store.manifest(name) as manifest:
            manifest.remove(doc_id)
    return removed


def reindex(settings: Settings, name: str, embedder: Embedder | None = None) -> int:
    """Re-embed every stored chunk with the configured embedder, into a new collection that replaces the old one
    only once it is complete: an interrupted reindex leaves the old knowledge base as it was."""
    store = KnowledgeStore(settings)
    embedder = embedder or SentenceTransformerEmbedder.from_settings(settings)
    identity = embedder_name(settings)
    staging = f"{name}{REINDEX_SUFFIX}"
    with store.writing():
        old = store.get(name)
        if staging in store.names():
            store.delete(staging)  # left over from an interrupted reindex
        new = store.get_or_create(staging, identity, embedder.dimension)
        for ids, texts, metadatas in old.all_records():
            new.upsert(ids, embedder.embed(texts), texts, metadatas)
        if new.count() != old.count():
            raise StoreError(f"Reindexing {name!r} copied {new.count()} of {old.count()} chunks; the old knowledge "
                             "base is untouched. Try again.")
        store.delete(name)
        store.rename(staging, name)
        with store.manifest(name) as manifest:
            manifest.bind_to(store.get(name).uid, keep=True)  # same chunk ids, new vectors
        return new.count()
