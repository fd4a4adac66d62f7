"""Answers → per-answer metrics → per-strategy summary with confidence intervals and a paired test against plain."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from assistant.evaluation import metrics as m
from assistant.evaluation.evalset import EvalItem
from assistant.pricing import answer_cost

QUALITY = ("exact_match", "token_f1", "rouge_l", "bleu", "semantic", "groundedness", "hit_at_k", "mrr")
MAIN = ("token_f1", "rouge_l", "semantic")  # compared against plain, charted, and used for the recommendation
BASELINE = "plain"


@dataclass
class Summary:
    strategy: str
    n: int
    means: dict[str, float | None] = field(default_factory=dict)
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    vs_plain: dict[str, m.PairedComparison] = field(default_factory=dict)
    latency_p50: float | None = None
    latency_p95: float | None = None
    prompt_tokens: float = 0.0  # mean per answer
    completion_tokens: float = 0.0
    declined_rate: float = 0.0
    cost_usd: float | None = None  # total over the eval set; None when no price is known
    retrieval: dict | None = None  # rag: the configuration its answers used (mode, embedder, reranker)

    def to_dict(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k not in {"ci", "vs_plain"}}
        data["ci"] = {k: list(v) for k, v in self.ci.items()}
        data["vs_plain"] = {k: v.__dict__ | {"significant": v.significant} for k, v in self.vs_plain.items()}
        return data


def score(items: list[EvalItem], answers: dict[str, dict[str, dict]], embed) -> list[dict]:
    """One row per question: the question, reference, and each strategy's answer with its metrics.
    `embed(texts) -> (n, d) array` gives semantic similarity (the knowledge base's own embedder)."""
    texts = [a["text"] for per in answers.values() for a in (per[i.id] for i in items)]
    refs = [i.reference for _ in answers for i in items]
    similarity = iter(m.cosine_similarities(embed(texts), embed(refs)) if texts else [])
    rows = []
    for item in items:
        rows.append({"id": item.id, "question": item.question, "reference": item.reference,
                     "sources": list(item.sources), "answers": {}})
    for strategy, per in answers.items():
        for row, item in zip(rows, items):
            answer = per[item.id]
            row["answers"][strategy] = {"text": answer["text"], "model": answer["model"],
                                        "sources": [{"number": s["number"], "source": s["source"],
                                                     "location": s["location"]} for s in answer["sources"]],
                                        "declined": answer["declined"],
                                        "retrieval": answer.get("retrieval"),  # which configuration found them
                                        "metrics": _metrics(item, answer, float(next(similarity)))}
    return rows


def _metrics(item: EvalItem, answer: dict, similarity: float) -> dict:
    text, usage = answer["text"], answer["usage"]
    retrieved = [s["source"] for s in answer["sources"]]
    used_retrieval = "rag" in answer["strategy"].split("+")
    return {
        "exact_match": m.exact_match(text, item.reference),
        "token_f1": m.token_f1(text, item.reference),
        "rouge_l": m.rouge_l(text, item.reference),
        "bleu": m.bleu(text, item.reference),
        "semantic": round(similarity, 6),
        "groundedness": m.groundedness(text, [s["snippet"] for s in answer["sources"]]) if retrieved else None,
        "hit_at_k": m.hit_at_k(retrieved, list(item.sources), len(retrieved) or 1) if used_retrieval else None,
        "mrr": m.reciprocal_rank(retrieved, list(item.sources)) if used_retrieval else None,
        "declined": float(answer["declined"]),
        "latency_s": answer["latency_s"],
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "cost_usd": answer_cost(answer["model"], usage["prompt_tokens"], usage["completion_tokens"]),
    }


def _configuration(rows: list[dict], strategy: str) -> dict | None:
    """The retrieval configuration of a strategy's answers (one per run: the fingerprint keys the cache on it)."""
    used = next((r["answers"][strategy].get("retrieval") for r in rows if r["answers"][strategy].get("retrieval")),
                None)
    return None if used is None else {k: v for k, v in used.items() if k != "rerank_ms"}


def summarise(rows: list[dict], confidence: float = 0.95) -> list[Summary]:
    strategies = list(rows[0]["answers"]) if rows else []
    column = {s: {k: [r["answers"][s]["metrics"][k] for r in rows] for k in rows[0]["answers"][s]["metrics"]}
              for s in strategies}
    summaries = []
    for strategy in strategies:
        values = column[strategy]
        summary = Summary(strategy, len(rows), retrieval=_configuration(rows, strategy))
        for metric in QUALITY:
            present = [v for v in values[metric] if v is not None]
            summary.means[metric] = float(np.mean(present)) if present else None
            if present:
                summary.ci[metric] = m.bootstrap_ci(present, confidence)
        if BASELINE in column and strategy != BASELINE:
            for metric in MAIN:
                summary.vs_plain[metric] = m.paired_bootstrap(values[metric], column[BASELINE][metric], confidence)
        summary.latency_p50 = m.percentile(values["latency_s"], 50)
        summary.latency_p95 = m.percentile(values["latency_s"], 95)
        summary.prompt_tokens = float(np.mean(values["prompt_tokens"]))
        summary.completion_tokens = float(np.mean(values["completion_tokens"]))
        summary.declined_rate = float(np.mean(values["declined"]))
        costs = values["cost_usd"]
        summary.cost_usd = None if any(c is None for c in costs) else math.fsum(costs)
        summaries.append(summary)
    return summaries
