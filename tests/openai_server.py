"""A real HTTP server on 127.0.0.1 speaking OpenAI's chat-completions protocol (JSON and SSE streaming).

Scripted, not a model: the reply echoes the last user message, one "token" per word, so tests can predict it.
It checks the bearer key (401), knows its set of models (404 otherwise), and has a model that is too slow.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = "sk-test-0123456789abcdef"
MODELS = {"echo-model", "slow-model"}
SLOW_SECONDS = 3.0


def reply_words(messages: list[dict]) -> list[str]:
    question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    return f"Echo: {question}".split(" ")


class _Handler(BaseHTTPRequestHandler):
    server: "OpenAICompatibleServer"

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def _send_json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, code: str) -> None:
        self._send_json(status, {"error": {"message": message, "type": "invalid_request_error", "code": code}})

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.server.key}":
            got = self.headers.get("Authorization", "")[7:]
            # Like OpenAI, echo a masked key back: the client must not leak even this.
            self._error(401, f"Incorrect API key provided: {got}.", "invalid_api_key")
            return False
        return True

    def do_GET(self) -> None:
        if not self._authorised():
            return
        model = self.path.removeprefix("/v1/models/")
        if self.path.startswith("/v1/models/") and model in self.server.models:
            self._send_json(200, {"id": model, "object": "model", "created": 0, "owned_by": "test"})
        else:
            self._error(404, f"The model `{model}` does not exist.", "model_not_found")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        if not self._authorised():
            return
        if self.path != "/v1/chat/completions":
            self._error(404, "Unknown path.", "not_found")
            return
        if body["model"] not in self.server.models:
            self._error(404, f"The model `{body['model']}` does not exist.", "model_not_found")
            return
        if body["model"] == "slow-model":
            time.sleep(SLOW_SECONDS)
        words = reply_words(body["messages"])
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or 10_000
        kept, finish = words[:limit], "length" if len(words) > limit else "stop"
        usage = {"prompt_tokens": sum(len(m["content"].split()) for m in body["messages"]),
                 "completion_tokens": len(kept)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if body.get("stream"):
            self._stream(body, kept, finish, usage)
        else:
            self._send_json(200, {
                "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": finish,
                             "message": {"role": "assistant", "content": " ".join(kept)}}],
                "usage": usage,
            })

    def _stream(self, body: dict, words: list[str], finish: str, usage: dict) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

        def event(choices: list, usage_: dict | None = None) -> None:
            chunk = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0,
                     "model": body["model"], "choices": choices, "usage": usage_}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()

        for index, word in enumerate(words):
            piece = word if index == 0 else " " + word
            event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        event([{"index": 0, "delta": {}, "finish_reason": finish}])
        if (body.get("stream_options") or {}).get("include_usage"):
            event([], usage)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class OpenAICompatibleServer(ThreadingHTTPServer):
    daemon_threads = True
    handler: type[BaseHTTPRequestHandler] = _Handler  # a subclass may speak more of the API

    def __init__(self, key: str = KEY) -> None:
        super().__init__(("127.0.0.1", 0), self.handler)
        self.key = key
        self.models = set(MODELS)  # per server: a fine-tuning job that succeeds adds its model here
        self.requests: list[dict] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self) -> "OpenAICompatibleServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
