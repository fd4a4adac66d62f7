"""Changed files → embedded chunks, in this process or in a pool of worker processes.

This is where ingestion spends its time (loading, chunking and, above all, embedding), and the only part that runs in
parallel: writing to the store and to the manifest stays with the one process that holds them (ingest/pipeline.py),
so the crash-safe write order is the same with 1 or N workers, and an embedded store, which is unsafe for two writer
processes, works with workers too. Workers are spawned (not forked: torch's thread pools do not survive a fork),
load the embedder once, and split the CPU's cores between them, so N workers never oversubscribe the machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from assistant.config import Settings
from assistant.cpu import usable_cores
from assistant.embeddings import Embedder, SentenceTransformerEmbedder
from assistant.errors import AssistantError
from ingest.chunking import Chunk, Chunker
from ingest.loaders import Failure, Limits, LoadError, load_file

EMBED_BATCH_CHUNKS = 256  # chunks gathered across small files before one embedding call: batches stay full
GROUP_FILES = 64  # at most this many files per task sent to a worker …
GROUPS_PER_WORKER = 4  # … and at least this many tasks per worker while there are files enough: shares stay even


@dataclass(frozen=True)
class Change:
    """A file whose content the manifest does not hold yet."""

    path: Path
    doc_id: str
    size: int
    mtime_ns: int
    sha256: str
    known: bool  # the manifest had an older version: "updated", else "added"


@dataclass(frozen=True)
class Loaded:
    change: Change
    chunks: list[Chunk] = field(default_factory=list)
    failure: tuple[str, str] | None = None  # (Failure value, detail) when the file could not be read


@dataclass(frozen=True)
class Batch:
    """Files ready to write: their chunks' vectors in file order, and the embedder's dimension."""

    files: list[Loaded]
    vectors: np.ndarray
    dimension: int


def limits_of(settings: Settings) -> Limits:
    return Limits(int(settings.max_file_mb * 2**20), int(settings.max_unpacked_mb * 2**20),
                  settings.max_archive_entries)


class Preparer:
    """Load, chunk and embed in this process; the embedder is loaded only once a file needs it."""

    def __init__(self, settings: Settings, embedder: Callable[[], Embedder]) -> None:
        self.settings = settings
        self.limits = limits_of(settings)
        self._embedder = embedder
        self._chunker: Chunker | None = None

    def batches(self, changes: Iterable[Change]) -> Iterator[Batch]:
        pending: list[Loaded] = []
        for change in changes:
            pending.append(self._load(change))
            if sum(len(loaded.chunks) for loaded in pending) >= EMBED_BATCH_CHUNKS:
                yield self._embed(pending)
                pending = []
        if pending:
            yield self._embed(pending)

    def _load(self, change: Change) -> Loaded:
        try:
            sections = load_file(change.path, self.limits)
        except LoadError as exc:
            return Loaded(change, failure=(exc.reason.value, exc.detail))
        except Exception as exc:  # a parser choking on odd input must not stop the run
            return Loaded(change, failure=(Failure.CORRUPT.value, f"{type(exc).__name__}: {exc}"))
        if self._chunker is None:
            self._chunker = Chunker(self.settings.chunk_size, self.settings.chunk_overlap,
                                    self._embedder().tokenize)
        return Loaded(change, self._chunker.chunk(change.doc_id, sections))

    def _embed(self, files: list[Loaded]) -> Batch:
        texts = [chunk.text for loaded in files for chunk in loaded.chunks]
        if not texts:  # only failures: no need to load a model for them
            return Batch(files, np.zeros((0, 0), dtype=np.float32), 0)
        embedder = self._embedder()
        return Batch(files, embedder.embed(texts), embedder.dimension)


def worker_batches(settings: Settings, changes: list[Change], workers: int,
                   embedder: Embedder | None = None) -> Iterator[Batch]:
    """As Preparer.batches, by `workers` processes; batches come back in file order."""
    context = get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(settings, embedder, _threads_per_worker(workers))) as pool:
        try:
            for batches in pool.map(_prepare_group, _groups(changes, workers)):
                yield from batches
        except BrokenProcessPool:
            raise AssistantError("An ingestion worker stopped unexpectedly (killed, or out of memory). Documents "
                                 "already stored are kept; run the same command again to finish the rest.") from None
        finally:  # stopped early (an error, or the consumer gave up): drop the queued groups, do not run them
            pool.shutdown(cancel_futures=True)


def _groups(changes: list[Change], workers: int) -> list[list[Change]]:
    size = max(1, min(GROUP_FILES, -(-len(changes) // (workers * GROUPS_PER_WORKER))))
    return [changes[start:start + size] for start in range(0, len(changes), size)]


def _threads_per_worker(workers: int) -> int:
    return max(1, usable_cores() // workers)


_worker: Preparer | None = None  # one per worker process, made by _start_worker


def _start_worker(settings: Settings, embedder: Embedder | None, threads: int) -> None:
    global _worker
    loaded: list[Embedder] = [embedder] if embedder is not None else []

    def get_embedder() -> Embedder:
        if not loaded:
            import torch

            torch.set_num_threads(threads)
            loaded.append(SentenceTransformerEmbedder.from_settings(settings))
        return loaded[0]

    _worker = Preparer(settings, get_embedder)


def _prepare_group(changes: list[Change]) -> list[Batch]:
    assert _worker is not None, "called outside a worker started by worker_batches"
    return list(_worker.batches(changes))
