"""The Fine-tune page through AppTest: the validation report, training started as a real background job (against the
loopback OpenAI fine-tuning server, or failing fast locally), stopping it, the loss chart, and the registry."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from assistant import jobs
from assistant.config import load_settings
from assistant.finetune import lora
from assistant.finetune.registry import ModelRecord, Registry
from tests.limits import HANG_GUARD_S
from tests.openai_finetune_server import SUCCEEDS, FineTuningServer
from tests.openai_server import KEY

UI = Path(__file__).resolve().parents[1] / "ui"
PAGE, APP = str(UI / "views" / "finetune.py"), str(UI / "app.py")
GOOD = [{"prompt": f"Question {n} about the router?", "completion": f"Answer {n}: restart it."} for n in range(12)]


@pytest.fixture(autouse=True)
def fake_tokenizer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Token counts by words: the page never loads the real tokenizer (or the model it comes with) here."""
    monkeypatch.setattr(lora, "token_counter", lambda settings, model: (
        lambda example: len(f"{example.prompt} {example.completion}".split()), "words"))
    st.cache_resource.clear()
    st.cache_data.clear()


def jsonl(records: list) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def page(upload: tuple[str, bytes] | None = None) -> AppTest:
    app = AppTest.from_file(PAGE, default_timeout=HANG_GUARD_S).run()
    assert not app.exception, app.exception
    if upload:
        app.file_uploader(key="ft_upload").set_value((upload[0], upload[1], "application/json")).run()
        assert not app.exception, app.exception
    return app


def wait_for(condition, timeout: float = HANG_GUARD_S, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_the_sample_is_offered_and_its_report_shown() -> None:
    app = page()
    assert app.selectbox(key="ft_data").value.endswith("knowledge/examples.jsonl")
    assert {m.label: m.value for m in app.metric}["Lines with errors"] == "0"
    assert any("Tokens per example (words)" in m.value for m in app.markdown)
    assert not app.error and not app.get("vega_lite_chart")
    assert "No training runs yet." in [c.value for c in app.caption]


def test_a_bad_dataset_is_reported_by_line_and_saved_under_a_safe_name(isolated_environment: Path) -> None:
    lines = [GOOD[0], "this is not json", {"question": "no answer here"}, GOOD[0], GOOD[1]]
    app = page(("../../bad data.jsonl", jsonl(lines)))
    saved = isolated_environment / "datasets" / "bad data.jsonl"  # the path is dropped; a space is harmless
    assert saved.is_file() and app.selectbox(key="ft_data").value == str(saved)
    [error] = app.error
    assert "2 line(s) with errors" in error.value
    assert "line 2:" in error.value and "line 3:" in error.value
    assert any("line 4 repeats line 1" in w.value for w in app.warning)
    assert {m.label: m.value for m in app.metric}["Examples"] == "3"


def test_openai_shows_the_cost_estimate() -> None:
    app = page()
    app.radio(key="ft_provider").set_value("openai").run()
    [info] = app.info
    assert "gpt-4o-mini-2024-07-18" in info.value and "billed tokens" in info.value and "$" in info.value


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    with FineTuningServer() as running:
        for name, value in {"OPENAI_BASE_URL": running.base_url, "OPENAI_API_KEY": KEY,
                            "ASSISTANT_OPENAI_MAX_RETRIES": "0"}.items():
            monkeypatch.setenv(name, value)
        yield running


def test_an_openai_job_starts_in_the_background_and_stop_cancels_it(server: FineTuningServer) -> None:
    app = page(("train.jsonl", jsonl(GOOD)))
    app.radio(key="ft_provider").set_value("openai").run()
    app.text_input(key="ft_name").set_value("faq").run()
    app.button[0].click().run()  # Start training
    assert not app.exception and "in the background" in app.success[0].value
    [job] = jobs.list_jobs(load_settings(), "finetune")
    assert job.argv[:6] == ["finetune", "train", str(Path(job.meta["data"])), "--name", "faq", "--provider"]
    assert job.argv[6:9] == ["openai", "--model", SUCCEEDS] and job.meta["name"] == "faq"
    registry = Registry.from_settings(load_settings())
    wait_for(lambda: registry.exists("faq"), what="the job to be created on the server")
    # The job's first metrics event (its next poll, ~10 s) puts a training loss on the chart.
    wait_for(lambda: (registry.run_dir("faq") / "history.jsonl").is_file(), what="the first reported loss")
    app.run()  # a reload: the page finds the run on disk
    stop = app.button(key=f"stop-{job.id}")
    assert any(m.value.startswith("**faq** · openai") and m.value.endswith("· running") for m in app.markdown)
    assert app.get("vega_lite_chart"), "no loss chart for the OpenAI job"
    stop.click().run()
    assert not app.exception
    wait_for(lambda: not job.running, what="the follower to stop")
    assert job.status == "stopped"
    assert registry.get("faq").status == "cancelled"
    assert next(iter(server.jobs.values())).status == "cancelled"
    app.run()
    assert any("stopped" in m.value for m in app.markdown)
    assert KEY not in str(app._tree)


def test_a_local_job_that_fails_shows_why(tmp_path: Path) -> None:
    app = page(("train.jsonl", jsonl(GOOD)))
    app.text_input(key="ft_model").set_value(str(tmp_path / "no-such-model")).run()
    app.text_input(key="ft_name").set_value("tiny").run()
    app.button[0].click().run()
    [job] = jobs.list_jobs(load_settings(), "finetune")
    flags = dict(zip(job.argv[3::2], job.argv[4::2]))
    assert flags["--epochs"] == "3" and flags["--lora-r"] == "8" and flags["--val-fraction"] == "0.1"
    wait_for(lambda: not job.running, timeout=HANG_GUARD_S, what="the job to fail")
    assert job.status == "failed"
    app.run()
    assert any("failed (exit code 1)" in m.value for m in app.markdown)
    assert "neither a .gguf file nor a Hugging Face model folder" in app.code[0].value  # the log, opened


def test_the_registry_the_loss_chart_and_chat_with_a_model(openai_server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": KEY}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    registry = Registry.from_settings(settings)
    registry.save(ModelRecord("nimbus", "local", "SmolLM2-135M-Instruct", "stopped",
                              created="2026-01-01T00:00:00+00:00", metrics={"steps": 2, "val_loss": 1.5},
                              error="stopped at step 2/9"))
    registry.save(ModelRecord("faq", "openai", SUCCEEDS, "succeeded", model_id="echo-model"))
    (registry.run_dir("nimbus")).mkdir(parents=True)
    (registry.run_dir("nimbus") / "history.jsonl").write_text(
        '{"step": 0, "val_loss": 2.0}\n{"step": 1, "train_loss": 2.5}\n{"step": 2, "train_loss": 1.9}\n'
        '{"step": 2, "val_loss": 1.5}\n{"step": 3, "tra')  # the last line is being written
    job = jobs.start(settings, "finetune", ["finetune", "list"], "nimbus", {"name": "nimbus", "provider": "local"})
    wait_for(lambda: not job.running, what="the stand-in job")
    (job.folder / "stop").write_text("{}")  # it ended as a stopped run does

    app = AppTest.from_file(APP, default_timeout=HANG_GUARD_S)
    app.switch_page("views/finetune.py").run()
    assert not app.exception, app.exception
    [table] = app.dataframe
    assert list(table.value["name"]) == ["nimbus", "faq"]
    assert list(table.value["status"]) == ["stopped", "succeeded"] and "val_loss 1.5" in table.value["metrics"][0]
    [chart] = app.get("vega_lite_chart")  # the loss curve: train and validation against steps
    assert json.loads(chart.proto.spec)["layer"][0]["encoding"]["color"]["field"] == "series"
    assert b"train" in chart.proto.datasets[0].data.data and b"validation" in chart.proto.datasets[0].data.data
    assert app.button(key=f"resume-{job.id}")  # a stopped local run can go on
    assert app.selectbox(key="ft_chat_model").options == ["faq"]  # only ready models can chat
    next(b for b in app.button if b.label == "Chat with this model").click().run()
    assert not app.exception, app.exception
    assert app.session_state["strategy"] == "fine-tuned:faq"
    assert app.title[0].value != "Fine-tune"  # now on the chat page


def test_the_embedder_is_a_target_and_its_before_after_retrieval_is_shown() -> None:
    app = page(("train.jsonl", jsonl(GOOD)))
    app.radio(key="ft_target").set_value("embedder").run()
    assert not app.exception, app.exception
    assert not [r for r in app.radio if r.key == "ft_provider"]  # an embedder is tuned here, on this machine
    app.text_input(key="ft_name").set_value("router-emb").run()
    next(b for b in app.button if b.label == "Start training").click().run()
    assert not app.exception, app.exception
    settings = load_settings()
    [job] = jobs.list_jobs(settings, "finetune")
    flags = dict(zip(job.argv[3::2], job.argv[4::2]))
    assert flags["--target"] == "embedder" and flags["--val-fraction"] == "0.2" and "--lora-r" not in flags
    jobs.stop(settings, job, True)
    wait_for(lambda: not job.running, what="the stopped run")

    registry = Registry.from_settings(settings)
    registry.save(ModelRecord("faq-emb", "local", "all-MiniLM-L6-v2", "succeeded", target="embedder", metrics={
        "before": {"hit@1": 0.5, "mrr@10": 0.625}, "after": {"hit@1": 0.75, "mrr@10": 0.8}, "best_epoch": 2}))
    app.run()
    [table] = [frame for frame in app.dataframe if "tunes" in frame.value.columns]
    row = table.value[table.value["name"] == "faq-emb"].iloc[0]
    assert row["tunes"] == "embedder" and row["metrics"] == "hit@1 0.500 → 0.750, mrr@10 0.625 → 0.800"
    assert any("kb reindex --embedder faq-emb" in c.value for c in app.caption)
    chat_models = [s for s in app.selectbox if s.key == "ft_chat_model"]
    assert not chat_models or "faq-emb" not in chat_models[0].options  # an embedder does not answer
