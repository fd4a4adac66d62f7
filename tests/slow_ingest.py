"""Run by the crash-safety tests in a subprocess that gets SIGKILLed: an ingest that writes in many small, slow steps
and announces each embedding call (with the pid of the process making it), so a test can kill the ingest, or one of
its workers, in the middle of writing. Usage: python -m tests.slow_ingest FOLDER [WORKERS]."""

from __future__ import annotations

import sys

from assistant.config import load_settings
from ingest import pipeline, prepare
from tests.fakes import SlowEmbedder

if __name__ == "__main__":
    prepare.EMBED_BATCH_CHUNKS = 4  # many flushes: many points to be killed between (in this process only)
    settings = load_settings(chunk_size=40, chunk_overlap=8)
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    report = pipeline.Ingestor(settings, embedder=SlowEmbedder()).run([sys.argv[1]], prune=True, workers=workers)
    print("finished", report.to_dict()["added"], flush=True)
