"""`assistant ingest`, `assistant kb …` and `assistant retrieve`: the knowledge-base commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from assistant.config import load_settings

kb_app = typer.Typer(help="Inspect and manage knowledge bases.", no_args_is_help=True)
CollectionOpt = Annotated[Optional[str], typer.Option("--collection", "-c", help="Knowledge base name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
err = Console(stderr=True)


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (walked recursively).")],
    collection: CollectionOpt = None,
    prune: Annotated[bool, typer.Option(help="Remove documents whose files are gone (of this shard, with --shard).")
                     ] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Processes loading and embedding files in parallel "
                                         "(each uses its share of the CPU cores).")] = 1,
    shard: Annotated[Optional[str], typer.Option(help="Take only share i of N of the files, e.g. 1/2 here and 2/2 "
                                                 "on another machine ingesting into the same Chroma server.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add or update documents in a knowledge base; unchanged files are skipped."""
    from ingest.pipeline import Ingestor, Shard
    from ingest.pipeline import Progress as Callbacks

    settings = load_settings()
    share = Shard.parse(shard) if shard else None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=as_json) as bar:
        files = bar.add_task("files", total=None)
        chunks = bar.add_task("chunks embedded", total=None)
        callbacks = Callbacks(on_start=lambda total: bar.update(files, total=total),
                              on_file=lambda result: bar.advance(files),
                              on_embedded=lambda count: bar.advance(chunks, count))
        report = Ingestor(settings).run(paths, collection=collection, prune=prune, progress=callbacks,
                                        workers=workers, shard=share)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        counts = ", ".join(f"{report.count(s)} {s}" for s in ("added", "updated", "unchanged", "removed", "failed"))
        print(f"{report.collection}: {counts} · {report.embedded_chunks} chunks embedded · {report.seconds:.1f} s")
        for failure in report.failed:
            print(f"  FAILED {failure.doc_id}: {failure.reason} — {failure.detail}")
    if report.failed:
        raise typer.Exit(1)


def retrieve(
    query: Annotated[str, typer.Argument(help="What to search for.")],
    k: Annotated[int, typer.Option("-k", min=1, max=100, help="How many passages.")] = 4,
    mode: Annotated[str, typer.Option(help="dense | bm25 | hybrid (both, fused by rank).")] = "hybrid",
    threshold: Annotated[Optional[float], typer.Option(help="Drop passages less similar (cosine) than this.")] = None,
    source: Annotated[Optional[list[str]], typer.Option(help="Only these documents (repeatable).")] = None,
    collection: CollectionOpt = None,
    rerank: Annotated[bool, typer.Option(help="Re-score with ASSISTANT_RERANKER when one is set.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Show the passages of a knowledge base closest to a query, with source, location and score."""
    from assistant.retrieval import Retriever

    retriever = Retriever.from_settings(load_settings(), collection)
    passages = retriever.retrieve(query, k, mode=mode, threshold=threshold, sources=source,  # type: ignore[arg-type]
                                  rerank=rerank)
    if as_json:
        print(json.dumps([p.to_dict() for p in passages], indent=2, ensure_ascii=False))
        return
    if retriever.last_rerank_ms is not None:
        print(f"(reranked the top {retriever.rerank_top_n} with {retriever.reranker.name} in "
              f"{retriever.last_rerank_ms:.0f} ms)")
    if not passages:
        print("No passages found (empty knowledge base, or nothing passed the threshold/source filter).")
    for rank, passage in enumerate(passages, start=1):
        where = f"{passage.source}" + (f" ({passage.location})" if passage.location else "")
        print(f"[{rank}] {passage.score:.3f}  {where}")
        print("    " + passage.text[:300].replace("\n", " ") + ("…" if len(passage.text) > 300 else ""))


@kb_app.command("list")
def kb_list(as_json: JsonOpt = False) -> None:
    """Knowledge bases and their documents with chunk counts."""
    from ingest.kb import list_collections

    infos = list_collections(load_settings())
    if as_json:
        print(json.dumps([{"name": i.name, "embedder": i.embedder, "chunks": i.chunks, "documents": i.documents}
                          for i in infos], indent=2))
        return
    if not infos:
        print("No knowledge bases yet: `assistant ingest PATH` creates one.")
    for info in infos:
        print(f"{info.name}  ({len(info.documents)} documents, {info.chunks} chunks, embedder {info.embedder})")
        for doc_id, count in sorted(info.documents.items()):
            print(f"  {count:6d}  {doc_id}")


@kb_app.command("remove")
def kb_remove(doc_id: Annotated[str, typer.Argument(help="Document id, as `kb list` shows it.")],
              collection: CollectionOpt = None) -> None:
    """Remove one document's chunks from a knowledge base."""
    from ingest.kb import remove_document

    settings = load_settings()
    removed = remove_document(settings, collection or settings.collection, doc_id)
    print(f"Removed {doc_id} ({removed} chunks).")


@kb_app.command("reindex")
def kb_reindex(
    collection: CollectionOpt = None,
    embedder: Annotated[Optional[str], typer.Option(help="Re-embed with this embedder: the name of one tuned here "
                                                         "(finetune train --target embedder) or a folder.")] = None,
) -> None:
    """Re-embed a knowledge base with the configured embedder (after changing ASSISTANT_EMBEDDER), or --embedder."""
    from ingest.kb import reindex

    settings = load_settings(embedder=embedder)
    name = collection or settings.collection
    print(f"Reindexed {name}: {reindex(settings, name)} chunks.")
    if embedder is not None:
        print(f"Search it with the same embedder: set ASSISTANT_EMBEDDER={embedder} (or embedder = \"{embedder}\" in "
              "assistant.toml); any other embedder is refused for this knowledge base.")


@kb_app.command("stats")
def kb_stats(collection: CollectionOpt = None, as_json: JsonOpt = False) -> None:
    """Size, embedder and state of a knowledge base."""
    from ingest.kb import stats

    settings = load_settings()
    info = stats(settings, collection or settings.collection)
    if as_json:
        print(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        print(f"{key:>22}: {value}")
