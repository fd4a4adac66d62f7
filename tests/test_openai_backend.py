"""The openai backend through the official client against a loopback server: requests, streaming, failures."""

from __future__ import annotations

import socket

import pytest

from assistant.config import load_settings
from assistant.errors import BackendError, ConfigError
from assistant.models import build_generator
from assistant.models.openai_compat import OpenAIGenerator
from tests import openai_server as server_module
from tests.openai_server import KEY, OpenAICompatibleServer

QUESTION = [{"role": "user", "content": "what is BGP"}]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_settings_configure_the_client(openai_server: OpenAICompatibleServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_BACKEND", "openai")
    monkeypatch.setenv("ASSISTANT_MODEL", "echo-model")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    generator = build_generator(load_settings(max_tokens=7, temperature=0.5))
    reply = generator.generate(QUESTION)
    assert reply.text == "Echo: what is BGP"
    sent = openai_server.requests[-1]
    assert sent["model"] == "echo-model"
    assert sent["max_tokens"] == 7 and sent["temperature"] == 0.5 and sent["seed"] == 0
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_usage_comes_from_the_server(openai_generator: OpenAIGenerator) -> None:
    reply = openai_generator.generate(QUESTION)
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 4)
    assert reply.finish_reason == "stop"


def test_check_finds_the_model(openai_generator: OpenAIGenerator) -> None:
    assert "echo-model" in openai_generator.check()


def test_wrong_key_is_one_line_and_never_shows_the_key(openai_server: OpenAICompatibleServer) -> None:
    wrong = "sk-wrong-key-must-not-leak"
    generator = OpenAIGenerator("echo-model", base_url=openai_server.base_url, api_key=wrong, max_retries=0)
    for attempt in (lambda: generator.generate(QUESTION), generator.check):
        with pytest.raises(BackendError) as caught:
            attempt()
        message = str(caught.value)
        assert "401" in message and "API key" in message
        assert wrong not in message and "\n" not in message


def test_unknown_model_is_a_404_message(openai_server: OpenAICompatibleServer) -> None:
    generator = OpenAIGenerator("no-such-model", base_url=openai_server.base_url, api_key=KEY, max_retries=0)
    with pytest.raises(BackendError, match="'no-such-model' was not found"):
        generator.generate(QUESTION)
    with pytest.raises(BackendError, match="404"):
        generator.check()


def test_unreachable_server_says_so() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    generator = OpenAIGenerator("echo-model", base_url=url, api_key=KEY, max_retries=0)
    with pytest.raises(BackendError, match="Could not connect"):
        generator.generate(QUESTION)


def test_timeout_says_so(openai_server: OpenAICompatibleServer) -> None:
    generator = OpenAIGenerator(
        "slow-model", base_url=openai_server.base_url, api_key=KEY, timeout=server_module.SLOW_SECONDS / 6,
        max_retries=0,
    )
    with pytest.raises(BackendError, match="did not answer within the timeout"):
        generator.generate(QUESTION)


def test_official_openai_needs_a_key() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIGenerator("gpt-4o-mini")
    assert OpenAIGenerator("gpt-4o-mini", api_key="sk-x")._length_param == "max_completion_tokens"


def test_self_hosted_servers_need_no_key(openai_server: OpenAICompatibleServer) -> None:
    keyless = OpenAICompatibleServer(key="not-needed")
    with keyless:
        generator = OpenAIGenerator("echo-model", base_url=keyless.base_url)
        assert generator.generate(QUESTION).text == "Echo: what is BGP"


def test_adapters_are_refused_for_remote_models(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with pytest.raises(ConfigError, match="local backend only"):
        build_generator(load_settings(), backend="openai", adapter=tmp_path)
