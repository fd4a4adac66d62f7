"""Run by test_crash_safety in a subprocess that gets SIGKILLed: an ingest that writes in many small, slow steps
and announces each embedding call, so the test can kill it in the middle of writing."""

from __future__ import annotations

import sys
import time

from assistant.config import load_settings
from ingest import pipeline
from tests.fakes import HashingEmbedder


class SlowEmbedder(HashingEmbedder):
    def embed(self, texts):
        print("embedding", flush=True)
        time.sleep(0.02)
        return super().embed(texts)


if __name__ == "__main__":
    pipeline.EMBED_BATCH_CHUNKS = 4  # many flushes: many points to be killed between
    settings = load_settings(chunk_size=40, chunk_overlap=8)
    report = pipeline.Ingestor(settings, embedder=SlowEmbedder()).run([sys.argv[1]], prune=True)
    print("finished", report.to_dict()["added"], flush=True)
