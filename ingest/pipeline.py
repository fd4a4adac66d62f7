"""Incremental, crash-safe sync of files into a knowledge base.

Per run: unchanged files (same size and mtime, or same content hash) cost no reading or embedding; changed files get
their new chunks upserted and their stale chunks deleted; `prune` removes documents whose files are gone. The write
order that makes a killed run repairable is described in ingest/manifest.py. The changed files are loaded and
embedded here or by worker processes (ingest/prepare.py); a `Shard` takes one machine's share of the files, so
several machines can ingest one folder into one Chroma server.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from stat import S_ISREG

from assistant.config import Settings
from assistant.embeddings import Embedder, SentenceTransformerEmbedder
from assistant.errors import AssistantError, ConfigError
from ingest.chunking import document_id
from ingest.loaders import Failure
from ingest.manifest import Manifest
from ingest.prepare import Batch, Change, Preparer, worker_batches
from ingest.store import Collection, KnowledgeStore


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
                # Not only regular files: a broken link, a link loop or a pipe is reported as failed, not skipped.
                # (rglob does not descend into linked folders, so a link to a parent cannot loop the walk.)
                if not file.is_dir() and not any(part.startswith(".") for part in file.relative_to(path).parts):
                    found.append((file, path))
        elif path.is_file():
            found.append((path, path.parent))
        else:
            raise AssistantError(f"No such file or folder: {path}")
    return found


@dataclass(frozen=True)
class Shard:
    """This run's share of the files, `index` of `count` (1-based, as typed: `--shard 2/4`). A document belongs to
    one shard by a hash of its id, so every machine agrees without talking to the others, whatever order or subset
    of the folder each one lists."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match or not 1 <= int(match[1]) <= int(match[2]):
            raise ConfigError(f"--shard {text!r}: give i/N with 1 ≤ i ≤ N, e.g. 1/2 on one machine and 2/2 on the "
                              "other.")
        return cls(int(match[1]), int(match[2]))

    def __contains__(self, doc_id: str) -> bool:
        return int(hashlib.sha256(doc_id.encode()).hexdigest()[:12], 16) % self.count == self.index - 1


def embedder_name(settings: Settings) -> str:
    """The embedder's identity without loading it (so an all-unchanged run never loads a model)."""
    from assistant.embeddings import embedder_source

    return embedder_source(settings, check=False)[1]


class Ingestor:
    """`embedder`, when given, is used instead of the configured one (tests pass a fake); with workers, each
    worker gets a copy."""

    def __init__(self, settings: Settings, store: KnowledgeStore | None = None,
                 embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.store = store or KnowledgeStore(settings)
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = SentenceTransformerEmbedder.from_settings(self.settings)
        return self._embedder

    def run(self, paths: Sequence[str | Path], collection: str | None = None, prune: bool = False,
            progress: Progress | None = None, workers: int = 1, shard: Shard | None = None) -> IngestReport:
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, not {workers}.")
        started = time.perf_counter()
        files = [(path, doc_id) for path, root in discover(paths)
                 if (doc_id := document_id(path, root)) and (shard is None or doc_id in shard)]
        name = collection or self.settings.collection
        progress = progress or Progress()
        progress.on_start(len(files))
        with self.store.writing(), self.store.manifest(name) as manifest:
            run = _Run(self, name, manifest, progress)
            changes = [change for path, doc_id in files if (change := run.check(path, doc_id))]
            if workers == 1 or len(changes) <= 1:
                batches = Preparer(self.settings, lambda: self.embedder).batches(changes)
            else:
                batches = worker_batches(self.settings, changes, workers, self._embedder)
            run.write(batches)
            if prune:
                run.prune(shard)
        run.report.seconds = time.perf_counter() - started
        return run.report


class _Run:
    """One ingest run: the open collection and manifest, the report."""

    def __init__(self, ingestor: Ingestor, name: str, manifest: Manifest, progress: Progress) -> None:
        self.store = ingestor.store
        self.name = name
        self.progress = progress
        self.report = IngestReport(name)
        self.seen: set[str] = set()
        self.manifest = manifest
        self.identity = embedder_name(ingestor.settings)
        self.collection: Collection | None = (self.store.get(name, self.identity) if name in self.store.names()
                                              else None)
        self.manifest.bind_to(self.collection.uid if self.collection else "none")

    def check(self, path: Path, doc_id: str) -> Change | None:
        """The file as a Change when its content is new to the manifest; None (and reported) when unchanged."""
        self.seen.add(doc_id)
        try:
            stat = path.stat()
            if not S_ISREG(stat.st_mode):  # a pipe would block the read forever; a device never ends
                return self._failed(doc_id, Failure.NOT_A_FILE, "a pipe, socket or device, not a regular file")
            entry = self.manifest.get(doc_id)
            if entry and entry.done and (entry.size, entry.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
                return self._finished(FileResult(doc_id, "unchanged", len(entry.chunk_ids)))
            data_hash = _sha256(path)
        except OSError as exc:  # permission denied, a broken link or a link loop, an I/O error
            return self._failed(doc_id, Failure.UNREADABLE, f"{exc.strerror or exc}; check the file and its "
                                "permissions")
        if entry and entry.done and entry.sha256 == data_hash:
            self.manifest.touch(doc_id, stat.st_size, stat.st_mtime_ns)
            return self._finished(FileResult(doc_id, "unchanged", len(entry.chunk_ids)))
        return Change(path, doc_id, stat.st_size, stat.st_mtime_ns, data_hash, known=entry is not None)

    def write(self, batches: Iterator[Batch]) -> None:
        """Per batch: mark its documents pending, write their chunks, drop their stale chunks, then (only then)
        mark them done."""
        for batch in batches:
            stored = [loaded for loaded in batch.files if loaded.failure is None]
            for loaded in batch.files:
                if loaded.failure is not None:
                    self._finished(FileResult(loaded.change.doc_id, "failed", reason=loaded.failure[0],
                                              detail=loaded.failure[1]))
            if not stored:
                continue
            collection = self._ensure_collection(batch.dimension)  # before `begin`: creating it resets the manifest
            for loaded in stored:
                change = loaded.change
                self.manifest.begin(change.doc_id, str(change.path.resolve()), change.size, change.mtime_ns,
                                    change.sha256, [c.id for c in loaded.chunks])
            chunks = [chunk for loaded in stored for chunk in loaded.chunks]
            collection.upsert([c.id for c in chunks], batch.vectors, [c.text for c in chunks],
                              [c.metadata for c in chunks])
            self.report.embedded_chunks += len(chunks)
            self.progress.on_embedded(len(chunks))
            for loaded in stored:
                stale = collection.ids_of(loaded.change.doc_id) - {c.id for c in loaded.chunks}
                collection.delete(sorted(stale))
            self.manifest.finish([loaded.change.doc_id for loaded in stored])
            for loaded in stored:
                status = "updated" if loaded.change.known else "added"
                self._finished(FileResult(loaded.change.doc_id, status, len(loaded.chunks)))

    def _ensure_collection(self, dimension: int) -> Collection:
        if self.collection is None:
            self.collection = self.store.get_or_create(self.name, self.identity, dimension)
            self.manifest.bind_to(self.collection.uid)
        return self.collection

    def prune(self, shard: Shard | None) -> None:
        """Remove the documents (of this shard) whose files were not seen."""
        if self.collection is None:
            return
        known = {entry.doc_id for entry in self.manifest.entries()} | set(self.collection.documents())
        for doc_id in sorted(known - self.seen):
            if shard is None or doc_id in shard:
                removed = self.collection.delete_document(doc_id)
                self.manifest.remove(doc_id)
                self._finished(FileResult(doc_id, "removed", removed))

    def _failed(self, doc_id: str, reason: Failure, detail: str) -> None:
        self._finished(FileResult(doc_id, "failed", reason=reason.value, detail=detail))

    def _finished(self, result: FileResult) -> None:
        self.report.results.append(result)
        self.progress.on_file(result)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
