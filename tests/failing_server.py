"""A loopback OpenAI-compatible server that only fails, and repeats the key it was sent in each failure (as some
servers do in their 401 messages), for the secrets tests. The failure is the first path segment of the base URL:
http://127.0.0.1:PORT/401/v1 (rejects the key), /500/v1 (a server error), /hang/v1 (answers after `hang_s`)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server: FailingServer

    def log_message(self, *args: object) -> None:
        pass

    def _fail(self) -> None:
        mode = self.path.strip("/").split("/")[0]
        sent = self.headers.get("Authorization", "")
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if mode == "hang":
            time.sleep(self.server.hang_s)
        status = 401 if mode == "401" else 500
        body = json.dumps({"error": {"message": f"Rejected credentials {sent} for {self.path}", "type": "error",
                                     "code": "invalid_api_key" if status == 401 else "server_error"}}).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Echo-Authorization", sent)  # for anything that logs response headers
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            pass

    do_GET = do_POST = do_DELETE = _fail


class FailingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hang_s: float = 10.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hang_s = hang_s
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def base_url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{mode}/v1"

    def __enter__(self) -> FailingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
