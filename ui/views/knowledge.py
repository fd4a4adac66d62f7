"""Knowledge base page: upload and ingest files, see and prune the documents, re-index, and try retrieval.

Everything shown that came from a user or a document (file names, headings, chunk text) goes through st.text,
st.code or a table, never through Markdown, so a hostile name or document cannot add links or images to the page.
"""

from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from assistant.config import Settings
from assistant.embeddings import Embedder, SentenceTransformerEmbedder
from assistant.errors import AssistantError
from assistant.retrieval import MODES, Retriever
from ingest.kb import check_collection_name, collection_info, collection_names, reindex, remove_document, stats
from ingest.pipeline import FileResult, Progress
from ui.core import _or_stop, settings_or_stop
from ui.uploads import UPLOAD_TYPES, forget_upload, ingest_uploads

SCORE_MEANING = {"dense": "score = cosine similarity", "bm25": "score = BM25 (term match)",
                 "hybrid": "score = 1 / rank: dense's order, BM25's best hit first on a rare term"}
SAMPLE_EVAL = Path(__file__).resolve().parents[2] / "knowledge" / "eval.jsonl"


@st.cache_resource(show_spinner="Loading the embedder…")
def _embedder(_settings: Settings, key: str) -> Embedder:
    return SentenceTransformerEmbedder.from_settings(_settings)


def embedder_or_stop(settings: Settings) -> Embedder:
    return _or_stop(_embedder, settings, settings.model_dump_json())


def flash(kind: str, text: str) -> None:
    """A message shown once, after the rerun an action triggers (so the lists above it are already fresh)."""
    st.session_state["kb_flash"] = (kind, text)


def show_flash() -> None:
    if message := st.session_state.pop("kb_flash", None):
        getattr(st, message[0])(message[1])


settings = settings_or_stop()
st.title("Knowledge base")
options = sorted({*_or_stop(collection_names, settings), settings.collection})
pick, new = st.columns(2)
chosen = pick.selectbox("Knowledge base", options, index=options.index(settings.collection), key="kb_pick")
typed = new.text_input("…or a new one", key="kb_new", placeholder="name",
                       help="3-63 letters, digits, '.', '_' or '-'; created by the first upload.")
collection = typed.strip() or chosen
collection = _or_stop(check_collection_name, collection)
show_flash()
add, documents, search = st.tabs(["Add files", "Documents", "Retrieval test"])


def ingest(files: list) -> None:
    with st.status(f"Ingesting {len(files)} file(s)…", expanded=True) as status:
        bar = st.progress(0.0, text="Checking and saving the files")
        done = {"files": 0, "total": 0, "chunks": 0}

        def show(_: object = None) -> None:
            total = max(done["total"], 1)
            bar.progress(min(done["files"] / total, 1.0),
                         text=f"{done['files']}/{done['total']} files · {done['chunks']} chunks embedded")

        def on_file(result: FileResult) -> None:
            done["files"] += 1
            show()

        def on_embedded(count: int) -> None:
            done["chunks"] += count
            show()

        progress = Progress(on_start=lambda total: (done.update(total=total), show()), on_file=on_file,
                            on_embedded=on_embedded)
        try:
            outcome = ingest_uploads(settings, collection, files, replace=st.session_state.get("kb_replace", True),
                                     embedder=_embedder(settings, settings.model_dump_json()), progress=progress)
        except AssistantError as exc:
            status.update(label="Ingestion failed", state="error")
            st.error(str(exc))
            return
        report = outcome.report
        counts = ", ".join(f"{report.count(s)} {s}" for s in ("added", "updated", "unchanged", "failed"))
        status.update(label=f"Ingested into {collection}: {counts}", state="error" if report.failed else "complete",
                      expanded=False)
    st.session_state["kb_report"] = (collection, counts, report.embedded_chunks, report.seconds, outcome.rows())


with add:
    limit_mb = settings.max_file_mb
    files = st.file_uploader(
        f"Files ({', '.join(UPLOAD_TYPES)}; at most {limit_mb:g} MB each)", type=UPLOAD_TYPES,
        accept_multiple_files=True, max_upload_size=max(1, math.ceil(limit_mb)),
        key="kb_files")
    st.checkbox("Replace documents of the same name", value=True, key="kb_replace",
                help="Off: an upload whose name is taken gets a numbered name and becomes a new document.")
    if st.button("Ingest", type="primary", disabled=not files):
        ingest(files)
    if last := st.session_state.get("kb_report"):
        name, counts, chunks, seconds, rows = last
        st.subheader("Last ingestion")
        st.text(f"{name}: {counts} · {chunks} chunks embedded · {seconds:.1f} s")
        st.dataframe(rows, hide_index=True, width="stretch")
        if failed := [row for row in rows if row["status"] == "failed"]:
            st.warning(f"{len(failed)} file(s) were not ingested; the reason and detail columns say why.")


def ask_removal(doc_id: str) -> None:
    st.session_state["kb_confirm"] = doc_id


def remove(doc_id: str) -> None:
    st.session_state.pop("kb_confirm", None)
    try:
        chunks = remove_document(settings, collection, doc_id)
    except AssistantError as exc:
        return flash("error", str(exc))
    forget_upload(settings, collection, doc_id)
    flash("success", f"Removed a document ({chunks} chunks).")


def run_reindex() -> None:
    try:
        with st.spinner("Re-embedding every chunk…"):
            count = reindex(settings, collection, _embedder(settings, settings.model_dump_json()))
    except AssistantError as exc:
        return flash("error", str(exc))
    flash("success", f"Re-indexed {collection}: {count} chunks.")


with documents:
    info = _or_stop(collection_info, settings, collection)
    if info is None:
        st.info(f"No knowledge base named {collection} yet: add files to create it.")
    else:
        left, middle, right = st.columns(3)
        left.metric("Documents", len(info.documents))
        middle.metric("Chunks", info.chunks)
        right.metric("Embedder", info.embedder or "unknown")
        st.dataframe([{"document": doc_id, "chunks": count} for doc_id, count in sorted(info.documents.items())],
                     hide_index=True, width="stretch")
        if info.documents:
            doc_id = st.selectbox("Document", sorted(info.documents), key="kb_doc")
            pending = st.session_state.get("kb_confirm")
            if pending in info.documents:
                st.warning("Remove this document and its chunks from the knowledge base? This cannot be undone.")
                st.text(f"{pending} ({info.documents[pending]} chunks)")
                yes, no = st.columns(2)
                yes.button("Yes, remove it", type="primary", on_click=remove, args=(pending,))
                no.button("Cancel", on_click=st.session_state.pop, args=("kb_confirm", None))
            else:
                st.button("Remove document…", on_click=ask_removal, args=(doc_id,))
        st.button("Re-index", on_click=run_reindex,
                  help="Re-embed every chunk with the configured embedder (after changing ASSISTANT_EMBEDDER).")
        with st.expander("Stats"):
            st.json(_or_stop(stats, settings, collection))


with search:
    with st.form("kb_search"):
        query = st.text_input("Query", key="kb_query")
        k_column, mode_column, threshold_column = st.columns(3)
        k = k_column.number_input("k", min_value=1, max_value=50, value=settings.top_k)
        mode = mode_column.radio("Mode", MODES, index=MODES.index(settings.retrieval_mode), horizontal=True)
        threshold = threshold_column.number_input("Threshold (cosine, optional)", min_value=-1.0, max_value=1.0,
                                                  value=None, step=0.05)
        submitted = st.form_submit_button("Search")
    if submitted and query.strip():
        retriever = _or_stop(Retriever.from_settings, settings, collection, embedder_or_stop(settings))
        passages = _or_stop(retriever.retrieve, query, int(k), mode, threshold)
        st.session_state["kb_passages"] = (collection, mode, passages)
    if (found := st.session_state.get("kb_passages")) and found[0] == collection:
        _, shown_mode, passages = found
        st.caption(f"{len(passages)} passage(s) · mode {shown_mode} · {SCORE_MEANING[shown_mode]}")
        if not passages:
            st.info("No passages: the knowledge base is empty, or nothing passed the threshold.")
        for rank, passage in enumerate(passages, start=1):
            with st.container(border=True):
                where = passage.source + (f" — {passage.location}" if passage.location else "")
                similarity = "" if passage.similarity is None else f" · similarity {passage.similarity:.3f}"
                st.text(f"[{rank}] score {passage.score:.4f}{similarity} · {where}")
                st.code(passage.text, language=None, wrap_lines=True)

    st.subheader("Evaluate retrieval")
    st.caption("Every question of an eval file that names its sources, searched in each mode: hit@k, MRR, nDCG@10 "
               "and latency — no answers generated (`assistant compare EVAL --retrieval-only`).")
    with st.form("kb_evaluate"):
        eval_path = st.text_input("Eval file (JSONL or CSV with sources)", value=str(SAMPLE_EVAL), key="kb_eval")
        chosen_modes = st.multiselect("Modes", MODES, default=list(MODES), key="kb_eval_modes")
        evaluated = st.form_submit_button("Evaluate retrieval")
    if evaluated and chosen_modes:
        from assistant.evaluation.retrieval_only import evaluate, table

        retriever = _or_stop(Retriever.from_settings, settings, collection, embedder_or_stop(settings))
        with st.spinner("Searching every question…"):
            report = _or_stop(lambda: evaluate(settings, Path(eval_path).expanduser(), chosen_modes,
                                               collection=collection, retriever=retriever))
        st.session_state["kb_evaluation"] = (collection, report, table(report))
    if (done := st.session_state.get("kb_evaluation")) and done[0] == collection:
        _, report, rows = done
        st.caption(f"{report.questions} questions ({report.skipped} without sources) · embedder {report.embedder} · "
                   f"query embedding {report.embed_ms_per_query} ms each, not in the latencies")
        st.dataframe([dict(zip(rows[0], row)) for row in rows[1:]], hide_index=True)
        st.image(str(report.files["retrieval.png"]))
        st.caption(f"Saved in {report.files['retrieval.md'].parent}")
