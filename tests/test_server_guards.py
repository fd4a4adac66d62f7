"""`assistant serve`'s guards: API keys, loopback-only without them, the body limit, hostile uploads, the bounded
queue (429) and a client that disconnects mid-stream (its generation stops, the model is free)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request

import openai
import pytest

from tests.api_server import ASSISTANT, ApiServer
from tests.limits import HANG_GUARD_S, QUICK_GUARD_S

LONG = [{"role": "user", "content": "Write a very long story about a router that travels the world, chapter by "
                                    "chapter, with many details."}]


def test_with_keys_every_request_needs_one_and_a_wrong_one_is_401_in_openais_shape(tmp_path) -> None:
    with ApiServer(tmp_path / "home", {"ASSISTANT_API_KEYS": "sk-first, sk-second"}, key="sk-second") as server:
        assert server.client().models.list().data  # the second key works too
        with pytest.raises(openai.AuthenticationError) as refused:
            server.client(key="sk-wrong").models.list()
        assert refused.value.body["code"] == "invalid_api_key" and "sk-wrong" not in server.output()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=QUICK_GUARD_S) as probe:
            assert json.load(probe) == {"status": "ok"}  # a load balancer's probe needs no key


def test_a_non_loopback_address_without_keys_is_refused_in_one_line(tmp_path) -> None:
    done = subprocess.run([ASSISTANT, "serve", "--host", "0.0.0.0", "--port", "1"], capture_output=True, text=True,
                          timeout=QUICK_GUARD_S, env={**os.environ, "ASSISTANT_HOME": str(tmp_path)})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error: Refusing to serve on 0.0.0.0 without API keys")


def test_an_oversized_body_is_413_and_nothing_is_kept(tmp_path) -> None:
    with ApiServer(tmp_path / "home", {"ASSISTANT_MAX_REQUEST_MB": "0.01"}) as server:
        big = b'{"prompt": "q", "completion": "' + b"a" * 20_000 + b'"}\n'
        with pytest.raises(openai.APIStatusError) as refused:
            server.client().files.create(file=("big.jsonl", big), purpose="fine-tune")
        assert refused.value.status_code == 413 and "ASSISTANT_MAX_REQUEST_MB" in refused.value.message
        assert server.client().files.list().data == []


def test_hostile_upload_names_stay_metadata(tmp_path) -> None:
    with ApiServer(tmp_path / "home") as server:
        data = b'{"prompt": "q", "completion": "a"}\n'
        for name in ("../../evil.jsonl", "/etc/passwd", "..\\..\\win.jsonl", "a\x00b.jsonl", ".hidden.jsonl"):
            stored = server.client().files.create(file=(name, data), purpose="fine-tune")
            assert "/" not in stored.filename and "\\" not in stored.filename and "\x00" not in stored.filename
        written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
        assert all(str(p).startswith("home/") for p in written), written
        assert not list(tmp_path.rglob("evil*")) and not list(tmp_path.rglob("passwd"))


@pytest.mark.integration
def test_past_the_queue_it_is_429_and_a_client_that_leaves_frees_the_model(model_home, tmp_path) -> None:
    env = {"ASSISTANT_SERVER_QUEUE": "0", "ASSISTANT_MAX_TOKENS": "2000"}
    with ApiServer(tmp_path / "home", env) as server:
        client = server.client()
        client.chat.completions.create(model="plain", messages=LONG, max_tokens=2)  # the model is loaded
        stream = client.chat.completions.create(model="plain", messages=LONG, max_tokens=2000, stream=True)
        next(iter(stream))  # generating now, and it holds the only turn
        with pytest.raises(openai.RateLimitError) as busy:
            client.chat.completions.create(model="plain", messages=LONG, max_tokens=2)
        assert busy.value.response.headers["retry-after"] == "1"
        stream.close()  # the client goes away mid-stream
        deadline = time.monotonic() + HANG_GUARD_S
        while "went away mid-stream" not in server.output():
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.2)
        reply = client.chat.completions.create(model="plain", messages=LONG, max_tokens=4)  # served, not 429
        assert reply.usage.completion_tokens <= 4
