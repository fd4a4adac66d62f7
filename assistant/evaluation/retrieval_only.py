"""`assistant compare EVAL --retrieval-only`: how well each retrieval configuration finds the sources an eval set
names, without generating anything — seconds, not the minutes a full comparison takes.

Per configuration (mode dense / bm25 / hybrid, with or without the reranker) and per k asked for: hit@k and
recall@k; MRR and nDCG@10 over the distinct documents of the top results; search latency p50/p95. Query vectors are
computed once, in batches, and shared by every configuration (they depend only on the embedder), so the latencies
are the searches' own; the embedding time per query is reported beside them.
"""

from __future__ import annotations

import csv
import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.evaluation import metrics as m
from assistant.evaluation.evalset import read_eval

DEFAULT_KS = (1, 3, 5, 10)
DEPTH = 10  # documents kept per query for MRR and nDCG@10


@dataclass
class ConfigResult:
    name: str  # "hybrid", "dense+rerank"
    mode: str
    rerank: bool
    hit: dict[int, float]
    recall: dict[int, float]
    mrr: float
    ndcg_10: float
    latency_p50_ms: float
    latency_p95_ms: float
    per_question: list[dict] = field(default_factory=list, repr=False)


@dataclass
class RetrievalReport:
    eval_name: str
    collection: str
    embedder: str
    questions: int
    skipped: int  # questions that name no sources
    embed_ms_per_query: float
    ks: tuple[int, ...]
    configs: list[ConfigResult]
    files: dict[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["files"] = {k: str(v) for k, v in self.files.items()}
        for config in data["configs"]:
            config.pop("per_question")
        return data


def evaluate(settings: Settings, eval_path: Path, modes: list[str], ks: tuple[int, ...] = DEFAULT_KS,
             collection: str | None = None, rerank: bool = False, limit: int | None = None,
             out_dir: Path | None = None, retriever=None, embedders: tuple[str, ...] = ()) -> RetrievalReport:
    """`embedders`: other embedders (tuned here, or folders) to score beside the knowledge base's own, each on a
    scratch copy of its chunks embedded with it — the modes that use vectors (dense, hybrid), named MODE@EMBEDDER."""
    from assistant.retrieval import MODES, Retriever

    unknown = [mode for mode in modes if mode not in MODES]
    if unknown:
        raise AssistantError(f"Unknown retrieval mode(s) {', '.join(unknown)}; use {', '.join(MODES)}.")
    items, _ = read_eval(eval_path)
    items = items[:limit] if limit else items
    named = [item for item in items if item.sources]
    if not named:
        raise AssistantError(f"No question in {eval_path} names its sources, so retrieval cannot be scored: add "
                             '"sources": ["file name", …] to each line.')
    retriever = retriever or Retriever.from_settings(settings, collection)
    if rerank and retriever.reranker is None:
        raise AssistantError("--rerank needs a reranker: set ASSISTANT_RERANKER to a CrossEncoder folder or to the "
                             "name of one trained with `assistant finetune train DATA --target reranker`.")
    started = time.perf_counter()
    vectors = retriever.embedder.embed([item.question for item in named])
    embed_ms = (time.perf_counter() - started) * 1000 / len(named)
    depth = max(max(ks), DEPTH)
    configs = [(mode, False) for mode in modes] + ([(mode, True) for mode in modes] if rerank else [])
    results = [_run(retriever, named, vectors, mode, with_rerank, ks, depth) for mode, with_rerank in configs]
    for name in embedders:
        with tempfile.TemporaryDirectory(prefix="retrieval-only-") as scratch:
            other = _reembedded(settings, retriever, name, Path(scratch))
            other_vectors = other.embedder.embed([item.question for item in named])
            for mode in (m for m in modes if m != "bm25"):
                result = _run(other, named, other_vectors, mode, False, ks, depth)
                result.name = f"{mode}@{other.embedder.name}"
                results.append(result)
    report = RetrievalReport(eval_path.stem, retriever.collection.name, retriever.embedder.name, len(named),
                             len(items) - len(named), round(embed_ms, 2), tuple(ks), results)
    folder = out_dir or settings.home / "comparisons" / eval_path.stem
    report.files = _write(report, folder)
    return report


def _run(retriever, items, vectors, mode: str, rerank: bool, ks, depth: int) -> ConfigResult:
    rows, latencies = [], []
    for item, vector in zip(items, vectors):
        started = time.perf_counter()
        passages = retriever.retrieve(item.question, k=depth * 3, mode=mode, vector=vector, rerank=rerank)
        latencies.append((time.perf_counter() - started) * 1000)
        documents = list(dict.fromkeys(p.source for p in passages))[:depth]  # a document may fill several chunks
        relevant = list(item.sources)
        rows.append({"id": item.id, "question": item.question, "sources": relevant, "retrieved": documents,
                     "rank": m.first_relevant_rank(documents, relevant)})
    hit = {k: _mean(float(r["rank"] is not None and r["rank"] <= k) for r in rows) for k in ks}
    recall = {k: _mean(m.recall_at_k(r["retrieved"], r["sources"], k) for r in rows) for k in ks}
    mrr = _mean(1.0 / r["rank"] if r["rank"] else 0.0 for r in rows)
    ndcg = _mean(m.ndcg_at_k(r["retrieved"], r["sources"], DEPTH) for r in rows)
    return ConfigResult(mode + ("+rerank" if rerank else ""), mode, rerank, hit, recall, mrr, ndcg,
                        round(m.percentile(latencies, 50), 2), round(m.percentile(latencies, 95), 2), rows)


def _reembedded(settings: Settings, retriever, embedder: str, scratch: Path):
    """The retriever's chunks embedded with another embedder, in a scratch embedded Chroma (the store is untouched)."""
    from assistant.embeddings import SentenceTransformerEmbedder
    from assistant.retrieval import Retriever
    from ingest.store import KnowledgeStore

    other = SentenceTransformerEmbedder.from_settings(settings.model_copy(update={"embedder": embedder}))
    store = KnowledgeStore(settings.model_copy(update={"home": scratch, "chroma_url": None}))
    copy = store.get_or_create(retriever.collection.name, other.name, other.dimension)
    for ids, texts, metadatas in retriever.collection.all_records():
        copy.upsert(ids, other.embed(texts), texts, metadatas)
    return Retriever(copy, other, scratch / "bm25")


def _mean(values) -> float:
    values = list(values)
    return round(sum(values) / len(values), 4) if values else 0.0


def table(report: RetrievalReport) -> list[list[str]]:
    header = ["configuration", *(f"hit@{k}" for k in report.ks), "MRR", "nDCG@10",
              f"recall@{max(report.ks)}", "p50 ms", "p95 ms"]
    rows = [header]
    for c in report.configs:
        rows.append([c.name, *(f"{100 * c.hit[k]:.1f}" for k in report.ks), f"{100 * c.mrr:.1f}",
                     f"{100 * c.ndcg_10:.1f}", f"{100 * c.recall[max(report.ks)]:.1f}", f"{c.latency_p50_ms:.1f}",
                     f"{c.latency_p95_ms:.1f}"])
    return rows


def _write(report: RetrievalReport, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: folder / name for name in ("retrieval.json", "retrieval.csv", "retrieval.md", "retrieval.png")}
    files["retrieval.json"].write_text(json.dumps(report.to_dict() | {"per_question": {
        c.name: c.per_question for c in report.configs}}, indent=2, ensure_ascii=False))
    rows = table(report)
    with files["retrieval.csv"].open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)
    best = max(report.configs, key=lambda c: (c.hit[min(report.ks, key=lambda k: abs(k - 5))], c.mrr))
    lines = [f"# Retrieval on {report.eval_name}", "",
             f"{report.questions} questions that name their sources ({report.skipped} without), knowledge base "
             f"`{report.collection}`, embedder `{report.embedder}`; query embedding {report.embed_ms_per_query} ms "
             "a question, not in the latencies.", "",
             "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0]),
             *("| " + " | ".join(row) + " |" for row in rows[1:]), "",
             f"Best here: **{best.name}** (by hit@5, then MRR). Set it with ASSISTANT_RETRIEVAL_MODE="
             f"{best.mode}" + (" and a reranker" if best.rerank else "") + "."]
    files["retrieval.md"].write_text("\n".join(lines) + "\n")
    _chart(report, files["retrieval.png"])
    return files


def _chart(report: RetrievalReport, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    for config in report.configs:
        axes.plot(report.ks, [100 * config.hit[k] for k in report.ks], marker="o", label=config.name)
    axes.set_xlabel("k (passages)")
    axes.set_ylabel("hit@k (%)")
    axes.set_xticks(report.ks)
    axes.set_ylim(0, 100)
    axes.grid(alpha=0.3)
    axes.legend()
    axes.set_title(f"Retrieval on {report.eval_name} ({report.questions} questions)")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
