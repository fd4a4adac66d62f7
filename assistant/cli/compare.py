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
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json instead of the table.")] = False,
) -> None:
    """Answer every question with every strategy (greedy, cached, resumable) and report which is best."""
    from assistant.evaluation.compare import compare as run
    from assistant.evaluation.report import table

    settings = load_settings(backend=backend, model=model, max_tokens=max_tokens)
    names = [name.strip() for name in strategies.split(",") if name.strip()]
    result = run(settings, eval_file, names, out, collection, k, examples, limit, fresh, progress=not as_json)
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
