"""Background jobs: real detached processes running the `assistant` CLI, their state read back from disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tests.openai_server as fake_openai
from assistant import jobs
from assistant.config import load_settings
from assistant.errors import AssistantError
from tests.limits import HANG_GUARD_S, QUICK_GUARD_S
from tests.openai_server import KEY


def wait(job: jobs.Job, timeout: float = HANG_GUARD_S) -> jobs.Job:
    deadline = time.monotonic() + timeout
    while job.running:
        assert time.monotonic() < deadline, f"job still running after {timeout} s:\n{job.log_tail()}"
        time.sleep(0.1)
    return job


@pytest.fixture
def slow_server(openai_server, monkeypatch: pytest.MonkeyPatch):
    """`assistant ask --model slow-model` then blocks in its HTTP request for a minute: a long, cheap job."""
    monkeypatch.setattr(fake_openai, "SLOW_SECONDS", 60.0)
    for name, value in {"OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": KEY,
                        "ASSISTANT_OPENAI_MAX_RETRIES": "0"}.items():
        monkeypatch.setenv(name, value)
    return openai_server


def start_slow(server, kind: str = "ask", **meta) -> jobs.Job:
    asked = len(server.requests)
    job = jobs.start(load_settings(), kind, ["ask", "slow question", "--backend", "openai", "--model", "slow-model"],
                     meta=meta)
    deadline = time.monotonic() + 60
    while len(server.requests) == asked:  # the request is in flight: the command is past its imports
        assert job.running and time.monotonic() < deadline, f"{job.detail}: {job.log_tail()}"
        time.sleep(0.05)
    return job


def test_a_short_job_succeeds_and_keeps_its_log(isolated_environment: Path) -> None:
    settings = load_settings()
    job = jobs.start(settings, "misc", ["finetune", "list"], label="list the models")
    assert job.status == "running" or job.exit_code == 0
    wait(job)
    assert (job.status, job.exit_code) == ("succeeded", 0)
    assert "No fine-tuned models yet" in job.log_tail()
    assert job.folder.parent == isolated_environment / "jobs" and job.ended
    [listed] = jobs.list_jobs(settings)
    assert (listed.id, listed.label, listed.argv, listed.status) == (job.id, "list the models", ["finetune", "list"],
                                                                     "succeeded")
    assert jobs.get(settings, job.id).pid == job.pid


def test_a_failing_job_is_failed_with_its_exit_code_and_error() -> None:
    settings = load_settings()
    job = wait(jobs.start(settings, "misc", ["finetune", "status", "nope"]))
    assert (job.status, job.exit_code) == ("failed", 1)
    assert "error: No fine-tuned model named 'nope'" in job.log_tail()
    assert "exit code 1" in job.detail
    assert [j.kind for j in jobs.list_jobs(settings, "misc")] == ["misc"] and jobs.list_jobs(settings, "compare") == []
    with pytest.raises(AssistantError):
        jobs.get(settings, "../etc")


def test_stopping_a_long_job_interrupts_it_like_ctrl_c(slow_server) -> None:
    settings = load_settings()
    job = start_slow(slow_server)
    assert job.status == "running" and job.detail == "running"
    jobs.stop(settings, job)
    wait(job, 60)
    assert job.status == "stopped"
    assert job.exit_code == 130  # the CLI's own Ctrl-C exit: it was interrupted, not killed
    jobs.stop(settings, job)  # an ended job: nothing to do, and it stays as it ended
    assert job.status == "stopped"


def test_state_survives_the_process_that_started_it(slow_server) -> None:
    """A reloaded page or a restarted server is a new Python process: it finds the job, its state, and can stop it."""
    job = start_slow(slow_server)
    script = ("import sys; from assistant import jobs; from assistant.config import load_settings; s = load_settings();"
              "[j] = jobs.list_jobs(s); print(j.id, j.status, j.pid); jobs.stop(s, j) if 'stop' in sys.argv else 0")
    seen = subprocess.run([sys.executable, "-c", script, "stop"], capture_output=True, text=True, timeout=QUICK_GUARD_S,
                          check=False)
    assert seen.stdout.split() == [job.id, "running", str(job.pid)], seen.stderr
    wait(job, 60)
    seen = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=QUICK_GUARD_S,
                          check=False)
    assert seen.stdout.split() == [job.id, "stopped", str(job.pid)], seen.stderr


def test_a_job_killed_outright_is_failed_without_an_exit_code(slow_server) -> None:
    job = start_slow(slow_server)
    os.killpg(job.pid, signal.SIGKILL)  # supervisor and command at once: nobody records an exit code
    wait(job, 30)
    assert (job.status, job.exit_code) == ("failed", None)
    assert "without recording an exit code" in job.detail


def test_force_stop_kills_at_once(slow_server) -> None:
    job = start_slow(slow_server)
    jobs.stop(load_settings(), job, force=True)
    wait(job, 30)
    assert job.status == "stopped" and job.exit_code is None


def test_a_fine_tune_is_stopped_through_its_stop_file_first(slow_server, monkeypatch: pytest.MonkeyPatch,
                                                            isolated_environment: Path) -> None:
    """A local training run reads `run/STOP` between steps; the supervisor keeps that file in place (the run deletes a
    stale one when it starts) and falls back to SIGINT only when the grace period passes."""
    monkeypatch.setattr(jobs, "STOP_FILE_GRACE_SECONDS", 2.0)
    job = start_slow(slow_server, kind="finetune", name="tiny")
    stop_file = isolated_environment / "finetuned" / "tiny" / "run" / "STOP"
    jobs.stop(load_settings(), job)
    assert json.loads((job.folder / "stop").read_text())["touch"] == str(stop_file)
    deadline = time.monotonic() + 10
    while not stop_file.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stop_file.unlink()  # as a starting run does
    time.sleep(0.6)
    assert stop_file.exists() and job.running  # put back; the stand-in ignores it, so SIGINT follows the grace
    wait(job, 60)
    assert job.status == "stopped" and job.exit_code == 130


def test_cli_flags() -> None:
    assert jobs.cli_flags({"lora_r": 8, "lr": 0.001, "resume": True, "fresh": False, "model": None}) == [
        "--lora-r", "8", "--lr", "0.001", "--resume"]
