"""Ingestion benchmark: our pipeline against a plain llama-index pipeline, same corpus, same embedder model.

    .venv/bin/python benchmarks/bench_ingest.py [--files 1000] [--workdir DIR] [--skip-baseline]

Prints a Markdown table for docs/BENCHMARKS.md on stdout (progress goes to stderr). Each phase runs in its own
subprocess of this script (--phase), so every peak RSS is that phase's alone and no phase inherits a warm model.
The baseline needs the `bench` extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any Hugging Face import: nothing is ever downloaded

THINGS = ["router", "mesh satellite", "guest network", "firmware", "admin panel", "mobile app", "VPN server",
          "parental controls", "port forwarding rule", "USB drive share", "WAN port", "DNS setting", "backup file",
          "Wi-Fi schedule", "device list", "security log", "QoS profile", "IPv6 tunnel"]
ACTIONS = ["install", "configure", "reset", "update", "restart", "export", "restore", "enable", "disable", "rename"]
PLACES = ["Advanced → Network", "Settings → System", "the Nimbus app", "Wireless → Security",
          "Devices → Manage", "the admin panel's home page", "Administration → Maintenance"]
SENTENCES = [
    "To {action} the {thing}, open {place} and select the option that matches your setup.",
    "If the {thing} does not respond after {n} minutes, unplug the router, wait ten seconds and try again.",
    "The {thing} keeps its settings across restarts, so you only need to {action} it once.",
    "Administrators can {action} the {thing} for every user at once from {place}.",
    "Before you {action} the {thing}, make sure the router runs firmware {version} or later.",
    "A red status light usually means that the {thing} lost its connection to the internet provider.",
    "This change takes effect within {n} minutes and does not interrupt calls or video streams.",
    "Firmware {version} fixed a bug where the {thing} stopped working after a power cut.",
    "Write down the current values first: you may want to restore them if the {thing} behaves differently.",
    "Most customers never need to {action} the {thing}; it helps when several devices share one connection.",
    "Contact support with the security log attached if the problem with the {thing} persists.",
    "On older phones the {thing} may appear under a different name in {place}.",
]
HEADINGS = ["Before you begin", "Steps", "Troubleshooting", "Known issues", "Frequently asked questions",
            "What changes for your users", "Limits", "Related settings"]
QUERIES = ["How do I {action} the {thing}?", "Why does the {thing} stop working?", "Where is the {thing} in {place}?"]


def fill(rng: random.Random, template: str) -> str:
    release = f"{rng.randint(1, 4)}.{rng.randint(0, 9)}.{rng.randint(0, 20)}"
    return template.format(action=rng.choice(ACTIONS), thing=rng.choice(THINGS), place=rng.choice(PLACES),
                           n=rng.randint(2, 30), version=release)


def paragraph(rng: random.Random) -> str:
    return " ".join(fill(rng, rng.choice(SENTENCES)) for _ in range(rng.randint(3, 6)))


def make_corpus(root: Path, files: int) -> None:
    """~70% Markdown articles with headed sections, ~30% plain-text notes, ~4 KB each (~6.7 chunks at the default
    settings: 6,728 for 1,000 files). Each file is seeded by its index: a small run's corpus begins the large one."""
    for i in range(files):
        rng = random.Random(f"bench-ingest-{i}")
        title = f"{rng.choice(ACTIONS).capitalize()} the {rng.choice(THINGS)}"
        sections = [(rng.choice(HEADINGS), [paragraph(rng) for _ in range(rng.randint(1, 3))])
                    for _ in range(rng.randint(3, 6))]
        folder = root / f"topic-{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        if rng.random() < 0.7:
            body = [f"# {title}"] + [f"## {head}\n\n" + "\n\n".join(paras) for head, paras in sections]
            (folder / f"article-{i:04d}.md").write_text("\n\n".join(body) + "\n")
        else:
            body = [title.upper()] + [p for _, paras in sections for p in paras]
            (folder / f"note-{i:04d}.txt").write_text("\n\n".join(body) + "\n")


def phase_ours(corpus: Path) -> dict:
    started = time.perf_counter()  # before the imports, as in the baseline: both pay for what they load
    from assistant.config import load_settings
    from ingest.pipeline import Ingestor

    settings = load_settings()
    report = Ingestor(settings).run([corpus])
    if report.failed:  # a file left out would make the two pipelines measure different corpora
        raise SystemExit(f"{len(report.failed)} files failed to load, e.g. {report.failed[0]}")
    return {"seconds": time.perf_counter() - started, "run_seconds": report.seconds,
            "chunks": sum(r.chunks for r in report.results), "embedded": report.embedded_chunks,
            "chunk_size": settings.chunk_size, "chunk_overlap": settings.chunk_overlap}


def phase_baseline(corpus: Path, chroma_dir: Path) -> dict:
    started = time.perf_counter()
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.core import SimpleDirectoryReader
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore
    from transformers import AutoTokenizer

    from assistant import bundled
    from assistant.config import load_settings

    settings, model = load_settings(), str(bundled.EMBEDDER.path())
    docs = SimpleDirectoryReader(str(corpus), recursive=True).load_data()
    # The default tokenizer (tiktoken cl100k, cached inside llama-index-core) counts other tokens than MiniLM's;
    # measuring in MiniLM's own tokens makes chunk_size mean the same in both pipelines.
    tokenizer = AutoTokenizer.from_pretrained(model)
    splitter = SentenceSplitter(chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap,
                                tokenizer=lambda text: tokenizer.encode(text, add_special_tokens=False))
    # Same batch size as ours (llama-index's default is 10), so the embedder does the same work per call.
    embed_model = HuggingFaceEmbedding(model_name=model, device="cpu", embed_batch_size=settings.embed_batch_size)
    client = chromadb.PersistentClient(path=str(chroma_dir), settings=ChromaSettings(anonymized_telemetry=False))
    # embedding_function=None: Chroma's default one would fetch its own model; llama-index passes the vectors.
    collection = client.get_or_create_collection("bench", embedding_function=None)
    store = ChromaVectorStore(chroma_collection=collection)
    # IngestionPipeline(vector_store=...) adds every node in one call, which Chroma refuses above 5,461 records
    # ("max batch size"); so the plain pipeline embeds, and the nodes go in in batches Chroma accepts.
    nodes = IngestionPipeline(transformations=[splitter, embed_model]).run(documents=docs)
    for start in range(0, len(nodes), 5000):
        store.add(nodes[start:start + 5000])
    return {"seconds": time.perf_counter() - started, "chunks": len(nodes)}


def phase_query(queries: int = 100, k: int = 4) -> dict:
    from assistant.config import load_settings
    from assistant.retrieval import Retriever

    retriever = Retriever.from_settings(load_settings())
    rng = random.Random("bench-queries")
    texts = [fill(rng, rng.choice(QUERIES)) for _ in range(queries)]
    for text in texts[:3]:  # warm-up: first calls pay one-off costs (and hybrid builds its BM25 index once)
        retriever.retrieve(text, k, mode="hybrid")
    timings: dict[str, list[float]] = {"dense": [], "hybrid": [], "store": []}
    for text in texts:
        for mode in ("dense", "hybrid"):
            started = time.perf_counter()
            retriever.retrieve(text, k, mode=mode)
            timings[mode].append(time.perf_counter() - started)
        vector = retriever.embedder.embed([text])[0]
        started = time.perf_counter()
        retriever.collection.query(vector, k)
        timings["store"].append(time.perf_counter() - started)
    return {"k": k, "queries": queries, "chunks": retriever.collection.count(),
            **{name: percentiles(values) for name, values in timings.items()}}


def percentiles(seconds: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(seconds, n=100)
    return cuts[49] * 1000, cuts[94] * 1000


def run_phase(name: str, work: Path) -> dict:
    print(f"[bench] {name} …", file=sys.stderr, flush=True)
    # Default settings only: no ASSISTANT_* variable of this shell, no assistant.toml (the phase runs in `work`).
    env = {key: value for key, value in os.environ.items() if not key.startswith("ASSISTANT_")}
    env["ASSISTANT_HOME"] = str(work / "home")
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--phase", name, "--workdir", str(work)],
                          cwd=work, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def machine() -> str:
    cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("model name"))
    # Timings on a shared machine are only as good as its quiet: the load at the start goes into the report.
    return (f"{os.cpu_count()} cores ({cpu}), load average {os.getloadavg()[0]:.1f} at start, "
            f"Python {platform.python_version()}, torch {version('torch')}")


def table(files: int, corpus: Path, ours: dict, again: dict, query: dict, base: dict | None) -> str:
    markdown, mib = len(list(corpus.rglob("*.md"))), sum(f.stat().st_size for f in corpus.rglob("*.*")) / 2**20
    lines = [f"### Ingestion, {datetime.date.today().isoformat()}", "",
             f"{machine()}. Corpus: {files} files ({markdown} Markdown, {files - markdown} text, {mib:.1f} MiB); "
             f"all-MiniLM-L6-v2; chunks of {ours['chunk_size']} MiniLM tokens, overlap {ours['chunk_overlap']}.", "",
             "| phase | wall s | chunks | chunks/s | peak RSS MiB |", "|---|---:|---:|---:|---:|"]
    for name, r in [("ours: first ingest", ours), ("llama-index IngestionPipeline", base)][:2 if base else 1]:
        lines.append(f"| {name} | {r['seconds']:.1f} | {r['chunks']:,} | {r['chunks'] / r['seconds']:.1f} "
                     f"| {r['rss']:.0f} |")
    # The sync itself (Ingestor.run), without the process start and imports that a long-running app pays once.
    lines.append(f"| ours: re-ingest unchanged, {again['embedded']} embedded | {again['run_seconds']:.2f} "
                 f"({again['run_seconds'] * 1000 / files:.2f} per 1,000 files) | {again['chunks']:,} | — "
                 f"| {again['rss']:.0f} |")
    if base:
        speed = ours["chunks"] / ours["seconds"] / (base["chunks"] / base["seconds"])
        lines += ["", f"Ours / baseline: {speed:.2f}× the chunks/s, {base['seconds'] / ours['seconds']:.2f}× faster "
                  "on the same corpus. Chunk counts differ: the baseline does not cut Markdown at headings (fewer, "
                  "fuller chunks) and, as llama-index does by default, embeds `file_path: …` with every chunk and "
                  "counts it against chunk_size."]
    return "\n".join(lines + [
        "", f"| query, k={query['k']}, {query['chunks']:,} chunks, {query['queries']} queries | p50 ms | p95 ms |",
        "|---|---:|---:|",
        f"| dense: embed query + Chroma search | {query['dense'][0]:.1f} | {query['dense'][1]:.1f} |",
        f"| hybrid: dense + BM25, fused (RRF) | {query['hybrid'][0]:.1f} | {query['hybrid'][1]:.1f} |",
        f"| Chroma search alone | {query['store'][0]:.1f} | {query['store'][1]:.1f} |"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="files in the generated corpus")
    parser.add_argument("--workdir", type=Path, help="an empty or new folder for the corpus and stores (kept)")
    parser.add_argument("--skip-baseline", action="store_true", help="only measure our pipeline")
    parser.add_argument("--phase", choices=["ours", "baseline", "query"], help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.phase:
        corpus = args.workdir / "corpus"
        result = {"ours": lambda: phase_ours(corpus), "query": phase_query,
                  "baseline": lambda: phase_baseline(corpus, args.workdir / "baseline-chroma")}[args.phase]()
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
        print(json.dumps({**result, "rss": peak_mib}))
        return
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as scratch:
        work = (args.workdir or Path(scratch)).resolve()  # the phases run with it as their working directory
        if work.exists() and any(work.iterdir()):
            parser.error(f"--workdir {work} is not empty; the stores must start fresh")
        make_corpus(work / "corpus", args.files)
        ours, again = run_phase("ours", work), run_phase("ours", work)  # the second run finds every file unchanged
        query = run_phase("query", work)
        base = None if args.skip_baseline else run_phase("baseline", work)
        print(table(args.files, work / "corpus", ours, again, query, base))


if __name__ == "__main__":
    main()
