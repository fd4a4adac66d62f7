"""`assistant compare`: which strategy answers best on my held-out questions, with numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from assistant.config import load_settings

DEFAULT_STRATEGIES = "plain,few-shot,rag,rag+few-shot"
TERMINAL_METRICS = ("token_f1", "rouge_l", "semantic", "groundedness", "hit_at_k")


def compare(
    eval_file: Annotated[Path, typer.Argument(help="Questions with reference answers (JSONL or CSV; optional "
                                                   "'sources' enable retrieval metrics).")],
    strategies: Annotated[str, typer.Option(help="Comma-separated, e.g. plain,rag,fine-tuned:NAME.")]
    = DEFAULT_STRATEGIES,
    collection: Annotated[Optional[str], typer.Option("--collection", "-c", help="Knowledge base (rag).")] = None,
    examples: Annotated[Optional[Path], typer.Option(help="Example bank (few-shot).")] = None,
    k: Annotated[Optional[int], typer.Option("-k", min=1, max=50, help="Passages per prompt (rag).")] = None,
    backend: Annotated[Optional[str], typer.Option(help="Generator backend: local | openai.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model: a local folder/.gguf, or an OpenAI model id.")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="Most tokens per answer.")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Only the first N questions.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: <data home>/comparisons/<eval>).")]
    = None,
    fresh: Annotated[bool, typer.Option(help="Ignore cached answers and answer everything again.")] = False,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Questions in flight at once: for a server "
                                             "(openai backend, vLLM, assistant serve) that answers many together.")]
    = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json instead of the table.")] = False,
    retrieval_only: Annotated[bool, typer.Option("--retrieval-only", help="Score retrieval alone (no generation): "
                                                 "hit@k, MRR, nDCG@10, recall, latency per mode.")] = False,
    modes: Annotated[str, typer.Option(help="--retrieval-only: dense,bm25,hybrid.")] = "dense,bm25,hybrid",
    ks: Annotated[str, typer.Option(help="--retrieval-only: the k values to report.")] = "1,3,5,10",
    rerank: Annotated[bool, typer.Option(help="--retrieval-only: also each mode + ASSISTANT_RERANKER.")] = False,
    embedders: Annotated[str, typer.Option(help="--retrieval-only: also these embedders (tuned here, or folders), "
                                                "comma-separated, on a scratch copy of the chunks.")] = "",
) -> None:
    """Answer every question with every strategy (greedy, cached, resumable) and report which is best; with
    --retrieval-only, score only how well each retrieval mode finds the sources the questions name (seconds)."""
    if retrieval_only:
        _retrieval_only(eval_file, collection, modes, ks, rerank, limit, out, as_json,
                        tuple(e.strip() for e in embedders.split(",") if e.strip()))
        return
    from assistant.evaluation.compare import compare as run
    from assistant.evaluation.report import table

    settings = load_settings(backend=backend, model=model, max_tokens=max_tokens)
    names = [name.strip() for name in strategies.split(",") if name.strip()]
    result = run(settings, eval_file, names, out, collection, k, examples, limit, fresh, progress=not as_json,
                 concurrency=concurrency)
    if as_json:
        print(result.files["summary.json"].read_text())
        return
    err = Console(stderr=True)
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    rows = table(result.summaries, TERMINAL_METRICS)  # report.md has them all
    grid = Table(*rows[0], title=f"{eval_file.name}: 95 % confidence intervals in brackets")
    for row in rows[1:]:
        grid.add_row(*row)
    Console(width=160).print(grid)
    print(result.recommendation)
    print(f"Report: {result.files['report.md']} (chart: {result.files['comparison.png'].name}; "
          f"{result.computed} new answer(s), the rest from the cache)")


def _retrieval_only(eval_file: Path, collection: str | None, modes: str, ks: str, rerank: bool, limit: int | None,
                    out: Path | None, as_json: bool, embedders: tuple[str, ...]) -> None:
    from assistant.errors import ConfigError
    from assistant.evaluation.retrieval_only import evaluate, table

    try:
        k_values = tuple(sorted({int(k) for k in ks.split(",") if k.strip()}))
    except ValueError:
        raise ConfigError(f"--ks takes whole numbers separated by commas, got {ks!r}.") from None
    if not k_values or min(k_values) < 1:
        raise ConfigError("--ks needs at least one k of 1 or more.")
    report = evaluate(load_settings(), eval_file, [m.strip() for m in modes.split(",") if m.strip()], k_values,
                      collection, rerank, limit, out, embedders=embedders)
    if as_json:
        print(report.files["retrieval.json"].read_text())
        return
    rows = table(report)
    grid = Table(*rows[0], title=f"{eval_file.name}: retrieval on {report.collection} ({report.questions} questions; "
                                 f"query embedding {report.embed_ms_per_query} ms each, not in the latencies)")
    for row in rows[1:]:
        grid.add_row(*row)
    Console(width=160).print(grid)
    print(f"Report: {report.files['retrieval.md']} (chart: {report.files['retrieval.png'].name})")
