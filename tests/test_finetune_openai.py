"""OpenAI fine-tuning jobs through the official client against a loopback server: the `assistant finetune` commands
in-process (polling made instant), one real subprocess for Ctrl-C, and the fine-tuned model answering by name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.config import load_settings
from assistant.errors import AssistantError
from assistant.finetune import openai_jobs
from assistant.finetune.registry import ModelRecord, Registry
from assistant.models.openai_compat import OpenAIGenerator
from assistant.strategies import generator_for
from tests.limits import QUICK_GUARD_S
from tests.openai_finetune_server import FAILS, FAILURE, SUCCEEDS, FineTuningServer
from tests.openai_server import KEY
from tests.test_openai_backend import _closed_port

ASSISTANT = str(Path(sys.executable).with_name("assistant"))
TUNED = f"ft:{SUCCEEDS}:org:faq:abc123"
PAIRS = [(f"Question {n} about the router?", f"Answer {n}: restart it and wait.") for n in range(5)]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    with FineTuningServer() as running:
        monkeypatch.setenv("OPENAI_BASE_URL", running.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("ASSISTANT_OPENAI_MAX_RETRIES", "0")
        monkeypatch.setattr(openai_jobs, "POLL_SECONDS", 0.0)
        yield running


@pytest.fixture
def data(tmp_path: Path) -> Path:
    lines = [{"prompt": p, "completion": c} for p, c in PAIRS] + [{"prompt": PAIRS[0][0], "completion": PAIRS[0][1]}]
    return _jsonl(tmp_path / "train.jsonl", lines)


@pytest.fixture
def validation(tmp_path: Path) -> Path:
    return _jsonl(tmp_path / "val.jsonl", [{"prompt": "Held-out question?", "completion": "Held-out answer."}])


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    """`assistant ARGS` in this process (so POLL_SECONDS applies): exit code, stdout, stderr."""
    monkeypatch.setattr(sys, "argv", ["assistant", *map(str, args)])
    with pytest.raises(SystemExit) as done:
        main()
    out, err = capsys.readouterr()
    return done.value.code or 0, out, err


def train_args(data: Path, model: str = SUCCEEDS, *extra: str) -> list[str]:
    return ["finetune", "train", str(data), "--provider", "openai", "--model", model, "--name", "faq", *extra]


def registry() -> Registry:
    return Registry.from_settings(load_settings())


def start(data: Path, model: str = SUCCEEDS, **options) -> ModelRecord:
    return openai_jobs.start_job(load_settings(), registry(), "faq", model, data, suffix="faq", **options)


def test_a_job_that_succeeds_is_registered_and_the_key_never_shows(server, data, validation, capsys, monkeypatch,
                                                                    isolated_environment: Path) -> None:
    code, out, err = cli(capsys, monkeypatch, *train_args(data, SUCCEEDS, "--suffix", "faq", "--epochs", "2",
                                                          "--validation", validation))
    assert code == 0, err
    record = registry().get("faq")
    assert (record.status, record.model_id, record.base_model) == ("succeeded", TUNED, SUCCEEDS)
    assert record.metrics["train_loss"] == 0.42 and record.metrics["valid_loss"] == 0.66
    assert record.metrics["trained_tokens"] > 0 and record.metrics["step"] == 30
    assert record.hyperparameters == {"n_epochs": 2, "suffix": "faq"}
    assert len(record.training_hashes) == len(PAIRS)  # the exact duplicate was dropped
    # Only what the user set goes to the API; both files were uploaded, the duplicate was not.
    job = next(iter(server.jobs.values()))
    assert job.request["method"] == {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}
    assert job.request["suffix"] == "faq" and job.request["validation_file"] is not None
    assert [len(f.splitlines()) for f in server.files.values()] == [len(PAIRS), 1]
    # Events oldest first, each once.
    lines = out.splitlines()
    steps = [line for line in lines if line.startswith("step ")]
    assert steps == ["step 10/30: training loss 1.25, validation loss 1.31",
                     "step 20/30: training loss 0.81, validation loss 0.95",
                     "step 30/30: training loss 0.42, validation loss 0.66"]
    assert lines.count("Fine-tuning job started") == 1 and f"New fine-tuned model created: {TUNED}" in lines
    assert lines.index("Fine-tuning job started") < lines.index(steps[0])
    # The losses also go where the app charts them from, each step once, also after following the job again.
    openai_jobs.follow(load_settings(), registry(), "faq", echo=lambda line: None)
    history = (registry().run_dir("faq") / "history.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in history] == [{"step": 10, "train_loss": 1.25, "val_loss": 1.31},
                                                      {"step": 20, "train_loss": 0.81, "val_loss": 0.95},
                                                      {"step": 30, "train_loss": 0.42, "val_loss": 0.66}]
    assert KEY not in out + err
    for path in isolated_environment.rglob("*"):
        assert not path.is_file() or KEY.encode() not in path.read_bytes(), path


def test_without_a_validation_file_a_share_of_the_data_is_held_out(server, tmp_path, capsys, monkeypatch) -> None:
    pairs = [{"prompt": f"How do I fix error E{n}?", "completion": f"Replace part {n}."} for n in range(20)]
    data = _jsonl(tmp_path / "twenty.jsonl", pairs)
    code, _, err = cli(capsys, monkeypatch, *train_args(data, SUCCEEDS, "--val-fraction", "0.1"))
    assert code == 0, err
    job = next(iter(server.jobs.values()))
    assert job.request["validation_file"] is not None
    assert [len(f.splitlines()) for f in server.files.values()] == [18, 2]
    assert len(registry().get("faq").training_hashes) == 18  # held-out questions are not training data
    train, held = (set(f.splitlines()) for f in server.files.values())
    assert not train & held


def test_the_fine_tuned_model_answers_by_name(server, data, capsys, monkeypatch) -> None:
    start(data)
    assert openai_jobs.follow(load_settings(), registry(), "faq", echo=lambda line: None).model_id == TUNED
    generator = generator_for("fine-tuned:faq", load_settings())
    assert isinstance(generator, OpenAIGenerator) and generator.model_id == TUNED
    code, out, err = cli(capsys, monkeypatch, "ask", "hi", "--strategy", "fine-tuned:faq")
    assert code == 0, err
    assert "Echo: hi" in out and server.requests[-1]["model"] == TUNED


def test_a_failing_job_records_its_error(server, data, capsys, monkeypatch) -> None:
    out = cli(capsys, monkeypatch, *train_args(data, FAILS))[1]
    record = registry().get("faq")
    assert (record.status, record.error, record.model_id) == ("failed", FAILURE, None)
    assert f"error: The job failed: {FAILURE}" in out.splitlines()
    assert start(data).status == "running"  # a failed name may be trained again


def test_cancel_stops_a_running_job_and_frees_the_name(server, data, capsys, monkeypatch) -> None:
    job_id = start(data).job_id
    with pytest.raises(AssistantError, match="already exists .*running"):
        start(data)
    code, out, err = cli(capsys, monkeypatch, "finetune", "cancel", "faq")
    assert (code, out.strip()) == (0, "faq: cancelled"), err
    assert server.jobs[job_id].status == "cancelled" and registry().get("faq").status == "cancelled"
    assert openai_jobs.cancel(load_settings(), registry(), "faq").status == "cancelled"  # again: nothing to do
    assert start(data).job_id != job_id


def test_cancel_after_the_job_ended_unattended_records_how_it_ended(server, data, capsys, monkeypatch) -> None:
    job = server.jobs[start(data).job_id]
    while job.status != "succeeded":
        server.advance(job)
    code, out, err = cli(capsys, monkeypatch, "finetune", "cancel", "faq")
    assert (code, out.strip()) == (0, "faq: succeeded"), err
    assert registry().get("faq").model_id == TUNED


def test_ctrl_c_detaches_and_status_reattaches(server, data, capsys, monkeypatch) -> None:
    # A real process and a real SIGINT: what a user's Ctrl-C does while `train` follows the job. A child inherits an
    # ignored SIGINT (tests started in the background by a non-interactive shell have one), and Python then never
    # raises KeyboardInterrupt; a handler here instead is reset to the default by exec, as in a terminal.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen([ASSISTANT, *train_args(data, SUCCEEDS, "--suffix", "faq")], text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        signal.signal(signal.SIGINT, inherited)
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        for line in process.stdout:
            if line.strip() == "Fine-tuning job started":
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=QUICK_GUARD_S)
    finally:
        watchdog.cancel()
    assert process.returncode == 0, err
    assert "Detached" in out and "assistant finetune status faq" in out and "Traceback" not in err
    assert registry().get("faq").status == "running"
    code, out, err = cli(capsys, monkeypatch, "finetune", "status", "faq")
    assert code == 0, err
    assert "step 30/30: training loss 0.42" in out and registry().get("faq").model_id == TUNED


def assert_one_line_error(code: int, out: str, err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("case", ["wrong key", "quota", "unreachable", "unknown model"])
def test_api_failures_are_one_line(case, server, data, capsys, monkeypatch) -> None:
    wrong = "sk-wrong-key-that-must-not-leak"
    model, expected = SUCCEEDS, {"wrong key": "401", "quota": "429", "unreachable": "Could not connect",
                                 "unknown model": "not available for fine-tuning"}[case]
    if case == "wrong key":
        monkeypatch.setenv("OPENAI_API_KEY", wrong)
    elif case == "quota":
        server.quota_exhausted = True
    elif case == "unreachable":
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{_closed_port()}/v1")
    else:
        model = "gpt-2-turbo-nonexistent"
    code, out, err = cli(capsys, monkeypatch, *train_args(data, model))
    assert_one_line_error(code, out, err, expected)
    assert wrong not in out + err and KEY not in out + err
    assert not registry().exists("faq")  # no job, so nothing blocks the name


def test_an_upload_the_server_rejects_is_one_line(server, data, capsys, monkeypatch) -> None:
    # Our writer only writes valid chat JSONL, so write the legacy prompt/completion format instead to get a 400.
    def legacy(examples, path: Path) -> None:
        _jsonl(path, [{"prompt": e.prompt, "completion": e.completion} for e in examples])

    monkeypatch.setattr(openai_jobs, "write_chat_jsonl", legacy)
    code, out, err = cli(capsys, monkeypatch, *train_args(data))
    assert_one_line_error(code, out, err, "rejected the file (400)", "Invalid file format. Line 1",
                          "assistant finetune validate")


def test_bad_lines_are_refused_before_anything_is_uploaded(server, tmp_path, capsys, monkeypatch) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok?", "completion": "ok."}\nnot json\n', encoding="utf-8")
    code, out, err = cli(capsys, monkeypatch, *train_args(bad))
    assert_one_line_error(code, out, err, "1 bad line(s)", "line 2", "assistant finetune prepare")
    assert server.files == {}


def test_a_job_the_server_does_not_know_is_one_line(server, capsys, monkeypatch) -> None:
    registry().save(ModelRecord("faq", "openai", SUCCEEDS, status="running", job_id="ftjob-gone"))
    code, out, err = cli(capsys, monkeypatch, "finetune", "status", "faq")
    assert_one_line_error(code, out, err, "ftjob-gone was not found", "assistant finetune remove faq")
