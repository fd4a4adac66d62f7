"""Stemming study (issue 14): would BM25 with a Snowball stemmer (PyStemmer) retrieve better on the sets of
`bench_retrieval.py`? The product's BM25 tokenises with bm25s (`stopwords="en"`, no stemmer); this indexes the same
passages both ways and scores BM25 alone, per set, with the same ranks as `bench_retrieval.evaluate` (one passage
per document here: sets B and C are one chunk per document; A's long passages are whole).

    .venv/bin/python -m pip install --target benchmarks/.data/stem PyStemmer   # for the study only, not a dependency
    PYTHONPATH=benchmarks/.data/stem .venv/bin/python benchmarks/stemming_study.py

Also counts how often the hybrid's rare-term rule would see a different BM25 top hit (what stemming could change
in the fusion: only that hit is ever promoted).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_retrieval as bench  # noqa: E402


def scores(qa: bench.QASet, stemmer) -> tuple[dict[str, float], list[str]]:
    import bm25s

    ids = sorted(qa.docs)
    index = bm25s.BM25()
    index.index(bm25s.tokenize([qa.docs[i] for i in ids], stopwords="en", stemmer=stemmer, show_progress=False),
                show_progress=False)
    questions = [q for q, _ in qa.queries]
    found, _ = index.retrieve(bm25s.tokenize(questions, stopwords="en", stemmer=stemmer, show_progress=False),
                              k=bench.K, show_progress=False)
    hits = {1: 0, 5: 0, 10: 0}
    rr = ndcg = 0.0
    tops = []
    for row, (_, relevant) in zip(found, qa.queries):
        ranked = [ids[int(i)] for i in row]
        tops.append(ranked[0])
        if relevant in ranked:
            rank = ranked.index(relevant) + 1
            hits = {k: n + (rank <= k) for k, n in hits.items()}
            rr, ndcg = rr + 1 / rank, ndcg + 1 / math.log2(rank + 1)
    n = len(qa.queries)
    return {**{f"hit@{k}": 100 * v / n for k, v in hits.items()}, "MRR": 100 * rr / n,
            "nDCG@10": 100 * ndcg / n}, tops


def main() -> None:
    import Stemmer

    sets = [bench.keyword_set(2000, 1000), bench.paraphrase_set(), bench.answer_set()]
    sets.append(bench.exact_term_probe(sets[0]))
    columns = ["hit@1", "hit@5", "hit@10", "MRR", "nDCG@10"]
    print("| set | BM25 tokens | " + " | ".join(columns) + " | top hit changed |\n|---|---|" + "---:|" * 6)
    for qa in sets:
        plain, plain_tops = scores(qa, None)
        stemmed, stemmed_tops = scores(qa, Stemmer.Stemmer("english"))
        changed = 100 * sum(a != b for a, b in zip(plain_tops, stemmed_tops)) / len(plain_tops)
        for name, row, extra in (("as shipped", plain, ""), ("+ Snowball stemmer", stemmed, f"{changed:.0f} %")):
            print(f"| {qa.name} | {name} | " + " | ".join(f"{row[c]:.1f}" for c in columns) + f" | {extra} |")


if __name__ == "__main__":
    main()
