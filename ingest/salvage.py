"""Reading a knowledge base's chunks straight from an embedded Chroma's SQLite file, when Chroma cannot load the
collection's vector index (DamagedIndex) and so refuses every read.

Chroma keeps each chunk's text and metadata in its SQLite metadata segment, written in transactions, and the vectors
in an HNSW index beside it; only the index can be left half-written by a kill. The chunks read here are re-embedded
by `kb reindex`, which rebuilds the index. This reads Chroma's own tables (the layout of chromadb 1.x), read-only, and
refuses when the layout is not the one it knows or the metadata segment has not caught up with the write log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from assistant.errors import StoreError

DOCUMENT_KEY = "chroma:document"  # the metadata key under which Chroma stores a record's text


def salvage_records(store_dir: Path, collection_uid: str, batch: int = 1000
                    ) -> Iterator[tuple[list[str], list[str], list[dict]]]:
    """Every (ids, texts, metadatas) of the collection, page by page, like `Collection.all_records`."""
    db = sqlite3.connect(f"file:{store_dir / 'chroma.sqlite3'}?mode=ro", uri=True)
    try:
        segment = _metadata_segment(db, collection_uid)
        rows = db.execute("SELECT id, embedding_id FROM embeddings WHERE segment_id = ? ORDER BY id", (segment,))
        while page := rows.fetchmany(batch):
            keys = [key for key, _ in page]
            values: dict[int, dict] = {key: {} for key in keys}
            marks = ",".join("?" * len(keys))
            for key, name, text, integer, real, boolean in db.execute(
                    f"SELECT id, key, string_value, int_value, float_value, bool_value FROM embedding_metadata "
                    f"WHERE id IN ({marks})", keys):
                values[key][name] = next((v for v in (text, integer, real) if v is not None),
                                         None if boolean is None else bool(boolean))
            texts = [values[key].pop(DOCUMENT_KEY, "") for key in keys]
            yield [chunk_id for _, chunk_id in page], texts, [values[key] for key in keys]
    except sqlite3.Error as exc:
        raise StoreError(f"Could not read the chunks from {store_dir} ({exc}): this chromadb keeps them in a way this "
                         "version does not know. Re-ingest the documents into a new knowledge base.") from None
    finally:
        db.close()


def _metadata_segment(db: sqlite3.Connection, collection_uid: str) -> str:
    found = db.execute("SELECT id FROM segments WHERE collection = ? AND scope = 'METADATA'",
                       (collection_uid,)).fetchone()
    if found is None:
        raise sqlite3.Error(f"no metadata segment for collection {collection_uid}")
    segment = found[0]
    # Chroma applies the write log to the metadata segment before the index (and in one transaction), so after a
    # failed read it has normally caught up; if not, the log holds chunks these tables lack and salvaging would lose
    # them.
    applied = db.execute("SELECT seq_id FROM max_seq_id WHERE segment_id = ?", (segment,)).fetchone()
    logged = db.execute("SELECT MAX(seq_id) FROM embeddings_queue WHERE topic LIKE ?",
                        (f"%/{collection_uid}",)).fetchone()
    if logged[0] is not None and (applied is None or int(applied[0]) < logged[0]):
        raise StoreError("Chroma's metadata for this knowledge base is behind its write log, so its chunks cannot "
                         "be salvaged whole. Re-ingest the documents into a new knowledge base.")
    return segment
