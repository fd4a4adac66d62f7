"""Fusion study (issue 4 follow-up): which rule for combining dense and BM25 retrieval is never below the better
single retriever on hit@5 on sets A, B and C of `bench_retrieval.py`, and keeps exact-term lookups (A′) at 100 %?

    .venv/bin/python benchmarks/fusion_study.py [--docs 2000] [--queries 1000] [--refresh]

Two phases. (1) Collect, once (a few minutes: it embeds every chunk): the sets of `bench_retrieval.py` with its
default sizes and seeds, ingested through the product's `Ingestor` into a temporary embedded Chroma; for every
question dense's and BM25's depth-100 rankings (chunk id, score) straight from the product's pieces
(`collection.query`, `retriever.bm25().search`), each chunk's document id and text, and, as a check, what
`Retriever.retrieve(question, 10, mode)` returns for dense and hybrid. All of it goes to a cache file under
benchmarks/.data/. (2) Evaluate, offline, in seconds: every fusion rule below on those rankings.

A question's rank is the position of its passage among the distinct documents of the first K=10 chunks of a rule's
list — exactly what `bench_retrieval.evaluate` reads off `retrieve(question, 10)`. hit@k: rank ≤ k; MRR@10.

Terms: a query's terms are bm25s's tokens of it (`bm25s.tokenize(..., stopwords="en")`, what the product's BM25
index uses); a term's document frequency (df) is the number of chunks whose tokens contain it. A query "has a rare
term at T" when one of its terms has df ≤ T and BM25's top hit contains that term.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_retrieval as bench  # noqa: E402  (sets the offline Hugging Face environment before any model import)

DATA = bench.DATA
K = bench.K  # 10 chunks per question, as the benchmark
DEPTH = 100  # depth of the stored rankings
RRF_K = 60
# The A′ terms inside a question (probes outside the goal, where "the query is short" is no signal). Their other
# words are common in A (df: who 563, what 72, known 262, about 115 of 2,364 chunks); a first try, "Can you find the
# passage that mentions X?", was dropped: "passage" (df 2) and "mentions" (df 1) are rare terms of A themselves.
SENTENCES = {"A″": "Who or what is {term}?", "A‴": "What is known about {term}?"}
STEM_VENV = DATA / "stem-venv"  # throwaway venv with PyStemmer (not a project dependency), made by hand:
# .venv/bin/python -m venv benchmarks/.data/stem-venv && benchmarks/.data/stem-venv/bin/pip install PyStemmer


def cache_path(docs: int, queries: int) -> Path:
    return DATA / f"fusion-rankings-{docs}-{queries}.json.gz"


# ----------------------------------------------------------------------------------------------- phase 1: collect

def collect(docs: int, queries: int) -> dict:
    from assistant.config import load_settings
    from assistant.embeddings import SentenceTransformerEmbedder
    from assistant.retrieval import Retriever
    from ingest.pipeline import embedder_name
    from ingest.store import KnowledgeStore

    started = time.perf_counter()
    sets = [bench.keyword_set(docs, queries), bench.paraphrase_set(), bench.answer_set()]
    probe = bench.exact_term_probe(sets[0])
    sentences = [bench.QASet(f"{name}: {template.format(term='X')!r}", probe.docs,
                             [(template.format(term=t), d) for t, d in probe.queries])
                 for name, template in SENTENCES.items()]
    embedder = SentenceTransformerEmbedder.from_settings(load_settings())
    out: dict = {"meta": {"date": datetime.date.today().isoformat(), "cores": os.cpu_count(),
                          "load_at_start": os.getloadavg()[0], "precision": str(embedder.precision),
                          "depth": DEPTH, "k": K},
                 "corpora": [], "sets": []}
    with tempfile.TemporaryDirectory(prefix="fusion-study-") as scratch:
        home = Path(scratch)
        questions = sorted({q for qa in (*sets, probe, *sentences) for q, _ in qa.queries})
        print(f"[fusion] embedding {len(questions):,} questions …", file=sys.stderr, flush=True)
        precomputed = bench.Precomputed(embedder, questions)
        for n, qa in enumerate(sets):
            print(f"[fusion] ingesting {qa.name} …", file=sys.stderr, flush=True)
            bench.ingest(qa, home, embedder, f"set-{n}")
            collection = KnowledgeStore(load_settings(home=home)).get(f"set-{n}", embedder_name(load_settings()))
            retriever = Retriever(collection, precomputed, home / "bm25")
            chunks = {}
            for ids, texts, metas in collection.all_records():
                chunks.update({i: [m["doc_id"], t] for i, t, m in zip(ids, texts, metas)})
            out["corpora"].append({"name": qa.name, "documents": len(qa.docs), "chunks": chunks})
            print(f"[fusion] querying {qa.name} ({len(chunks):,} chunks) …", file=sys.stderr, flush=True)
            for group in [qa] + ([probe, *sentences] if n == 0 else []):
                rows = []
                for question, relevant in group.queries:
                    vector = precomputed.vectors[question]
                    rows.append({
                        "q": question, "rel": relevant,
                        "dense": [[h.id, float(h.score)] for h in collection.query(vector, DEPTH)],
                        "bm25": [[c, s] for c, s in retriever.bm25().search(question, DEPTH)],
                        "product": {mode: [p.chunk_id for p in retriever.retrieve(question, K, mode=mode)]
                                    for mode in ("dense", "bm25", "hybrid")}})
                out["sets"].append({"name": group.name, "corpus": n, "queries": rows})
    out["meta"]["collect_s"] = time.perf_counter() - started
    return out


def load_or_collect(docs: int, queries: int, refresh: bool) -> dict:
    path = cache_path(docs, queries)
    if refresh or not path.is_file():
        data = collect(docs, queries)
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path.with_suffix(".tmp"), "wt") as f:
            json.dump(data, f)
        path.with_suffix(".tmp").rename(path)
    with gzip.open(path, "rt") as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------- phase 2: evaluate

def stemmer():
    """PyStemmer's English (Snowball Porter2) stemmer, from the throwaway venv if not in this one; None if absent."""
    try:
        import Stemmer
    except ImportError:
        site = sorted(STEM_VENV.glob("lib/python*/site-packages"))
        if not site:
            return None
        sys.path.append(str(site[0]))
        try:
            import Stemmer
        except ImportError:
            return None
    return Stemmer.Stemmer("english")


@dataclass
class Corpus:
    """One ingested set's chunks, with bm25s's tokens of each and every term's document frequency."""
    name: str
    doc_of: dict[str, str]
    ids: list[str]  # sorted, as the product's BM25 index orders them
    tokens: dict[str, set[str]] = field(default_factory=dict)
    df: dict[str, int] = field(default_factory=dict)
    index: object = None  # a bm25s index over these tokens (the stemmed variant needs its own)
    stem: object = None  # the stemmer of tokens and queries, or None (the product's tokenisation)

    @classmethod
    def build(cls, name: str, chunks: dict[str, list[str]], stem=None) -> Corpus:
        import bm25s

        ids = sorted(chunks)
        texts = [chunks[i][1] for i in ids]
        token_lists = bm25s.tokenize(texts, stopwords="en", stemmer=stem, return_ids=False, show_progress=False)
        corpus = cls(name, {i: chunks[i][0] for i in ids}, ids, stem=stem)
        for i, tokens in zip(ids, token_lists):
            corpus.tokens[i] = set(tokens)
            for t in corpus.tokens[i]:
                corpus.df[t] = corpus.df.get(t, 0) + 1
        corpus.index = bm25s.BM25()
        corpus.index.index(bm25s.tokenize(texts, stopwords="en", stemmer=stem, show_progress=False),
                           show_progress=False)
        return corpus

    def search(self, query: str, k: int = DEPTH) -> list[tuple[str, float]]:
        """The product's `Bm25Index.search`, on this corpus's (possibly stemmed) index."""
        import bm25s

        tokens = bm25s.tokenize([query], stopwords="en", stemmer=self.stem, show_progress=False)
        found, scores = self.index.retrieve(tokens, k=min(k, len(self.ids)), show_progress=False)
        return [(self.ids[int(i)], float(s)) for i, s in zip(found[0], scores[0]) if s > 0]

    def terms(self, query: str) -> list[str]:
        import bm25s

        return list(dict.fromkeys(bm25s.tokenize([query], stopwords="en", stemmer=self.stem, return_ids=False,
                                                 show_progress=False)[0]))


@dataclass
class Query:
    text: str
    relevant: str
    dense: list[str]
    dense_scores: list[float]
    bm25: list[str]
    bm25_scores: list[float]
    terms: list[str]
    corpus: Corpus

    def rare_terms(self, threshold: float) -> list[str]:
        """Query terms with df ≤ threshold that BM25's top hit contains."""
        if not self.bm25:
            return []
        top = self.corpus.tokens[self.bm25[0]]
        return [t for t in self.terms if t in top and self.corpus.df.get(t, 0) <= threshold]

    def margin(self) -> float:
        """BM25's top score over its second (∞ with a single hit)."""
        if len(self.bm25_scores) < 2 or self.bm25_scores[1] <= 0:
            return math.inf
        return self.bm25_scores[0] / self.bm25_scores[1]


# --- the building blocks of every rule ------------------------------------------------------------------------

def rrf(rankings: list[list[str]], weights: list[float] | None = None) -> list[str]:
    """Reciprocal-rank fusion exactly as the product's `_fuse` (same order of ties), optionally weighted."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, chunk in enumerate(ranking, start=1):
            fused[chunk] = fused.get(chunk, 0.0) + weight / (RRF_K + rank)
    return [c for c, _ in sorted(fused.items(), key=lambda item: -item[1])]


def insert(ranking: list[str], chunk: str, position: int) -> list[str]:
    """`ranking` with `chunk` moved up (or inserted) to 1-based `position`; never moved down."""
    if chunk in ranking[:position]:
        return ranking
    rest = [c for c in ranking if c != chunk]
    return rest[:position - 1] + [chunk] + rest[position - 1:]


def threshold_of(t: float | str, corpus: Corpus) -> float:
    """T as a count, or "0.1%": a thousandth of the chunks, rounded up (A: 3, B: 2, C: 1 at the default sizes)."""
    return math.ceil(0.001 * len(corpus.ids)) if t == "0.1%" else float(t)


Rule = Callable[[Query], list[str]]


def dense(q: Query) -> list[str]:
    return q.dense


def bm25(q: Query) -> list[str]:
    return q.bm25


def rrf_top(depth: int, bm25_weight: float = 1.0) -> Rule:
    """RRF over each retriever's top-`depth` (depth 10 and weight 1 = today's product at k=10)."""
    return lambda q: rrf([q.dense[:depth], q.bm25[:depth]], [1.0, bm25_weight])


def exact_insert(t: float | str, position: int = 1, margin: float | None = None) -> Rule:
    """Dense's ranking; BM25's top hit moved to `position` when the query has a rare term at T (and, with
    `margin`, BM25's top score is ≥ margin × its second)."""
    def rule(q: Query) -> list[str]:
        if q.rare_terms(threshold_of(t, q.corpus)) and (margin is None or q.margin() >= margin):
            return insert(q.dense, q.bm25[0], position)
        return q.dense
    return rule


def term_aware_insert(t: float | str) -> Rule:
    """As `exact_insert`, but the position follows from whether dense already has the rare term on top: BM25's top
    hit goes to rank 2 when dense's top hit contains one of the query's rare terms too (dense understood the term;
    its first answer stays first), to rank 1 when it does not (only BM25 matched the rare term)."""
    def rule(q: Query) -> list[str]:
        rare = q.rare_terms(threshold_of(t, q.corpus))
        if not rare:
            return q.dense
        dense_has_it = bool(q.dense) and any(term in q.corpus.tokens[q.dense[0]] for term in rare)
        return insert(q.dense, q.bm25[0], 2 if dense_has_it else 1)
    return rule


def route(t: float | str, otherwise_bm25_weight: float = 0.0) -> Rule:
    """Equal-weight RRF (top-10 of each) for a query with a rare term at T; otherwise dense alone (weight 0) or
    RRF with BM25 weighted `otherwise_bm25_weight`."""
    def rule(q: Query) -> list[str]:
        if q.rare_terms(threshold_of(t, q.corpus)):
            return rrf([q.dense[:K], q.bm25[:K]])
        if otherwise_bm25_weight:
            return rrf([q.dense[:K], q.bm25[:K]], [1.0, otherwise_bm25_weight])
        return q.dense
    return rule


def peaked_insert(ratio: float) -> Rule:
    """No document frequencies: BM25's top hit moved to rank 1 when its score is ≥ ratio × the second's."""
    return lambda q: insert(q.dense, q.bm25[0], 1) if q.bm25 and q.margin() >= ratio else q.dense


def short_query_insert(max_terms: int) -> Rule:
    """Query shape only: BM25's top hit moved to rank 1 when the query has ≤ max_terms terms."""
    return lambda q: insert(q.dense, q.bm25[0], 1) if q.bm25 and len(q.terms) <= max_terms else q.dense


def idf_weighted_rrf(q: Query) -> list[str]:
    """RRF over the top-10 of each, BM25's vote weighted by how rare the rarest query term in its top hit is:
    w = idf(that term) / idf(df = 1), lucene idf ln(1 + (N − df + 0.5)/(df + 0.5)); 0 when no query term is in it."""
    if not q.bm25:
        return q.dense
    n = len(q.corpus.ids)
    idf = lambda df: math.log(1 + (n - df + 0.5) / (df + 0.5))  # noqa: E731
    top = q.corpus.tokens[q.bm25[0]]
    dfs = [q.corpus.df[t] for t in q.terms if t in top]
    weight = idf(min(dfs)) / idf(1) if dfs else 0.0
    return rrf([q.dense[:K], q.bm25[:K]], [1.0, weight])


# ------------------------------------------------------------------------------------------------- evaluation

def rank_of(ranking: list[str], relevant: str, doc_of: dict[str, str]) -> int | None:
    docs = list(dict.fromkeys(doc_of[c] for c in ranking[:K]))
    return docs.index(relevant) + 1 if relevant in docs else None


def metrics(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks)
    out = {f"hit@{k}": 100 * sum(r is not None and r <= k for r in ranks) / n for k in (1, 5, 10)}
    out["MRR"] = 100 * sum(1 / r for r in ranks if r is not None) / n
    return out


def load_queries(data: dict, corpora: list[Corpus], stemmed: list[Corpus] | None) -> dict[str, list[Query]]:
    """Set name → its queries; with `stemmed`, BM25's rankings and the query terms come from the stemmed index."""
    sets = {}
    for s in data["sets"]:
        corpus = (stemmed or corpora)[s["corpus"]]
        rows = []
        for row in s["queries"]:
            if stemmed:
                found = corpus.search(row["q"])
                b_ids, b_scores = [c for c, _ in found], [x for _, x in found]
            else:
                b_ids, b_scores = [c for c, _ in row["bm25"]], [x for _, x in row["bm25"]]
            rows.append(Query(row["q"], row["rel"], [c for c, _ in row["dense"]], [x for _, x in row["dense"]],
                              b_ids, b_scores, corpus.terms(row["q"]), corpus))
        sets[s["name"]] = rows
    return sets


def evaluate(sets: dict[str, list[Query]], rule: Rule) -> tuple[dict[str, dict[str, float]], dict[str, list]]:
    results, ranks = {}, {}
    for name, queries in sets.items():
        ranks[name] = [rank_of(rule(q), q.relevant, q.corpus.doc_of) for q in queries]
        results[name] = metrics(ranks[name])
    return results, ranks


def checks(data: dict, corpora: list[Corpus], sets: dict[str, list[Query]]) -> list[str]:
    """The offline replica against the product: the product's own retrieve() lists, and a rebuilt BM25 index."""
    lines = []
    for s in data["sets"]:
        queries = sets[s["name"]]
        same = {mode: 0 for mode in ("dense", "bm25", "hybrid")}
        for row, q in zip(s["queries"], queries):
            mine = {"dense": q.dense[:K], "bm25": q.bm25[:K], "hybrid": rrf_top(K)(q)[:K]}
            for mode in same:
                same[mode] += mine[mode] == row["product"][mode]
        rebuilt = sum([c for c, _ in corpora[s["corpus"]].search(row["q"])] == [c for c, _ in row["bm25"]]
                      for row in s["queries"])
        n = len(queries)
        doc_of = queries[0].corpus.doc_of
        product_hit5 = {mode: metrics([rank_of(row["product"][mode], row["rel"], doc_of)
                                       for row in s["queries"]])["hit@5"] for mode in same}
        lines.append(f"- {s['name']}: top-10 lists identical to `retrieve()` for dense {same['dense']}/{n}, bm25 "
                     f"{same['bm25']}/{n}, hybrid {same['hybrid']}/{n}; rebuilt BM25 index gives the stored "
                     f"depth-100 ranking for {rebuilt}/{n}; `retrieve()` hit@5 dense {product_hit5['dense']:.1f}, "
                     f"bm25 {product_hit5['bm25']:.1f}, hybrid {product_hit5['hybrid']:.1f}")
    return lines


COLUMNS = ("hit@1", "hit@5", "hit@10", "MRR")


@dataclass
class Row:
    label: str
    results: dict[str, dict[str, float]]
    ranks: dict[str, list]


def short(name: str) -> str:
    return name.split(":")[0]  # "A", "A′", "A″", "B", "C"


def average(row: Row, main: list[str]) -> dict[str, float]:
    return {c: statistics.mean(row.results[s][c] for s in main) for c in COLUMNS}


def marks(row: Row, best5: dict[str, float], main: list[str], probe: str) -> tuple[bool, bool]:
    never_below = all(row.results[s]["hit@5"] >= best5[s] - 1e-9 for s in main)
    return never_below, row.results[probe]["hit@5"] >= 100 - 1e-9


def moved(row: Row, base: Row, main: list[str]) -> str:
    """Per set: questions this rule moves into / out of dense's top 5."""
    parts = []
    for s in main:
        pairs = list(zip(row.ranks[s], base.ranks[s]))
        into = sum((r is not None and r <= 5) and not (b is not None and b <= 5) for r, b in pairs)
        out = sum(not (r is not None and r <= 5) and (b is not None and b <= 5) for r, b in pairs)
        parts.append(f"{short(s)} +{into}/−{out}")
    return ", ".join(parts)


def summary_table(rows: list[Row], best5: dict[str, float], main: list[str], probe: str, extra: list[str],
                  base: Row) -> list[str]:
    p = short(probe)
    lines = ["| rule | " + " | ".join(f"{short(s)} hit@5" for s in main) + " | avg hit@5 | worst Δ hit@5 vs best "
             f"single | avg hit@1 | avg MRR | {p} hit@1 | {p} hit@5 | " + "".join(f"{short(e)} hit@5 | " for e in extra)
             + f"never below best | {p} 100 % | into/out of dense's top 5 |",
             "|---|" + "---:|" * (len(main) + 7 + len(extra)) + ":---:|:---:|---|"]
    for row in rows:
        avg = average(row, main)
        worst = min(row.results[s]["hit@5"] - best5[s] for s in main)
        below, exact = marks(row, best5, main, probe)
        lines.append(f"| {row.label} | " + " | ".join(f"{row.results[s]['hit@5']:.1f}" for s in main) +
                     f" | {avg['hit@5']:.1f} | {worst:+.1f} | {avg['hit@1']:.1f} | {avg['MRR']:.1f} | "
                     f"{row.results[probe]['hit@1']:.1f} | {row.results[probe]['hit@5']:.1f} | "
                     + "".join(f"{row.results[e]['hit@5']:.1f} | " for e in extra) +
                     f"{'**yes**' if below else 'no'} | "
                     f"{'**yes**' if exact else 'no'} | {moved(row, base, main)} |")
    return lines


def full_table(rows: list[Row], main: list[str], probe: str, extra: list[str]) -> list[str]:
    groups = [*main, "avg", probe, *extra]
    lines = ["| rule | " + " | ".join(f"{short(g)} {c}" for g in groups for c in COLUMNS) + " |",
             "|---|" + "---:|" * (len(groups) * len(COLUMNS))]
    for row in rows:
        values = {**row.results, "avg": average(row, main)}
        lines.append(f"| {row.label} | " + " | ".join(f"{values[g][c]:.1f}" for g in groups for c in COLUMNS) + " |")
    return lines


def fired(sets: dict[str, list[Query]], t: float | str) -> str:
    return ", ".join(f"{short(name)} {100 * sum(bool(q.rare_terms(threshold_of(t, q.corpus))) for q in qs) / len(qs):.0f} %"
                     for name, qs in sets.items())


def insertion_anatomy(sets: dict[str, list[Query]], main: list[str], t: float | str) -> list[str]:
    """Why insertion is safe: where BM25's top hit stands in dense's list when the rule fires, and whether it is
    the asked-about passage. Moving one passage into the top 5 can push out only the passage at dense's rank 5."""
    lines = []
    for s in main:
        fire = [q for q in sets[s] if q.rare_terms(threshold_of(t, q.corpus))]
        right = already = new = new_right = pushed_out = 0
        for q in fire:
            top5 = list(dict.fromkeys(q.corpus.doc_of[c] for c in q.dense[:K]))[:5]
            doc = q.corpus.doc_of[q.bm25[0]]
            right += doc == q.relevant
            if doc in top5:
                already += 1
            else:
                new += 1
                new_right += doc == q.relevant
                pushed_out += len(top5) == 5 and top5[4] == q.relevant
        lines.append(f"- {s}: fires on {len(fire)}/{len(sets[s])} questions; BM25's top hit is the asked-about "
                     f"passage in {right} of them ({100 * right / max(1, len(fire)):.0f} %); it is already in "
                     f"dense's top 5 in {already}; new to the top 5 in {new}, of which {new_right} right; the right "
                     f"passage pushed from dense's rank 5 to 6 in {pushed_out}")
    return lines


def stem_misses(sets: dict[str, list[Query]], probe: str, limit: int = 6) -> str:
    """A′ lookups where stemmed BM25's top hit is not the passage: what the stemmer made of the term."""
    misses = [q for q in sets[probe] if not q.bm25 or q.corpus.doc_of[q.bm25[0]] != q.relevant]
    shown = [f"{q.text!r} → {q.terms} (df {[q.corpus.df.get(t, 0) for t in q.terms]})" for q in misses[:limit]]
    return f"{len(misses)}/{len(sets[probe])} A′ lookups not on top of stemmed BM25, e.g. " + "; ".join(shown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=2000, help="set A: passages indexed")
    parser.add_argument("--queries", type=int, default=1000, help="set A: questions asked")
    parser.add_argument("--refresh", action="store_true", help="collect the rankings again (re-embeds everything)")
    parser.add_argument("--cache", type=Path, help="evaluate this cache file as it is (e.g. an earlier collection)")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.cache:
        with gzip.open(args.cache, "rt") as f:
            data = json.load(f)
    else:
        data = load_or_collect(args.docs, args.queries, args.refresh)
    loaded = time.perf_counter()
    corpora = [Corpus.build(c["name"], c["chunks"]) for c in data["corpora"]]
    sets = load_queries(data, corpora, None)
    main_sets = [name for name in sets if name[1] == ":"]  # A, B, C (the probes are A′, A″, A‴)
    probe = next(name for name in sets if name.startswith("A′"))
    extra = [name for name in sets if name.startswith(("A″", "A‴"))]  # the sentence probes (absent in old caches)
    stem = stemmer()

    rules: list[tuple[str, Rule]] = [
        ("dense alone", dense), ("BM25 alone", bm25),
        ("RRF k=60, top-10 of each (product today)", rrf_top(10)), ("RRF k=60, top-40 of each", rrf_top(40)),
        ("RRF, BM25 weight 0.5, top-10 of each", rrf_top(10, 0.5)),
    ]
    for position in (1, 2, 5):
        for t in (1, 2, 3, 5, "0.1%"):
            rules.append((f"exact-term insert @{position}, T={t}", exact_insert(t, position)))
    for t in (1, 2, 3, 5, "0.1%"):
        rules.append((f"term-aware insert (@1, or @2 if dense's top has the term), T={t}", term_aware_insert(t)))
    for m in (1.1, 1.25, 1.5, 2.0):
        rules.append((f"exact-term insert @1, T=2, BM25 top ≥ {m}× second", exact_insert(2, 1, m)))
    for t in (1, 2, 3, 5, "0.1%"):
        rules.append((f"route: rare→RRF, else dense, T={t}", route(t)))
    for t in (1, 2, 3, 5, "0.1%"):
        rules.append((f"route: rare→RRF, else RRF w=0.5, T={t}", route(t, 0.5)))
    for r in (1.25, 1.5, 2.0, 3.0):
        rules.append((f"peaked BM25 (top ≥ {r}× second) insert @1", peaked_insert(r)))
    for n in (1, 2, 3):
        rules.append((f"short query (≤ {n} terms) insert @1", short_query_insert(n)))
    rules.append(("IDF-weighted RRF (w = idf/idf(df=1))", idf_weighted_rrf))
    for position in (1, 2):
        for t in (10, 20, 50):  # how far the threshold can go before natural questions pay
            rules.append((f"exact-term insert @{position}, T={t} (sensitivity)", exact_insert(t, position)))

    rows = [Row(label, *evaluate(sets, rule)) for label, rule in rules]
    base = rows[0]
    best5 = {s: max(rows[0].results[s]["hit@5"], rows[1].results[s]["hit@5"]) for s in main_sets}

    stem_sets = None
    if stem is not None:
        stemmed = [Corpus.build(c["name"], c["chunks"], stem) for c in data["corpora"]]
        stem_sets = load_queries(data, corpora, stemmed)
        for label, rule in [("stemmed BM25 alone", bm25), ("RRF top-10 of each, stemmed BM25", rrf_top(10)),
                            ("exact-term insert @1, T=2, stemmed", exact_insert(2, 1)),
                            ("exact-term insert @2, T=2, stemmed", exact_insert(2, 2)),
                            ("exact-term insert @2, T=0.1%, stemmed", exact_insert("0.1%", 2)),
                            ("route: rare→RRF, else dense, T=2, stemmed", route(2))]:
            rows.append(Row(label, *evaluate(stem_sets, rule)))
    evaluated = time.perf_counter()

    meta = data["meta"]
    print(f"### Fusion study, rankings collected {meta['date']} ({meta['cores']} cores, load {meta['load_at_start']:.1f} "
          f"at start, MiniLM {meta['precision']}, collecting took {meta['collect_s']:.0f} s)\n")
    for c in corpora:
        print(f"- {c.name}: {len(set(c.doc_of.values())):,} documents, {len(c.ids):,} chunks")
    print("- " + ", ".join(f"{n}: {len(q):,} queries" for n, q in sets.items()))
    print(f"- rank: position of the passage among the distinct documents of a rule's first {K} chunks; "
          f"stored rankings depth {meta['depth']}\n")
    print("Replica checks:\n" + "\n".join(checks(data, corpora, sets)) + "\n")
    print("Queries with a rare term (df ≤ T among chunks, in BM25's top hit):\n" + "\n".join(
        f"- T={t}: {fired(sets, t)}" for t in (1, 2, 3, 5, "0.1%", 10, 20, 50)) + "\n")
    print("Best single retriever hit@5: " + ", ".join(f"{short(s)} {v:.1f}" for s, v in best5.items()) + "\n")
    print("\n".join(summary_table(rows, best5, main_sets, probe, extra, base)) + "\n")
    print("Full table:\n")
    print("\n".join(full_table(rows, main_sets, probe, extra)) + "\n")
    for t in (2, "0.1%"):
        print(f"Anatomy of exact-term insertion, T={t}:\n" + "\n".join(insertion_anatomy(sets, main_sets, t)) + "\n")
    if stem_sets is None:
        print("(stemmed BM25 skipped: PyStemmer found neither here nor in benchmarks/.data/stem-venv)\n")
    else:
        print("Stemming: " + stem_misses(stem_sets, probe) + "\n")
    print(f"times: load cache {loaded - started:.1f} s, term statistics + all rules {evaluated - loaded:.1f} s")


if __name__ == "__main__":
    main()
