"""Compare page: run `assistant compare` as a background job (it outlives this page, a reload and the server), then
read its results: the table with confidence intervals, the chart, the recommendation, and every answer side by side
with the reference."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from assistant import datasets_folder, jobs
from assistant.filenames import safe_name
from assistant.evaluation.report import table
from assistant.evaluation.scoring import Summary
from assistant.safety import sanitise_markdown
from assistant.strategies import StrategySpec, available_strategies
from ui.core import job_log, keep_upload, recent_jobs, settings_or_stop

KNOWLEDGE = Path(__file__).resolve().parents[2] / "knowledge"
SAMPLE_EVAL, SAMPLE_EXAMPLES = KNOWLEDGE / "eval.jsonl", KNOWLEDGE / "examples.jsonl"

settings = settings_or_stop()
runs = jobs.list_jobs(settings, "compare")
root = settings.home / "comparisons"
st.title("Compare strategies")


def finished_comparisons() -> list[Path]:
    """Result folders, newest first (the CLI's default ones under the data home too)."""
    folders = [p.parent for p in root.glob("*/summary.json")]
    return sorted(folders, key=lambda f: (f / "summary.json").stat().st_mtime, reverse=True)


def pick_file(label: str, key: str, samples: list[Path]) -> Path | None:
    files = [p for p in samples if p.is_file()] + datasets_folder.data_files(settings)
    choices = list(dict.fromkeys(str(p) for p in files))
    if st.session_state.get(key) not in choices:
        st.session_state.pop(key, None)
    chosen = st.selectbox(label, choices, key=key, format_func=lambda p: Path(p).name +
                          (" (sample)" if Path(p).parent == KNOWLEDGE else ""))
    return Path(chosen) if chosen else None


def show_run(job: jobs.Job) -> None:
    with st.container(border=True):
        st.markdown(f"**{sanitise_markdown(job.label)}** · started {job.started} · {job.detail}")
        progress = job.progress()
        if job.running:
            if progress:
                st.progress(min(1.0, progress[0] / max(1, progress[1])),
                            text=f"{progress[0]} of {progress[1]} answers (cached ones count as done)")
            else:
                st.caption("Loading the models…")
            st.button("Stop", key=f"stop-{job.id}", on_click=jobs.stop, args=(settings, job),
                      disabled=job.stop_requested, help="Answers so far are kept; run it again to go on.")
        job_log(job)


def runs_panel() -> None:
    """Reruns on its own every two seconds while a comparison runs (st.fragment)."""
    current, ended = recent_jobs(settings, "compare", 3)
    if ended:
        done = [job for job in current if job.id in ended and (Path(job.meta["out"]) / "summary.json").is_file()]
        if done:
            st.session_state["cmp_show"] = done[0].meta["out"]  # show what just finished
        st.rerun()  # a comparison finished: its results appear below
    for job in current:
        show_run(job)


def to_summary(data: dict) -> Summary:
    """summary.json's entry back into the Summary the report's table is built from."""
    known = {k: v for k, v in data.items() if k in Summary.__dataclass_fields__ and k not in ("ci", "vs_plain")}
    return Summary(**known, ci={metric: tuple(bounds) for metric, bounds in data.get("ci", {}).items()})


def show_results(folder: Path) -> None:
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    if any(job.running and job.meta.get("out") == str(folder) for job in runs):
        st.info("A comparison is running into this folder; these are its previous results.")
    st.subheader(f"{summary['eval']}: {summary['questions']} questions")
    for warning in summary["warnings"]:
        st.warning(sanitise_markdown(warning))
    rows = table([to_summary(s) for s in summary["strategies"]])
    st.dataframe(pd.DataFrame(rows[1:], columns=rows[0]), hide_index=True)
    st.caption("Means with 95 % bootstrap confidence intervals in brackets. The paired test against plain and the "
               "winner per metric are in report.md.")
    if (folder / "comparison.png").is_file():
        st.image(str(folder / "comparison.png"))
    st.success(summary["recommendation"])
    if (folder / "report.md").is_file():
        st.download_button("Download report.md", (folder / "report.md").read_bytes(), "report.md", "text/markdown")
    show_answers(folder)


def show_answers(folder: Path) -> None:
    try:
        rows = [json.loads(line) for line in (folder / "answers.jsonl").read_text(encoding="utf-8").splitlines()
                if line.strip()]
    except (OSError, ValueError):
        return
    if not rows:
        return
    st.subheader("Answers side by side")
    index = st.selectbox("Question", range(len(rows)), key=f"cmp_question_{folder.name}",
                         format_func=lambda i: f"{i + 1}. {rows[i]['question'][:140]}")
    row = rows[index]
    st.markdown("**Question:** " + sanitise_markdown(row["question"]))
    st.markdown("**Reference:** " + sanitise_markdown(row["reference"]))
    if row.get("sources"):
        st.caption(sanitise_markdown("Expected sources: " + ", ".join(row["sources"])))
    for column, (strategy, answer) in zip(st.columns(len(row["answers"])), row["answers"].items()):
        with column, st.container(border=True):
            st.markdown(f"**{strategy}**")
            st.markdown(sanitise_markdown(answer["text"]) or "_(empty)_")
            metrics = answer["metrics"]
            facts = [f"token F1 {metrics['token_f1']:.2f}", f"semantic {metrics['semantic']:.2f}"]
            facts += ["declined"] if answer.get("declined") else []
            sources = ", ".join(f"[{s['number']}] {s['source']}" for s in answer.get("sources", []))
            facts += [f"sources: {sources}"] if sources else []
            st.caption(sanitise_markdown(" · ".join(facts)))


# -- a new run --------------------------------------------------------------------------------------------------
results = finished_comparisons()
with st.expander("New comparison", expanded=not results):
    upload = st.file_uploader("Upload an eval set (JSONL or CSV; `sources` enable retrieval metrics)",
                              type=["jsonl", "csv"], key="cmp_upload")
    keep_upload(settings, upload, "cmp_eval")
    eval_path = pick_file("Eval set", "cmp_eval", [SAMPLE_EVAL])
    offered = available_strategies(settings)
    names = st.multiselect("Strategies", offered, default=[n for n in ("plain", "rag") if n in offered],
                           key="cmp_strategies")
    limit = st.number_input("Questions (0 = all)", 0, 100_000, 10, key="cmp_limit",
                            help="Each strategy answers each question; on a CPU that takes seconds per answer.")
    examples = None
    if any(StrategySpec.parse(n).few_shot for n in names):
        banks = [Path(settings.examples)] if settings.examples else []
        examples = pick_file("Example bank (few-shot)", "cmp_examples", [*banks, SAMPLE_EXAMPLES])
    run_name = st.text_input("Save the results as", eval_path.stem if eval_path else "comparison",
                             help="A folder under the data home's comparisons/; answers cached there are reused by "
                             "the next run of the same name.")
    fresh = st.checkbox("Answer everything again (ignore the cached answers)")
    if st.button("Start comparison", type="primary", disabled=not names or eval_path is None):
        out = root / safe_name(run_name, "comparison")
        if any(job.running and job.meta.get("out") == str(out) for job in runs):
            st.error(f"A comparison is already writing to {out.name}; stop it or choose another name.")
        else:
            argv = ["compare", str(eval_path), "--strategies", ",".join(names), "--out", str(out),
                    *jobs.cli_flags({"limit": limit or None, "examples": examples, "fresh": fresh})]
            jobs.start(settings, "compare", argv, f"{out.name}: {', '.join(names)} on {eval_path.name}",
                       {"out": str(out)})
            st.success("Comparing in the background: it goes on if you leave or reload this page.")
            runs = jobs.list_jobs(settings, "compare")

if runs:
    st.subheader("Runs")
    st.fragment(run_every=2.0 if any(job.running for job in runs) else None)(runs_panel)()

# -- results ----------------------------------------------------------------------------------------------------
results = finished_comparisons()
if not results:
    st.info("No comparisons yet: pick an eval set and strategies above, then start one.")
    st.stop()
st.divider()
if (show := st.session_state.pop("cmp_show", None)) in [str(f) for f in results]:
    st.session_state["cmp_result"] = show
if st.session_state.get("cmp_result") not in [str(f) for f in results]:
    st.session_state.pop("cmp_result", None)
chosen = st.selectbox("Results", [str(f) for f in results], key="cmp_result", format_func=lambda f: Path(f).name)
show_results(Path(chosen))
