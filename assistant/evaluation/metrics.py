"""Per-answer metrics and the statistics over them. Pure functions: the caller brings embeddings and texts.
Text-overlap metrics use the maintained implementations (rouge-score, sacrebleu), imported lazily because they pull
in nltk, which takes seconds to import and is not needed by the CLI's other commands."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath

import numpy as np

# ---- answer text vs reference
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalise_answer(text: str) -> str:
    """SQuAD v1.1 normalisation, in the official script's order: lower, punctuation, articles, whitespace."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalise_answer(prediction) == normalise_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 over bags of tokens (counts matter: "the the" does not match "the" twice)."""
    pred, ref = normalise_answer(prediction).split(), normalise_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)  # both empty agree perfectly; one empty shares nothing
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _scorers():
    from rouge_score.rouge_scorer import RougeScorer
    from sacrebleu.metrics import BLEU

    # Sentence BLEU needs smoothing: without it any answer lacking a matching 4-gram scores 0, which is most short
    # answers. "exp" (Chen & Cherry 2014 method 3, the NIST/mteval one and sacrebleu.sentence_bleu's default) halves
    # a pseudo-precision per zero-match order, with no arbitrary constant to tune, unlike "floor"/"add-k".
    # effective_order=True scores a 2-word answer on the 1- and 2-grams it can have, instead of zeroing it.
    # lowercase=True: casing is not what the question asks; EM, F1 and ROUGE-L are case-insensitive too.
    return RougeScorer(["rougeL"], use_stemmer=True), BLEU(smooth_method="exp", effective_order=True, lowercase=True)


def rouge_l(prediction: str, reference: str) -> float:
    """rougeL F-measure (LCS over the whole text, Porter-stemmed). Note: its tokenizer keeps only [a-z0-9]."""
    if not prediction.strip() and not reference.strip():
        return 1.0  # the library says 0 here; agree with token_f1 that two empty texts match
    return float(_scorers()[0].score(reference, prediction)["rougeL"].fmeasure)


def bleu(prediction: str, reference: str) -> float:
    """sacrebleu sentence BLEU (13a tokenizer) on a 0..1 scale."""
    if not prediction.strip() and not reference.strip():
        return 1.0
    score = _scorers()[1].sentence_score(prediction, [reference]).score
    return min(1.0, score / 100.0)  # identical texts give 100.00000000000004


def cosine_similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (n, d) arrays; a zero row has similarity 0 rather than NaN."""
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape != b.shape:
        raise ValueError(f"cosine_similarities needs arrays of one shape, got {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a, b)
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


# ---- groundedness
SUPPORT_THRESHOLD = 0.6  # share of a sentence's content words that must occur in one context
# Function words only. Negations stay content words: "not" is part of the claim, so a context that lacks it counts
# against support (word overlap, not entailment: it lowers the share, it cannot veto). Single letters ("e.g." → e, g;
# "don't" → don, t) and contraction pieces are noise too.
_STOP_WORDS = frozenset({
    "the", "and", "or", "but", "if", "then", "else", "so", "as", "at", "by", "for", "from", "in", "into", "of", "on",
    "onto", "to", "with", "without", "about", "over", "under", "than", "that", "this", "these", "those", "there",
    "here", "it", "its", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "has", "have",
    "had", "me", "my", "we", "our", "you", "your", "he", "him", "his", "she", "her", "they", "them", "their", "what",
    "which", "who", "whom", "whose", "when", "where", "why", "how", "can", "could", "may", "might", "must", "shall",
    "should", "will", "would", "also", "just", "very", "too", "an", "ll", "re", "ve"})
_CITATIONS = re.compile(r"\[\d+(?:\s*[,;–-]\s*\d+)*\]")  # [1], [1, 2], [2-4]
_WORDS = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")  # numbers keep their decimals: "2.4" is one token, not "2", "4"
# A boundary is sentence punctuation (maybe then a closing quote/bracket) and whitespace. Decimals ("2.4") have no
# whitespace after the point, so they never split; abbreviations are re-joined by _continues.
_BOUNDARY = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)\]]))\s+")
_ABBREVIATIONS = frozenset({"e.g", "i.e", "cf", "vs", "approx", "incl", "dr", "mr", "mrs", "ms", "prof", "st", "jr",
                            "sr", "fig", "vol", "ch"})


def _continues(previous: str, piece: str) -> bool:
    """Whether a break was no sentence end: after an abbreviation, an initial ("J.", "U.S."), a list number ("1."),
    or before a lower-case word, which no sentence starts with."""
    last = previous.split()[-1].lower().rstrip(".")
    return (last in _ABBREVIATIONS or re.fullmatch(r"(?:[a-z]\.)*[a-z]", last) is not None
            or previous.rstrip(".").isdigit() or piece[0].islower())


def split_sentences(text: str) -> list[str]:
    """A regex splitter: nltk's punkt needs a data download (impossible offline) and, untrained, splits after "e.g."
    and "Dr.". Line breaks are boundaries too (answers come as lists) unless the next line goes on in lower case."""
    sentences: list[str] = []
    for piece in (p.strip() for line in text.splitlines() for p in _BOUNDARY.split(line)):
        if piece and sentences and _continues(sentences[-1], piece):
            sentences[-1] += " " + piece
        elif piece:
            sentences.append(piece)
    return sentences


@lru_cache(maxsize=1)
def _stem():
    # Algorithmic, so no data download; rouge-score stems with the same one.
    from nltk.stem.porter import PorterStemmer

    return lru_cache(maxsize=65536)(PorterStemmer().stem)


def content_words(text: str) -> set[str]:
    """Lower-cased, Porter-stemmed words without stop words or citation markers: "returned" matches "return"."""
    stem = _stem()
    words = _WORDS.findall(_CITATIONS.sub(" ", text).lower())
    return {stem(w) for w in words if w not in _STOP_WORDS and (len(w) > 1 or w.isdigit())}


def groundedness(answer: str, contexts: list[str]) -> float | None:
    """Share of the answer's sentences whose content words mostly (≥ SUPPORT_THRESHOLD) occur in one context.
    None when there are no contexts, or no sentence with content words to check (e.g. an empty answer)."""
    if not contexts:
        return None
    context_words = [content_words(c) for c in contexts]
    verdicts = []
    for sentence in split_sentences(answer):
        words = content_words(sentence)
        if words:  # "[1]." or "Yes, it is." carries no claim to check
            verdicts.append(any(len(words & c) / len(words) >= SUPPORT_THRESHOLD for c in context_words))
    return sum(verdicts) / len(verdicts) if verdicts else None


# ---- retrieval
def _same_source(document_id: str, named: str) -> bool:
    """Eval sets name "warranty-policy.pdf" while ids are "docs/warranty-policy.pdf": equal, or same file name."""
    names = {PurePosixPath(path.replace("\\", "/")).name.lower() for path in (document_id, named)}
    return document_id == named or len(names) == 1


def hit_at_k(retrieved: list[str], relevant: list[str], k: int) -> float | None:
    """1.0 when any of the first k retrieved entries (chunks: a document may repeat) is a relevant source."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not relevant:
        return None
    return float(any(_same_source(d, r) for d in retrieved[:k] for r in relevant))


def reciprocal_rank(retrieved: list[str], relevant: list[str]) -> float | None:
    if not relevant:
        return None
    return next((1.0 / rank for rank, d in enumerate(retrieved, 1) if any(_same_source(d, r) for r in relevant)), 0.0)


def first_relevant_rank(documents: list[str], relevant: list[str]) -> int | None:
    """1-based rank of the first relevant document in a list of distinct documents, or None."""
    return next((rank for rank, d in enumerate(documents, 1) if any(_same_source(d, r) for r in relevant)), None)


def recall_at_k(documents: list[str], relevant: list[str], k: int) -> float | None:
    """Share of the named sources found among the first k distinct documents."""
    if not relevant:
        return None
    return sum(any(_same_source(d, r) for d in documents[:k]) for r in relevant) / len(relevant)


def ndcg_at_k(documents: list[str], relevant: list[str], k: int = 10) -> float | None:
    """Binary-relevance nDCG over the first k distinct documents (each named source counts once)."""
    if not relevant:
        return None
    found, gains = set(), 0.0
    for rank, document in enumerate(documents[:k], 1):
        match = next((r for r in relevant if r not in found and _same_source(document, r)), None)
        if match is not None:
            found.add(match)
            gains += 1.0 / np.log2(rank + 1)
    ideal = sum(1.0 / np.log2(rank + 1) for rank in range(1, min(k, len(relevant)) + 1))
    return float(gains / ideal)


# ---- statistics
def percentile(values: Sequence[float], q: float) -> float | None:
    """q on numpy's 0..100 scale (linear interpolation)."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else None


def _bootstrap(data: np.ndarray, confidence: float, resamples: int, seed: int) -> tuple[float, float, np.ndarray]:
    """Percentile-bootstrap interval of the mean, and the resampled means. Blocks of ≤ ~4M indices bound memory."""
    rng, n, mean, alpha = np.random.default_rng(seed), len(data), float(np.mean(data)), 1.0 - confidence
    block = max(1, 4_000_000 // n)
    means = np.concatenate([data[rng.integers(0, n, size=(min(block, resamples - start), n))].mean(axis=1)
                            for start in range(0, resamples, block)])
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    # Widen by rounding error only: constant data must give exactly (mean, mean), and chart whiskers (mean − low)
    # must never come out as -1e-17, which matplotlib rejects.
    return min(float(low), mean), max(float(high), mean), means


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean. No values: (nan, nan); one value: (v, v), there is no spread to see."""
    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return (float(data[0]),) * 2 if len(data) else (math.nan, math.nan)
    return _bootstrap(data, confidence, resamples, seed)[:2]


@dataclass(frozen=True)
class PairedComparison:
    mean_difference: float  # mean of a − b over the questions
    ci_low: float
    ci_high: float
    p_value: float
    n: int

    @property
    def significant(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0  # False for NaN bounds too


def paired_bootstrap(a: Sequence[float], b: Sequence[float], confidence: float = 0.95, resamples: int = 2000,
                     seed: int = 0) -> PairedComparison:
    """a − b on the same questions. Resampling the per-question differences resamples question indices jointly,
    so question difficulty cancels out. p is two-sided from the bootstrap distribution of the mean difference."""
    if len(a) != len(b):
        raise ValueError(f"paired_bootstrap needs one score per question on both sides, got {len(a)} and {len(b)}")
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(diff) < 2:  # one question cannot show that a difference is real
        return PairedComparison(float(diff[0]) if len(diff) else math.nan, math.nan, math.nan, 1.0, len(diff))
    low, high, means = _bootstrap(diff, confidence, resamples, seed)
    # (count + 1) / (resamples + 1): a finite number of resamples never justifies p = 0.
    tail = min(np.count_nonzero(means <= 0), np.count_nonzero(means >= 0))
    p_value = min(1.0, 2 * (int(tail) + 1) / (resamples + 1))
    return PairedComparison(float(np.mean(diff)), low, high, p_value, len(diff))
