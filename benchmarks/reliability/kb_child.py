"""The child process kill_kb.py SIGKILLs, and the fresh process it checks the store from (a process that has
read a Chroma store keeps parts of it in memory, so each check starts clean).

    python benchmarks/reliability/kb_child.py reindex | remove DOC_ID | ingest FOLDER | check

`reindex`, `remove` and `ingest` print "start" once the store is open, then do the real `kb reindex` (with the tests'
hashing embedder, announcing each call), `kb remove`, or an ingest of FOLDER (no pruning: other folders' documents
stay), writing 4 chunks at a time. `check` prints JSON: the knowledge bases, doc_id → chunk ids, the
manifest's entries not done, and `damaged` (the DamagedIndex message) when Chroma cannot read the index.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from assistant.config import load_settings  # noqa: E402
from ingest import kb, pipeline, prepare  # noqa: E402
from ingest.store import DamagedIndex, KnowledgeStore  # noqa: E402
from tests.fakes import SlowEmbedder  # noqa: E402

SETTINGS = dict(chunk_size=40, chunk_overlap=8)  # what tests/slow_ingest.py ingests with


def check() -> dict:
    settings = load_settings(**SETTINGS)
    store = KnowledgeStore(settings)
    result: dict = {"names": store.names()}
    try:
        documents: dict[str, list[str]] = {}
        records = store.get(settings.collection).all_records() if settings.collection in result["names"] else []
        for ids, _, metadatas in records:  # (no knowledge base yet: a writer has not created it)
            for chunk_id, meta in zip(ids, metadatas):
                documents.setdefault(meta["doc_id"], []).append(chunk_id)
        result["documents"] = {doc: sorted(ids) for doc, ids in documents.items()}
    except DamagedIndex as exc:
        result["damaged"] = str(exc)
    except Exception as exc:  # noqa: BLE001  (what the check reports is whatever stops the read)
        result["unreadable"] = f"{type(exc).__name__}: {exc}"
    with store.manifest(settings.collection) as manifest:
        result["not_done"] = [entry.doc_id for entry in manifest.entries() if not entry.done]
    return result


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "check":
        print(json.dumps(check()))
        sys.exit(0)
    settings = load_settings(**SETTINGS)
    KnowledgeStore(settings)  # open it (and import everything) before "start", so kills land in the work itself
    print("start", flush=True)
    if command == "reindex":
        print("reindexed", kb.reindex(settings, settings.collection, embedder=SlowEmbedder()), flush=True)
    elif command == "remove":
        print("removed", kb.remove_document(settings, settings.collection, sys.argv[2]), flush=True)
    elif command == "ingest":
        prepare.EMBED_BATCH_CHUNKS = 4
        report = pipeline.Ingestor(settings, embedder=SlowEmbedder()).run([sys.argv[2]])
        print("ingested", report.count("added") + report.count("updated"), flush=True)
