"""ASGI middleware in front of every route: API keys and the request size limit.

Plain ASGI rather than BaseHTTPMiddleware: it sees a streamed response's disconnect and a streamed body as they
happen, and costs nothing per chunk.
"""

from __future__ import annotations

import hmac
import json

from assistant.server.errors import APIError, body

OPEN_PATHS = {"/health"}  # a load balancer's probe needs no key


class Guards:
    def __init__(self, app, keys: list[str], max_bytes: int) -> None:
        self.app = app
        self.keys = [key.encode() for key in keys]
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.keys and scope["path"] not in OPEN_PATHS and not self._authorised(headers.get(b"authorization", b"")):
            return await _reply(send, 401, "Incorrect or missing API key: send `Authorization: Bearer <key>` with a "
                                "key from ASSISTANT_API_KEYS.", "invalid_api_key")
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _reply(send, 413, self._too_large(), "request_too_large")
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # a chunked body that never declared its length: the route's read fails
                raise APIError(413, self._too_large(), code="request_too_large")
            return message

        await self.app(scope, limited, send)

    def _authorised(self, header: bytes) -> bool:
        scheme, _, token = header.partition(b" ")
        # Every key is compared, each in constant time: neither the match nor its position leaks through timing.
        matches = [hmac.compare_digest(token.strip(), key) for key in self.keys]
        return scheme.lower() == b"bearer" and any(matches)

    def _too_large(self) -> str:
        return (f"The request is larger than {self.max_bytes / 2**20:g} MB (ASSISTANT_MAX_REQUEST_MB); send a "
                "smaller file or raise the limit.")


async def _reply(send, status: int, message: str, code: str) -> None:
    payload = json.dumps(body(message, "invalid_request_error", None, code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
