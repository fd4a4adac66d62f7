"""The comparison's files: answers.jsonl, summary.csv, summary.json, report.md (table, winners, a recommendation
grounded in the numbers) and comparison.png (one panel per main metric, 95 % confidence whiskers)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from assistant.evaluation.scoring import BASELINE, MAIN, QUALITY, Summary

LABELS = {"exact_match": "exact match", "token_f1": "token F1", "rouge_l": "ROUGE-L", "bleu": "BLEU",
          "semantic": "semantic similarity", "groundedness": "groundedness", "hit_at_k": "retrieval hit@k",
          "mrr": "retrieval MRR"}


def write_report(out_dir: Path, eval_name: str, rows: list[dict], summaries: list[Summary],
                 warnings: list[str]) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("answers.jsonl", "summary.csv", "summary.json", "report.md",
                                               "comparison.png")}
    with paths["answers.jsonl"].open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    _write_csv(paths["summary.csv"], summaries)
    summary = {"eval": eval_name, "questions": len(rows), "warnings": warnings,
               "strategies": [s.to_dict() for s in summaries], "winners": winners(summaries),
               "recommendation": recommend(summaries)}
    paths["summary.json"].write_text(json.dumps(summary, indent=2))
    paths["report.md"].write_text(_markdown(eval_name, len(rows), summaries, warnings))
    chart(summaries, paths["comparison.png"])
    return paths


def table(summaries: list[Summary], metrics: tuple[str, ...] = QUALITY) -> list[list[str]]:
    """Header + one row per strategy, values with their 95 % intervals: the CLI and report.md both show it."""
    shown = [q for q in metrics if any(s.means.get(q) is not None for s in summaries)]
    header = ["strategy", *[LABELS[q] for q in shown], "declined", "p50 s", "p95 s", "tokens in/out", "cost $"]
    rows = [header]
    for s in summaries:
        cells = [s.strategy]
        for q in shown:
            mean = s.means.get(q)
            cells.append("–" if mean is None else f"{mean:.3f} [{s.ci[q][0]:.3f}, {s.ci[q][1]:.3f}]")
        cells += [f"{s.declined_rate:.0%}", _num(s.latency_p50), _num(s.latency_p95),
                  f"{s.prompt_tokens:.0f}/{s.completion_tokens:.0f}",
                  "–" if s.cost_usd is None else f"{s.cost_usd:.4f}"]
        rows.append(cells)
    return rows


def winners(summaries: list[Summary]) -> dict[str, str]:
    found = {}
    for metric in QUALITY:
        scored = [s for s in summaries if s.means.get(metric) is not None]
        if scored:
            best = max(s.means[metric] for s in scored)
            top = [s.strategy for s in scored if s.means[metric] == best]
            found[metric] = top[0] if len(top) == 1 else "tie: " + ", ".join(top)
    return found


def recommend(summaries: list[Summary]) -> str:
    scored = [s for s in summaries if s.means.get("token_f1") is not None]
    if not scored:
        return "No answers were scored."
    best = max(scored, key=lambda s: s.means["token_f1"])
    text = f"On these {best.n} questions, {best.strategy} answers closest to the references (token F1 " \
           f"{best.means['token_f1']:.3f}, semantic similarity {best.means['semantic']:.3f})."
    versus = best.vs_plain.get("token_f1")
    if versus is not None:
        verdict = "a real improvement" if versus.significant and versus.mean_difference > 0 else \
            "not distinguishable from chance at this sample size"
        text += f" Against {BASELINE} it differs by {versus.mean_difference:+.3f} F1 (95 % CI " \
                f"{versus.ci_low:+.3f} to {versus.ci_high:+.3f}): {verdict}."
    low, _ = best.ci["token_f1"]
    beats_plain = versus is not None and versus.significant and versus.mean_difference > 0
    # Overlapping intervals of the means are a weak test; where the paired one (same questions) says the
    # difference is real, it wins.
    ties = [s for s in scored if s is not best and s.ci["token_f1"][1] >= low
            and not (s.strategy == BASELINE and beats_plain)]
    if ties:
        cheaper = min([best, *ties], key=lambda s: (s.latency_p50 or 0) + s.prompt_tokens / 1e4)
        text += f" Its interval overlaps {', '.join(s.strategy for s in ties)}"
        text += (f"; {cheaper.strategy} is the cheaper of them (p50 {cheaper.latency_p50:.2f} s, "
                 f"{cheaper.prompt_tokens:.0f} prompt tokens) and a reasonable choice." if cheaper is not best
                 else f"; {best.strategy} is also the fastest of them.")
    if best.declined_rate:
        text += f" It declined {best.declined_rate:.0%} of questions for lack of relevant knowledge-base text."
    if best.n < 100:
        text += " With fewer than 100 questions, treat small differences with caution."
    return text


def chart(summaries: list[Summary], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [q for q in (*MAIN, "groundedness", "hit_at_k") if any(s.means.get(q) is not None for s in summaries)]
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.6), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        shown = [s for s in summaries if s.means.get(metric) is not None]
        means = [s.means[metric] for s in shown]
        errors = [[mean - s.ci[metric][0] for s, mean in zip(shown, means)],
                  [s.ci[metric][1] - mean for s, mean in zip(shown, means)]]
        axis.bar(range(len(shown)), means, yerr=errors, capsize=4, color="#4c78a8")
        axis.set_xticks(range(len(shown)), [s.strategy for s in shown], rotation=30, ha="right", fontsize=8)
        axis.set_title(LABELS[metric], fontsize=10)
        axis.set_ylim(0, 1)
        axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def _write_csv(path: Path, summaries: list[Summary]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["strategy", "n", *[f"{q}{suffix}" for q in QUALITY for suffix in ("", "_ci_low", "_ci_high")],
                         "declined_rate", "latency_p50_s", "latency_p95_s", "prompt_tokens_mean",
                         "completion_tokens_mean", "cost_usd"])
        for s in summaries:
            cells = [s.strategy, s.n]
            for q in QUALITY:
                cells += [s.means.get(q), *(s.ci.get(q) or (None, None))]
            writer.writerow([*cells, s.declined_rate, s.latency_p50, s.latency_p95, s.prompt_tokens,
                             s.completion_tokens, s.cost_usd])


def _markdown(eval_name: str, questions: int, summaries: list[Summary], warnings: list[str]) -> str:
    rows = table(summaries)
    lines = [f"# Strategy comparison on {eval_name} ({questions} questions)", "",
             "Means with 95 % bootstrap confidence intervals.", "",
             "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    paired = [(s, metric, c) for s in summaries for metric, c in s.vs_plain.items()]
    if paired:
        lines += ["", f"## Against {BASELINE} (paired bootstrap on the same questions)", "",
                  "| strategy | metric | difference | 95 % CI | p | real? |", "|---|---|---|---|---|---|"]
        lines += [f"| {s.strategy} | {LABELS[metric]} | {c.mean_difference:+.3f} | {c.ci_low:+.3f} … "
                  f"{c.ci_high:+.3f} | {c.p_value:.3f} | {'yes' if c.significant else 'no'} |"
                  for s, metric, c in paired]
    configured = [s for s in summaries if s.retrieval]
    if configured:
        lines += ["", "## Retrieval the rag strategies used", ""]
        lines += [f"- {s.strategy}: {describe_retrieval(s.retrieval)}" for s in configured]
    lines += ["", "## Winner per metric", ""]
    lines += [f"- {LABELS[metric]}: **{name}**" for metric, name in winners(summaries).items()]
    lines += ["", "## Recommendation", "", recommend(summaries), "", "![comparison](comparison.png)"]
    if warnings:
        lines += ["", "## Warnings", "", *[f"- {w}" for w in warnings]]
    return "\n".join(lines) + "\n"


def describe_retrieval(config: dict) -> str:
    reranker = f"reranked by {config['reranker']} (top {config['rerank_top_n']})" if config.get("reranker") \
        else "no reranker"
    return f"{config['mode']} search, embedder {config['embedder']}, {reranker}"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
