"""Keys stay secret (reliability claim 7; benchmarks/reliability/secrets_canary.py runs every command): with debug
logging on and an upstream that repeats the key in its errors, the key shows up in no output, log or stored file, and
`assistant serve` reports the upstream's failure as a 502 without it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from assistant.config import load_settings
from assistant.logs import MASK, MaskSecrets
from tests.api_server import ApiServer
from tests.failing_server import FailingServer
from tests.limits import QUICK_GUARD_S

ASSISTANT = str(Path(sys.executable).with_name("assistant"))
CANARY = "sk-canary-0123456789abcdef"
SERVER_KEY = "srv-canary-0123456789abcdef"


HANG_TIMEOUT_S = "2"  # the client's timeout for the upstream that never answers; any other reply gets a hang guard


@pytest.fixture
def upstream():
    with FailingServer(hang_s=QUICK_GUARD_S) as server:  # "hang": longer than the client waits, on any machine
        yield server


@pytest.fixture
def env(upstream: FailingServer, isolated_environment: Path) -> dict[str, str]:
    return {**os.environ, "ASSISTANT_LOG_LEVEL": "debug", "OPENAI_LOG": "debug", "OPENAI_API_KEY": CANARY,
            "ASSISTANT_BACKEND": "openai", "ASSISTANT_MODEL": "gpt-4o-mini",
            "ASSISTANT_OPENAI_TIMEOUT": str(QUICK_GUARD_S), "ASSISTANT_OPENAI_MAX_RETRIES": "0",
            "OPENAI_BASE_URL": upstream.base_url("401")}


def test_a_rejected_key_is_reported_without_it_even_in_debug_logs(env: dict[str, str], upstream: FailingServer,
                                                                  isolated_environment: Path) -> None:
    for mode in ("401", "500", "hang"):
        done = subprocess.run([ASSISTANT, "ask", "hi", "--strategy", "plain"], capture_output=True, text=True,
                              env={**env, "OPENAI_BASE_URL": upstream.base_url(mode),
                                   **({"ASSISTANT_OPENAI_TIMEOUT": HANG_TIMEOUT_S} if mode == "hang" else {})},
                              timeout=QUICK_GUARD_S)
        assert done.returncode == 1 and "DEBUG" in done.stderr  # the debug log was on
        assert CANARY not in done.stdout + done.stderr
        assert {"401": "rejected the API key (401)", "500": "Rejected credentials Bearer ***",
                "hang": "did not answer within the timeout"}[mode] in done.stderr
    assert not any(CANARY.encode() in path.read_bytes() for path in isolated_environment.rglob("*") if path.is_file())


def test_the_server_answers_502_for_a_failing_upstream_and_logs_no_key(env: dict[str, str],
                                                                      isolated_environment: Path) -> None:
    with ApiServer(isolated_environment, env={**env, "ASSISTANT_API_KEYS": SERVER_KEY}, key=SERVER_KEY) as server:
        with pytest.raises(openai.InternalServerError) as failed:
            server.client().chat.completions.create(model="plain", messages=[{"role": "user", "content": "hi"}])
        assert failed.value.status_code == 502 and "rejected the API key (401)" in failed.value.message
        with pytest.raises(openai.AuthenticationError):
            server.client(key=f"{SERVER_KEY}-wrong").models.list()
    assert CANARY not in failed.value.response.text and SERVER_KEY not in server.output()
    assert CANARY not in server.output()


def test_log_records_carrying_a_key_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    load_settings()
    handler = logging.getLogger().handlers[0]
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "upstream said %s", (f"bad key {CANARY}",), None)
    assert any(isinstance(f, MaskSecrets) for f in handler.filters) and handler.filter(record)
    assert record.getMessage() == f"upstream said bad key {MASK}"
