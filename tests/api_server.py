"""`assistant serve` started for real, as a user starts it, on a free loopback port; the official client talks to it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import openai

from tests.limits import HANG_GUARD_S, QUICK_GUARD_S

ASSISTANT = str(Path(sys.executable).with_name("assistant"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ApiServer:
    def __init__(self, home: Path, env: dict[str, str] | None = None, key: str | None = None) -> None:
        self.home, self.key = home, key
        self.env = {**os.environ, "ASSISTANT_HOME": str(home), **(env or {})}
        self.log = home / f"serve-{time.monotonic_ns()}.log"
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def client(self, key: str | None = None, **options) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=key or self.key or "no-key-needed", max_retries=0,
                             timeout=HANG_GUARD_S, **options)

    def start(self) -> ApiServer:
        self.home.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen([ASSISTANT, "serve", "--port", str(self.port)], env=self.env,
                                        stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + QUICK_GUARD_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"assistant serve exited with {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"assistant serve did not answer within {QUICK_GUARD_S} s:\n{self.output()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(QUICK_GUARD_S)

    def restart(self) -> ApiServer:
        self.stop()
        self.port = free_port()
        return self.start()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def numbered_question(n: int) -> list[dict]:
    """A question whose greedy answer differs with n: what the load checks tell requests apart by."""
    return [{"role": "user", "content": f"What is {n} plus {n}?"}]


def answer(client: openai.OpenAI, n: int, tokens: int, stream: bool = False) -> str:
    """The `plain` strategy's answer to numbered_question(n), whole or streamed."""
    if not stream:
        reply = client.chat.completions.create(model="plain", messages=numbered_question(n), max_tokens=tokens)
        return reply.choices[0].message.content
    pieces = client.chat.completions.create(model="plain", messages=numbered_question(n), max_tokens=tokens,
                                            stream=True)
    return "".join(chunk.choices[0].delta.content or "" for chunk in pieces if chunk.choices)
