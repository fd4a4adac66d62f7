"""Incremental, crash-safe sync of files into a knowledge base.

Per run: unchanged files (same size and mtime, or same content hash) cost no reading or embedding; changed files get
their new chunks upserted and their stale chunks deleted; `prune` removes documents whose files are gone. The write
order that makes a killed run repairable is described in ingest/manifest.py.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from assistant.config import Settings
from assistant.embeddings import Embedder, SentenceTransformerEmbedder
from assistant.errors import AssistantError
from ingest.chunking import Chunk, Chunker, document_id
from ingest.loaders import Failure, Limits, LoadError, load_file
from ingest.manifest import Manifest
from ingest.store import Collection, KnowledgeStore

EMBED_BATCH_CHUNKS = 256  # chunks gathered across small files before one embedding call: batches stay full


@dataclass(frozen=True)
class FileResult:
    doc_id: str
    status: str  # added | updated | unchanged | removed | failed
    chunks: int = 0
    reason: str | None = None  # a Failure value when failed
    detail: str | None = None


@dataclass
class IngestReport:
    collection: str
    results: list[FileResult] = field(default_factory=list)
    embedded_chunks: int = 0
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(result.status == status for result in self.results)

    @property
    def failed(self) -> list[FileResult]:
        return [result for result in self.results if result.status == "failed"]

    def to_dict(self) -> dict:
        counts = {s: self.count(s) for s in ("added", "updated", "unchanged", "removed", "failed")}
        return {"collection": self.collection, **counts, "embedded_chunks": self.embedded_chunks,
                "seconds": round(self.seconds, 3), "files": [asdict(r) for r in self.results]}


@dataclass
class Progress:
    """Callbacks the CLI and the UI use to show progress; all optional."""

    on_start: Callable[[int], None] = lambda total_files: None
    on_file: Callable[[FileResult], None] = lambda result: None
    on_embedded: Callable[[int], None] = lambda chunks: None


def discover(paths: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(file, root) pairs; a folder is walked recursively, hidden files and folders skipped."""
    found: list[tuple[Path, Path]] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                if file.is_file() and not any(part.startswith(".") for part in file.relative_to(path).parts):
                    found.append((file, path))
        elif path.is_file():
            found.append((path, path.parent))
        else:
            raise AssistantError(f"No such file or folder: {path}")
    return found


def embedder_name(settings: Settings) -> str:
    """The embedder's identity without loading it (so an all-unchanged run never loads a model)."""
    from assistant.embeddings import embedder_source

    return embedder_source(settings, check=False)[1]


class Ingestor:
    def __init__(self, settings: Settings, store: KnowledgeStore | None = None,
                 embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.store = store or KnowledgeStore(settings)
        self._embedder = embedder
        self.limits = Limits(int(settings.max_file_mb * 2**20), int(settings.max_unpacked_mb * 2**20),
                             settings.max_archive_entries)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = SentenceTransformerEmbedder.from_settings(self.settings)
        return self._embedder

    def run(self, paths: Sequence[str | Path], collection: str | None = None, prune: bool = False,
            progress: Progress | None = None) -> IngestReport:
        started = time.perf_counter()
        files = discover(paths)
        name = collection or self.settings.collection
        progress = progress or Progress()
        progress.on_start(len(files))
        with self.store.writing(), Manifest(self.store.manifest_path(name)) as manifest:
            run = _Run(self, name, manifest, progress)
            for path, root in files:
                run.file(path, document_id(path, root))
            run.flush()
            if prune:
                run.prune()
        run.report.seconds = time.perf_counter() - started
        return run.report


class _Run:
    """One ingest run: the open collection and manifest, the batch being gathered, the report."""

    def __init__(self, ingestor: Ingestor, name: str, manifest: Manifest, progress: Progress) -> None:
        self.ingestor = ingestor
        self.store = ingestor.store
        self.name = name
        self.progress = progress
        self.report = IngestReport(name)
        self.seen: set[str] = set()
        self.batch: list[tuple[FileResult, list[Chunk]]] = []
        self.manifest = manifest
        identity = embedder_name(ingestor.settings)
        self.collection: Collection | None = self.store.get(name, identity) if name in self.store.names() else None
        self.manifest.bind_to(self.collection.uid if self.collection else "none")
        self._chunker: Chunker | None = None

    def file(self, path: Path, doc_id: str) -> None:
        self.seen.add(doc_id)
        stat = path.stat()
        entry = self.manifest.get(doc_id)
        if entry and entry.done and (entry.size, entry.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            return self._finished(FileResult(doc_id, "unchanged", len(entry.chunk_ids)))
        data_hash = _sha256(path)
        if entry and entry.done and entry.sha256 == data_hash:
            self.manifest.touch(doc_id, stat.st_size, stat.st_mtime_ns)
            return self._finished(FileResult(doc_id, "unchanged", len(entry.chunk_ids)))
        try:
            sections = load_file(path, self.ingestor.limits)
        except LoadError as exc:
            return self._finished(FileResult(doc_id, "failed", reason=exc.reason.value, detail=exc.detail))
        except Exception as exc:  # a parser choking on odd input must not stop the run
            return self._finished(FileResult(doc_id, "failed", reason=Failure.CORRUPT.value,
                                             detail=f"{type(exc).__name__}: {exc}"))
        chunks = self.chunker.chunk(doc_id, sections)
        self.ensure_collection()  # before `begin`: creating it re-binds (and so resets) the manifest
        self.manifest.begin(doc_id, str(path.resolve()), stat.st_size, stat.st_mtime_ns, data_hash,
                            [c.id for c in chunks])
        status = "updated" if entry else "added"
        self.batch.append((FileResult(doc_id, status, len(chunks)), chunks))
        if sum(len(c) for _, c in self.batch) >= EMBED_BATCH_CHUNKS:
            self.flush()

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            settings = self.ingestor.settings
            self._chunker = Chunker(settings.chunk_size, settings.chunk_overlap, self.ingestor.embedder.tokenize)
        return self._chunker

    def ensure_collection(self) -> Collection:
        if self.collection is None:
            embedder = self.ingestor.embedder
            self.collection = self.store.get_or_create(self.name, embedder_name(self.ingestor.settings),
                                                       embedder.dimension)
            self.manifest.bind_to(self.collection.uid)
        return self.collection

    def flush(self) -> None:
        """Embed and write the gathered documents, drop their stale chunks, then (only then) mark them done."""
        if not self.batch:
            return
        collection = self.ensure_collection()
        chunks = [chunk for _, file_chunks in self.batch for chunk in file_chunks]
        vectors = self.ingestor.embedder.embed([c.text for c in chunks])
        collection.upsert([c.id for c in chunks], vectors, [c.text for c in chunks], [c.metadata for c in chunks])
        self.report.embedded_chunks += len(chunks)
        self.progress.on_embedded(len(chunks))
        for result, file_chunks in self.batch:
            stale = collection.ids_of(result.doc_id) - {c.id for c in file_chunks}
            collection.delete(sorted(stale))
        self.manifest.finish([result.doc_id for result, _ in self.batch])
        for result, _ in self.batch:
            self._finished(result)
        self.batch = []

    def prune(self) -> None:
        if self.collection is None:
            return
        known = {entry.doc_id for entry in self.manifest.entries()} | set(self.collection.documents())
        for doc_id in sorted(known - self.seen):
            removed = self.collection.delete_document(doc_id)
            self.manifest.remove(doc_id)
            self._finished(FileResult(doc_id, "removed", removed))

    def _finished(self, result: FileResult) -> None:
        self.report.results.append(result)
        self.progress.on_file(result)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
