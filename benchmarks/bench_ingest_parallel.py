"""`assistant ingest --workers N` (issue 15): chunks/s for 1, 2 and 4 workers into a loopback `chroma run`, and for 1
and 2 workers into the embedded store, on the corpus of bench_ingest.py with the bundled MiniLM. Each run starts
cold (a fresh collection; the model is loaded inside the timed run, as `assistant ingest` does) and reports where
the writer's time goes: writes to the store and the manifest, against waiting for chunks to be embedded.

    .venv/bin/python benchmarks/bench_ingest_parallel.py [--files 400]

Prints a Markdown table for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_ingest import machine, make_corpus  # noqa: E402
from ingest import manifest, server_manifest, store  # noqa: E402
from tests.chroma_server import start_chroma  # noqa: E402

WRITE_SECONDS = [0.0]  # time the one writer spent in store and manifest calls, summed over a run


def timed(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            WRITE_SECONDS[0] += time.perf_counter() - started
    return wrapper


for cls, names in [(store.Collection, ("upsert", "delete", "ids_of")),
                   (manifest.LocalManifest, ("begin", "finish", "get", "touch")),
                   (server_manifest.ServerManifest, ("begin", "finish", "get", "touch"))]:
    for name in names:
        setattr(cls, name, timed(getattr(cls, name)))


def ingest(corpus: Path, home: Path, url: str | None, workers: int, collection: str) -> dict:
    from assistant.config import load_settings
    from ingest.pipeline import Ingestor

    if url:
        os.environ["ASSISTANT_CHROMA_URL"] = url
    else:
        os.environ.pop("ASSISTANT_CHROMA_URL", None)
    settings = load_settings(home=home, collection=collection)
    WRITE_SECONDS[0] = 0.0
    report = Ingestor(settings).run([corpus], workers=workers)
    assert not report.failed, report.failed[:3]
    return {"seconds": report.seconds, "chunks": report.embedded_chunks, "writes": WRITE_SECONDS[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=400)
    args = parser.parse_args()
    started_on = machine()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-parallel-") as scratch:
        work = Path(scratch)
        corpus = work / "corpus"
        make_corpus(corpus, args.files)
        server, url = start_chroma(work / "chroma")
        try:
            runs = []
            for where, workers in [("server", 1), ("server", 2), ("server", 4), ("embedded", 1), ("embedded", 2)]:
                print(f"[bench] {where}, {workers} worker(s) …", file=sys.stderr, flush=True)
                result = ingest(corpus, work / f"home-{where}-{workers}", url if where == "server" else None,
                                workers, f"bench-{where}-{workers}")
                runs.append((where, workers, result))
        finally:
            server.terminate()
            server.wait(timeout=60)
    base = {where: result for where, workers, result in runs if workers == 1}
    lines = [f"### Parallel ingestion, {datetime.date.today().isoformat()}", "",
             f"{started_on}. Corpus: bench_ingest.py's first {args.files} files; all-MiniLM-L6-v2 at the default "
             "settings; every run cold (model load and, with workers, process start and imports inside the time).", "",
             "| store | workers | wall s | chunks | chunks/s | speed-up vs 1 worker | scaling efficiency "
             "| writer's time in writes |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for where, workers, r in runs:
        speed = base[where]["seconds"] / r["seconds"]
        lines.append(f"| {where} | {workers} | {r['seconds']:.1f} | {r['chunks']:,} | {r['chunks'] / r['seconds']:.1f} "
                     f"| {speed:.2f}× | {speed / workers:.0%} | {r['writes']:.1f} s "
                     f"({r['writes'] / r['seconds']:.0%}) |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
