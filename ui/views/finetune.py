"""Fine-tune page: pick or upload examples, read their validation report, train as a background job (it outlives
this page, a reload and the server), watch the loss, stop it, and chat with the models in the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from assistant import datasets_folder, jobs
from assistant.errors import AssistantError
from assistant.finetune.embedder import EmbedderTrainConfig
from assistant.finetune.lora_config import LoraTrainConfig
from assistant.finetune.registry import Registry, check_name
from assistant.safety import sanitise_markdown
from ui.core import job_log, keep_upload, recent_jobs, settings_or_stop

SAMPLE = Path(__file__).resolve().parents[2] / "knowledge" / "examples.jsonl"
OPENAI_BASE = "gpt-4o-mini-2024-07-18"
DEFAULTS = LoraTrainConfig()
EMBEDDER = EmbedderTrainConfig()

settings = settings_or_stop()
registry = Registry.from_settings(settings)
runs = jobs.list_jobs(settings, "finetune")
st.title("Fine-tune")


@st.cache_resource(show_spinner="Loading the tokenizer…")
def _token_counter(model: str | None, _settings, key: str):
    from assistant.finetune import lora

    return lora.token_counter(_settings, model)


@st.cache_data(show_spinner="Checking the data…", max_entries=32)
def validation_report(path: Path, stamp: tuple, provider: str, model: str | None, max_length: int,
                      val_fraction: float, epochs: int | None):
    """What `assistant finetune validate` prints, as an object (OpenAI: the local tokenizer approximates theirs).
    `stamp` (the file's mtime and size) makes a changed file a new cache entry."""
    from assistant.finetune.datasets import validate
    from assistant.pricing import price_of

    price = price_of(model) if provider == "openai" and model else None
    count, tokenizer = _token_counter(None if provider == "openai" else model, settings, settings.home.as_posix())
    if provider == "openai":
        tokenizer += " (an approximation of OpenAI's tokenizer)"
    limit = price.training_context if price else max_length
    return validate(path, count, tokenizer, limit, val_fraction, False, model if price else None, epochs)


def show_report(report) -> None:
    columns = st.columns(4)
    for column, (label, value) in zip(columns, [("Examples", report.examples), ("Lines with errors",
                                      len(report.errors)), ("Train", report.train), ("Validation", report.validation)]):
        column.metric(label, value)
    if report.errors:
        lines = [f"- line {e.line}: {e.message}" for e in report.errors[:50]]
        more = [f"- … and {len(report.errors) - 50} more"] if len(report.errors) > 50 else []
        heading = f"**{len(report.errors)} line(s) with errors** (skipped when training):"
        st.error(sanitise_markdown("\n".join([heading, *lines, *more])))
    problems = [f"- line {line} repeats line {first} (dropped when training)"
                for line, first in report.exact_duplicates]
    problems += [f"- line {line} is nearly line {other} (similarity {similarity:.2f})"
                 for line, other, similarity in report.near_duplicates]
    problems += [f"- line {line}: {n} tokens > {report.max_length} (cut)" for line, n in report.too_long]
    if problems:
        st.warning("\n".join(["**Duplicates and long examples**", *problems[:50]]))
    t = report.tokens
    st.markdown(f"Tokens per example ({report.tokenizer}): min {t.min}, mean {t.mean}, p95 {t.p95}, max {t.max}; "
                f"total {t.total:,}. Split: {report.train} train, {report.validation} validation.")
    if report.cost:
        c = report.cost
        st.info(f"OpenAI {c.model}: {c.epochs} epochs ≈ {c.billed_tokens:,} billed tokens ≈ \\${c.usd:.2f} "
                f"({c.note}).")  # escaped: a lone $ starts LaTeX in Markdown
    for warning in report.warnings:
        st.warning(warning)


def loss_frame(name: str) -> pd.DataFrame | None:
    """history.jsonl (written by the run as it trains) in long form: one row per (step, series)."""
    try:
        lines = (registry.run_dir(name) / "history.jsonl").read_text(encoding="utf-8").splitlines()
    except (OSError, AssistantError):
        return None
    rows = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:  # the line being written right now
            continue
        for key, series in (("train_loss", "train"), ("val_loss", "validation")):
            if key in entry:
                rows.append({"step": entry["step"], "loss": entry[key], "series": series})
    return pd.DataFrame(rows) if rows else None


def show_run(job: jobs.Job, latest: bool) -> None:
    """`latest`: the newest run of its model, the one a Resume continues."""
    name, provider = job.meta.get("name", "?"), job.meta.get("provider", "local")
    with st.container(border=True):
        st.markdown(f"**{name}** · {provider} · started {job.started} · {job.detail}")
        progress = job.progress()
        if job.running and progress:
            st.progress(min(1.0, progress[0] / max(1, progress[1])), text=f"step {progress[0]} of {progress[1]}")
        if job.running:
            left, right = st.columns(2)
            left.button("Stop", key=f"stop-{job.id}", on_click=jobs.stop, args=(settings, job),
                        disabled=job.stop_requested, help="A local run checkpoints at its next step and can be "
                        "resumed; an OpenAI job is cancelled.")
            if job.stop_requested:
                right.button("Force stop", key=f"kill-{job.id}", on_click=jobs.stop, args=(settings, job, True),
                             help="Kill it now, without a checkpoint.")
        elif latest and job.status == "stopped" and provider == "local":
            argv = job.argv if "--resume" in job.argv else [*job.argv, "--resume"]
            st.button("Resume", key=f"resume-{job.id}", on_click=jobs.start,
                      args=(settings, "finetune", argv, job.label.removesuffix(" (resumed)") + " (resumed)", job.meta))
        frame = loss_frame(name) if latest else None  # runs of one model share it
        if frame is not None:
            st.line_chart(frame, x="step", y="loss", color="series", height=240)
        job_log(job)


def metrics_text(metrics: dict) -> str:
    """A run's metrics in a line; a retrieval run's held-out scores as before → after."""
    if isinstance(metrics.get("before"), dict) and isinstance(metrics.get("after"), dict):
        return ", ".join(f"{k} {metrics['before'][k]:.3f} → {v:.3f}" for k, v in metrics["after"].items()
                         if k in metrics["before"])
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
                     if not isinstance(v, dict))


def runs_panel() -> None:
    """Rerun on its own every two seconds while a run is going (st.fragment), so the loss curve moves."""
    current, ended = recent_jobs(settings, "finetune", 5)
    if ended:
        st.rerun()  # a run ended: the registry below changed too
    if not current:
        st.caption("No training runs yet.")
    seen: set[str] = set()
    for job in current:
        show_run(job, job.meta.get("name") not in seen)
        seen.add(job.meta.get("name"))


# -- 1. data ----------------------------------------------------------------------------------------------------
st.subheader("Training data")
upload = st.file_uploader("Upload examples (JSONL or CSV: prompt/completion, prompt/response or chat messages)",
                          type=["jsonl", "csv"], key="ft_upload")
keep_upload(settings, upload, "ft_data")
choices = [str(p) for p in ([SAMPLE] if SAMPLE.is_file() else []) + datasets_folder.data_files(settings)]
if not choices:
    st.info("Upload a file of examples to start.")
    st.stop()
if st.session_state.get("ft_data") not in choices:
    st.session_state.pop("ft_data", None)  # a file that has gone since
data = Path(st.selectbox("Dataset", choices, key="ft_data",
                         format_func=lambda p: f"{Path(p).name} (sample)" if p == str(SAMPLE) else Path(p).name))

# -- 2. settings ------------------------------------------------------------------------------------------------
st.subheader("Training settings")
target = st.radio("What to tune", ["generator", "embedder"], horizontal=True, key="ft_target",
                  captions=["the model that answers", "retrieval: the knowledge base's embedder, on the same pairs"])
provider = "local" if target == "embedder" else st.radio(
    "Provider", ["local", "openai"], horizontal=True, key="ft_provider",
    captions=["LoRA adapter on a local model, on this machine", "an OpenAI fine-tuning job"])
if target == "embedder":
    model = None
    a, b, c, d = st.columns(4)
    options = {"epochs": a.number_input("Epochs", 1, 100, EMBEDDER.epochs, key="ft_emb_epochs"),
               "lr": b.number_input("Learning rate", 1e-7, 1.0, EMBEDDER.learning_rate, format="%g", step=1e-5,
                                    key="ft_emb_lr"),
               "batch_size": c.number_input("Batch size (in-batch negatives)", 2, 1024, EMBEDDER.batch_size,
                                            key="ft_emb_batch"),
               "patience": d.number_input("Patience", 0, 100, EMBEDDER.patience, key="ft_emb_patience"),
               "val_fraction": a.number_input("Held-out fraction", 0.05, 0.9, EMBEDDER.val_fraction, step=0.05,
                                              key="ft_emb_val"),
               "target": "embedder"}
elif provider == "local":
    model = st.text_input("Base model", key="ft_model", placeholder="the bundled SmolLM2-135M-Instruct",
                          help="A local Hugging Face folder or .gguf file; empty: the bundled model.") or None
    a, b, c, d = st.columns(4)
    options = {"epochs": a.number_input("Epochs", 1, 100, DEFAULTS.epochs),
               "lr": b.number_input("Learning rate", 1e-6, 1.0, DEFAULTS.learning_rate, format="%g", step=1e-4),
               "batch_size": c.number_input("Batch size", 1, 512, DEFAULTS.batch_size),
               "max_length": d.number_input("Max length (tokens)", 16, 8192, DEFAULTS.max_length),
               "lora_r": a.number_input("LoRA r", 1, 256, DEFAULTS.r),
               "lora_alpha": b.number_input("LoRA alpha", 1, 1024, DEFAULTS.alpha),
               "lora_dropout": c.number_input("LoRA dropout", 0.0, 0.95, DEFAULTS.dropout, step=0.05),
               "patience": d.number_input("Patience (0 = never stop early)", 0, 100, DEFAULTS.patience),
               "val_fraction": a.number_input("Validation fraction", 0.0, 0.9, DEFAULTS.val_fraction, step=0.05)}
else:
    model = st.text_input("OpenAI base model", OPENAI_BASE, key="ft_openai_model").strip() or OPENAI_BASE
    a, b, c = st.columns(3)
    options = {"epochs": a.number_input("Epochs (0 = OpenAI decides)", 0, 50, 0) or None,
               "batch_size": b.number_input("Batch size (0 = OpenAI decides)", 0, 256, 0) or None,
               "suffix": c.text_input("Model id suffix", max_chars=18).strip() or None}

st.subheader("Validation report")
try:
    stat = data.stat()
    report = validation_report(data, (stat.st_mtime_ns, stat.st_size), provider, model,
                               options.get("max_length", DEFAULTS.max_length),
                               options.get("val_fraction", 0.0), options.get("epochs"))
    show_report(report)
except (AssistantError, OSError) as exc:
    report = None
    st.error(str(exc))

# -- 3. start ---------------------------------------------------------------------------------------------------
name = st.text_input("Name for the model", key="ft_name", placeholder="e.g. nimbus",
                     help="Chat with it later as the strategy fine-tuned:NAME.").strip()
if st.button("Start training", type="primary", disabled=report is None or not name):
    busy = [job for job in runs if job.running and job.meta.get("name") == name]
    try:
        check_name(name)
        if busy:
            raise AssistantError(f"{name!r} is training already; stop that run first.")
        if registry.exists(name) and registry.get(name).status not in ("failed", "cancelled"):
            raise AssistantError(f"A model named {name!r} already exists ({registry.get(name).status}); pick "
                                 "another name (a stopped run has a Resume button below).")
        argv = ["finetune", "train", str(data), "--name", name, "--provider", provider,
                *jobs.cli_flags({"model": model, **options})]
        jobs.start(settings, "finetune", argv, f"{name} ← {data.name}",
                   {"name": name, "provider": provider, "data": str(data), "target": target})
        st.success(f"Training {name} in the background: it goes on if you leave or reload this page.")
        runs = jobs.list_jobs(settings, "finetune")
    except AssistantError as exc:
        st.error(str(exc))

st.subheader("Training runs")
st.fragment(run_every=2.0 if any(job.running for job in runs) else None)(runs_panel)()

# -- 4. the registry --------------------------------------------------------------------------------------------
st.subheader("Fine-tuned models")
records = registry.list()
if not records:
    st.caption("None yet.")
else:
    st.dataframe(pd.DataFrame([{
        "name": r.name, "tunes": r.target, "provider": r.provider, "base": r.base_model, "status": r.status,
        "created": r.created, "metrics": metrics_text(r.metrics), "model id": r.model_id or "",
        "error": r.error or ""} for r in records]), hide_index=True)
    for r in records:
        if r.target == "embedder" and r.ready:
            st.caption(f"Retrieval with {r.name}, held-out questions before → after: {metrics_text(r.metrics)}. Use "
                       f"it: `assistant kb reindex --embedder {r.name}`, then ASSISTANT_EMBEDDER={r.name}.")
    ready = [r.name for r in records if r.ready and r.target == "generator"]
    if ready:
        chosen = st.selectbox("Model", ready, index=len(ready) - 1, key="ft_chat_model")
        if st.button("Chat with this model", icon=":material/chat:"):
            st.session_state["strategy"] = f"fine-tuned:{chosen}"
            st.switch_page("views/chat.py")
